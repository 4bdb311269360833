// The browser acceptance flow, run by test_browser.py against a real gateway and worker:
// Debian's Chromium driven by playwright-core (from frontend/node_modules), a fake microphone
// fed by ../shared/testdata/speech/jfk_en.wav.
//
//   BASE=http://127.0.0.1:PORT/ SPEECH=/path/to/speech ARTIFACTS=dir [DOCS_SHOTS=dir] node tests/browser/flow.mjs
//
// Prints one line per step (`ok` / `FAIL`), saves screenshots (1280×800) to ARTIFACTS and, when
// DOCS_SHOTS is set, the README's screenshots there; exits non-zero when a step failed.
import { createRequire } from 'node:module';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const require = createRequire(join(ROOT, 'frontend', 'package.json'));
const { chromium } = require('playwright-core');

const BASE = (process.env.BASE || 'http://127.0.0.1:8080/').replace(/\/?$/, '/');
const SPEECH = process.env.SPEECH || resolve(ROOT, '..', 'shared', 'testdata', 'speech');
const ARTIFACTS = process.env.ARTIFACTS || join(ROOT, 'tests', 'artifacts', 'browser');
const DOCS_SHOTS = process.env.DOCS_SHOTS || '';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const JFK = join(SPEECH, 'jfk_en.wav');

mkdirSync(ARTIFACTS, { recursive: true });
if (DOCS_SHOTS) mkdirSync(DOCS_SHOTS, { recursive: true });
if (!existsSync(CHROMIUM)) {
  console.log(`FAIL no Chromium at ${CHROMIUM}: run scripts/ensure-chromium.sh (as root) first`);
  process.exit(2);
}
if (!existsSync(JFK)) {
  console.log(`FAIL test audio missing: ${JFK}`);
  process.exit(2);
}

const MODE = process.env.MODE || 'main'; // 'errors': the stack has no worker yet
const tmpDirs = [];
const BASE_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  `--use-file-for-fake-audio-capture=${JFK}`,
  '--autoplay-policy=no-user-gesture-required',
];
/** A fresh Chromium with a new, empty profile; `grantMic` auto-accepts the microphone prompt. */
async function launch({ grantMic = true } = {}) {
  const userDataDir = mkdtempSync(join(tmpdir(), 'lanasr-chromium-'));
  const downloads = mkdtempSync(join(tmpdir(), 'lanasr-downloads-'));
  tmpDirs.push(userDataDir, downloads);
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    locale: 'en-US',
    acceptDownloads: true,
    downloadsPath: downloads,
    args: grantMic ? [...BASE_ARGS, '--use-fake-ui-for-media-stream'] : BASE_ARGS,
  });
}
let context = await launch();
// Screenshots are of the light theme whatever the host prefers.
let page = context.pages()[0] ?? (await context.newPage());
await page.emulateMedia({ colorScheme: 'light', reducedMotion: 'reduce' });
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(e.message));
page.on('console', (m) => {
  if (m.type() === 'error') console.log(`     console: ${m.text()}`);
});

let failures = 0;
let stepNo = 0;
async function step(name, fn) {
  stepNo++;
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${String(e?.message ?? e).split('\n').slice(0, 6).join('\n     ')}`);
    await page.screenshot({ path: join(ARTIFACTS, `fail-${stepNo}.png`) }).catch(() => {});
  }
}
async function shot(name, { docs = false } = {}) {
  const path = join(ARTIFACTS, name + '.png');
  await page.screenshot({ path, animations: 'disabled', caret: 'hide' });
  if (docs && DOCS_SHOTS) copyFileSync(path, join(DOCS_SHOTS, name + '.png'));
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
const SEC = 1000;

let uploadId = '';
let liveId = '';

if (MODE === 'errors') {
  await step('live without a live worker: a readable error, and the page can start again', async () => {
    await page.goto(`${BASE}#/live`);
    await page.waitForSelector('[data-route="/live"][data-state=idle]');
    await page.click('[data-testid=live-mic]');
    const err = page.locator('[data-testid=live-error]');
    await err.waitFor({ timeout: 20 * SEC });
    const text = (await err.textContent()) || '';
    assert(/no worker is serving live sessions/i.test(text), `unexpected error text: ${text}`);
    await page.waitForSelector('[data-route="/live"][data-state=error]');
    assert((await page.textContent('[data-testid=live-mic]'))?.includes('Start'), 'the button does not offer to start again');
    await shot('live-error-no-worker');
  });

  await step('live with the microphone refused: a readable error', async () => {
    await context.close();
    context = await launch({ grantMic: false });
    page = context.pages()[0] ?? (await context.newPage());
    await page.emulateMedia({ colorScheme: 'light', reducedMotion: 'reduce' });
    await page.goto(`${BASE}#/live`);
    await page.waitForSelector('[data-route="/live"][data-state=idle]');
    await page.click('[data-testid=live-mic]');
    const err = page.locator('[data-testid=live-error]');
    await err.waitFor({ timeout: 20 * SEC });
    const text = (await err.textContent()) || '';
    assert(/microphone access was denied/i.test(text), `unexpected error text: ${text}`);
    await shot('live-error-denied');
  });
  await finishRun();
}

if (MODE === 'token') {
  // This gateway runs with ASR_API_TOKEN=$TOKEN; it shares the database with the main one, so
  // the upload of the main flow is in its history.
  const TOKEN = process.env.TOKEN || '';
  await step('token: the page asks for the access token, refuses a wrong one, then works', async () => {
    await page.goto(`${BASE}#/history`);
    const dialog = page.locator('[data-testid=token-dialog]');
    await dialog.waitFor({ timeout: 15 * SEC });
    await page.fill('[data-testid=token-input]', 'not-the-token');
    await page.click('[data-testid=token-save]');
    await dialog.waitFor({ timeout: 15 * SEC });
    const text = (await dialog.textContent()) || '';
    assert(/did not accept/i.test(text), `no "wrong token" text: ${text}`);
    await shot('token-dialog');
    await page.fill('[data-testid=token-input]', TOKEN);
    await page.click('[data-testid=token-save]');
    await page.waitForSelector('[data-testid=history-row]', { timeout: 20 * SEC });
    await page.waitForSelector('[data-testid=conn-state][data-state=open]', { timeout: 20 * SEC });
    assert((await page.locator('[data-testid=token-dialog]').count()) === 0, 'the dialog stayed open');
  });
  await step('token: the player and the SRT download carry the token', async () => {
    await page.locator('[data-testid=history-row]').first().click();
    await page.waitForSelector('[data-testid=segment]', { timeout: 20 * SEC });
    const src = await page.locator('[data-testid=audio-player]').getAttribute('src');
    assert(src && src.includes('token='), `audio src without the token: ${src}`);
    // The page's own fetch sends no Authorization header: only the URL's token lets it through.
    const status = await page.evaluate(async (u) => (await fetch(u, { headers: { Range: 'bytes=0-15' } })).status, src);
    assert(status === 206, `audio URL answered ${status}`);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('a[data-testid=export-srt]')]);
    assert(!(await download.failure()), `SRT download failed: ${await download.failure()}`);
  });
  await step('token: a shared link with ?token= signs in and leaves no token in the address bar', async () => {
    await context.close();
    context = await launch();
    page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`${BASE}?token=${encodeURIComponent(TOKEN)}#/system`);
    await page.waitForSelector('[data-testid=worker-row]', { timeout: 20 * SEC });
    assert(!page.url().includes('token='), `the token stayed in the URL: ${page.url()}`);
    assert((await page.locator('[data-testid=token-dialog]').count()) === 0, 'asked for the token again');
  });
  await finishRun();
}

await step('the app loads and connects to the live event stream', async () => {
  await page.goto(BASE);
  await page.waitForSelector('[data-testid=file-input]', { state: 'attached' });
  await page.waitForSelector('[data-testid=conn-state][data-state=open]', { timeout: 15 * SEC });
});

await step('upload jfk_en.wav: the transcript says "fellow Americans"', async () => {
  await page.setInputFiles('[data-testid=file-input]', JFK);
  const item = page.locator('[data-testid=upload-item]').first();
  await item.locator('[data-testid=transcript]').filter({ hasText: /fellow Americans/i }).waitFor({ timeout: 240 * SEC });
  await page.waitForSelector('[data-testid=upload-item][data-status=done]', { timeout: 30 * SEC });
  uploadId = (await item.getAttribute('data-task-id')) || '';
  assert(uploadId, 'the upload has no task id');
  await shot('transcribe', { docs: true });
});

await step('live: fake microphone gives a partial caption, then a final one with "country"', async () => {
  await page.click('[data-testid=nav-live]');
  await page.waitForSelector('[data-route="/live"][data-state=idle]');
  await page.selectOption('[data-testid=live-language]', 'en');
  await page.click('[data-testid=live-mic]');
  await page.waitForSelector('[data-route="/live"][data-state=recording]', { timeout: 20 * SEC });
  // The level meter moves while the file plays.
  await page.waitForFunction(() => Number(document.querySelector('[data-testid=live-level]')?.getAttribute('data-level')) > 0.2, null, { timeout: 15 * SEC });
  await page.waitForSelector('[data-testid=caption][data-final=false]', { timeout: 90 * SEC });
  const partialText = await page.locator('[data-testid=caption][data-final=false]').first().textContent().catch(() => '');
  console.log(`     partial: ${JSON.stringify(partialText)}`);
  const partialStyle = await page
    .evaluate(() => {
      const el = document.querySelector('[data-testid=caption][data-final=false]');
      return el ? getComputedStyle(el).fontStyle : 'italic'; // already replaced by its final
    });
  assert(partialStyle === 'italic', `partial captions should be italic, got ${partialStyle}`);
  await shot('live-partial');
  // The file (11 s) loops; a final with "country" arrives at the sentence's end, or at the latest
  // when we stop (the server finalises the open sentence).
  const finalCountry = page.locator('[data-testid=caption][data-final=true]').filter({ hasText: /country/i });
  const gotIt = await finalCountry.first().waitFor({ timeout: 40 * SEC }).then(() => true, () => false);
  if (gotIt) {
    // The README's picture shows both kinds: corrected finals and the grey partial of the next sentence.
    await page.locator('[data-testid=caption][data-final=false]').first().waitFor({ timeout: 6 * SEC }).catch(() => {});
    await shot('live', { docs: true });
  }
  await page.click('[data-testid=live-mic]');
  await finalCountry.first().waitFor({ timeout: 90 * SEC });
  const link = page.locator('[data-testid=live-saved]');
  await link.waitFor({ timeout: 90 * SEC });
  liveId = (await link.getAttribute('data-task-id')) || '';
  assert(liveId, 'no session id came with the captions');
  assert((await link.getAttribute('href')) === `#/task/${liveId}`, 'the saved-session link does not point at the session');
  // Partials are grey italic, finals normal.
  const styles = await page.evaluate(() => {
    const el = document.querySelector('[data-testid=caption][data-final=true]');
    return el ? getComputedStyle(el).fontStyle : '';
  });
  assert(styles === 'normal', `final captions should be upright, got ${styles}`);
  if (!gotIt) await shot('live', { docs: true });
  await shot('live-saved');
  const texts = await page.locator('[data-testid=caption]').allTextContents();
  console.log(`     captions: ${JSON.stringify(texts)}`);
});

await step('history: searching finds the live session', async () => {
  await page.click('[data-testid=live-saved]');
  await page.waitForSelector('[data-route="/task/:id"]');
  await page.click('[data-testid=nav-history]');
  await page.waitForSelector('[data-route="/history"]');
  const row = page.locator(`[data-testid=history-row][data-task-id="${liveId}"]`);
  const search = async () => {
    await page.fill('[data-testid=history-search]', 'country');
    await page.press('[data-testid=history-search]', 'Enter');
    await page.waitForFunction(() => location.hash.includes('q=country'));
    await page.waitForSelector('[data-testid=history-results][data-loading=false]');
  };
  // The session's text lands when the worker has written its sentences; search until it does.
  await search();
  const deadline = Date.now() + 90 * SEC;
  while (!(await row.count())) {
    assert(Date.now() < deadline, 'the live session did not show up when searching for "country"');
    await page.waitForTimeout(1000);
    await page.fill('[data-testid=history-search]', '');
    await search();
  }
  const marks = await row.locator('mark').allTextContents();
  assert(marks.some((m) => /country/i.test(m)), 'the match is not highlighted');
  await shot('history', { docs: true });
});

await step('history: the date filter narrows the list and clearing restores it', async () => {
  const today = await page.evaluate(() => {
    const d = new Date();
    return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  });
  const row = page.locator(`[data-testid=history-row][data-task-id="${liveId}"]`);
  await page.fill('[data-testid=history-from]', today);
  await page.waitForFunction((d) => location.hash.includes('from=' + d), today);
  await page.waitForSelector('[data-testid=history-results][data-loading=false]');
  assert((await row.count()) === 1, "today's session is missing with from=today");
  await page.fill('[data-testid=history-from]', '2099-01-01');
  await page.waitForFunction(() => location.hash.includes('from=2099-01-01'));
  await page.waitForSelector('[data-testid=history-empty]');
  await page.click('[data-testid=history-clear]');
  await page.waitForFunction(() => !location.hash.includes('from='));
  await row.waitFor();
});

await step('detail: the live session downloads as SRT that parses', async () => {
  await page.locator(`[data-testid=history-row][data-task-id="${liveId}"]`).click();
  await page.waitForSelector('[data-route="/task/:id"]');
  await page.waitForSelector('[data-testid=task-status][data-status=done]', { timeout: 90 * SEC });
  const srtLink = page.locator('a[data-testid=export-srt]');
  await srtLink.waitFor();
  const [download] = await Promise.all([page.waitForEvent('download'), srtLink.click()]);
  const file = join(ARTIFACTS, 'live-session.srt');
  await download.saveAs(file);
  const cues = parseSrt(readFileSync(file, 'utf8'));
  assert(cues.length > 0, 'the SRT has no cues');
  assert(cues.some((c) => /country/i.test(c.text)), 'no SRT cue says "country"');
  console.log(`     ${cues.length} SRT cue(s), first: ${JSON.stringify(cues[0])}`);
  await shot('live-detail');
});

await step('detail of the upload: segments, player and exports', async () => {
  await page.goto(`${BASE}#/task/${uploadId}`);
  await page.waitForSelector('[data-testid=task-status][data-status=done]', { timeout: 30 * SEC });
  await page.waitForSelector('[data-testid=segment]');
  await page.locator('[data-testid=segment]').nth(1).click().catch(() => {});
  await page.waitForTimeout(300);
  await shot('detail', { docs: true });
});

await step('system: the running worker is listed', async () => {
  await page.click('[data-testid=nav-system]');
  await page.waitForSelector('[data-testid=worker-row][data-active=true]', { timeout: 30 * SEC });
  const text = await page.locator('[data-testid=workers]').textContent();
  assert(/browser-worker/.test(text || ''), `the worker "browser-worker" is not listed: ${text}`);
  await shot('system', { docs: true });
});

await step('Chinese interface: the switch translates the navigation', async () => {
  await page.click('[data-testid=lang-switch]');
  await page.waitForSelector('[data-testid=lang-switch][data-lang=zh]');
  assert((await page.textContent('#nav-live')) === '实时', 'the Live link is not translated');
  await page.click('[data-testid=nav-live]');
  await page.waitForSelector('[data-route="/live"]');
  await shot('live-zh');
  await page.click('[data-testid=lang-switch]');
  await page.waitForSelector('[data-testid=lang-switch][data-lang=en]');
});

await step('phone width: every page fits a 390 px screen', async () => {
  await page.setViewportSize({ width: 390, height: 800 });
  const pages = { live: '#/live', transcribe: '#/', history: '#/history?q=country', detail: `#/task/${uploadId}`, system: '#/system' };
  for (const [name, hash] of Object.entries(pages)) {
    await page.goto(`${BASE}${hash}`);
    await page.waitForSelector('[data-route]');
    await page.waitForLoadState('networkidle').catch(() => {});
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await shot(`phone-${name}`);
    assert(overflow <= 0, `${name}: the page is ${overflow}px wider than the phone screen`);
  }
  await page.setViewportSize({ width: 1280, height: 800 });
});

await step('no uncaught errors in the page', async () => {
  assert(pageErrors.length === 0, pageErrors.join('; '));
});

/** A strict-enough SRT parser: numbered cues, `hh:mm:ss,mmm --> hh:mm:ss,mmm`, text lines. */
function parseSrt(src) {
  const blocks = src.replace(/^\uFEFF/, '').replace(/\r\n/g, '\n').trim().split(/\n{2,}/);
  const cues = [];
  let prevStart = 0;
  const ms = (s) => {
    const m = /^(\d{2}):(\d{2}):(\d{2}),(\d{3})$/.exec(s);
    if (!m) throw new Error(`bad SRT time ${s}`);
    return ((+m[1] * 60 + +m[2]) * 60 + +m[3]) * 1000 + +m[4];
  };
  for (const [i, block] of blocks.entries()) {
    const lines = block.split('\n');
    if (lines[0].trim() !== String(i + 1)) throw new Error(`SRT cue ${i + 1} is numbered ${lines[0]}`);
    const m = /^(\S+) --> (\S+)$/.exec(lines[1] ?? '');
    if (!m) throw new Error(`SRT cue ${i + 1} has no timing line`);
    const start = ms(m[1]);
    const end = ms(m[2]);
    if (end < start || start < prevStart) throw new Error(`SRT cue ${i + 1} times out of order`);
    prevStart = start;
    cues.push({ start, end, text: lines.slice(2).join('\n') });
  }
  return cues;
}

await finishRun();

async function finishRun() {
  await context.close();
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
  console.log(failures ? `${failures} step(s) failed` : `all browser steps passed (${MODE})`);
  process.exit(failures ? 1 : 0);
}
