// Browser smoke test of the built UI, driven through its data-testid hooks with playwright-core
// and a system Chromium. Against the mock: `npm run smoke`. Against a running gateway:
// `BASE=http://127.0.0.1:8080/ node dev/smoke.mjs` (the real worker needs real speech to
// produce text, so there the transcript may be empty; the flow is the same).
// CHROMIUM (default /usr/bin/chromium) names the browser; SHOTS=dir saves screenshots.
import { chromium } from 'playwright-core';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BASE = process.env.BASE || 'http://127.0.0.1:8090/';
const SHOTS = process.env.SHOTS || '';
const dir = mkdtempSync(join(tmpdir(), 'lanasr-smoke-'));
if (SHOTS) mkdirSync(SHOTS, { recursive: true });

function wav(seconds, rate = 16000) {
  const n = Math.floor(seconds * rate);
  const b = Buffer.alloc(44 + n * 2);
  b.write('RIFF', 0); b.writeUInt32LE(36 + n * 2, 4); b.write('WAVEfmt ', 8); b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22); b.writeUInt32LE(rate, 24); b.writeUInt32LE(rate * 2, 28);
  b.writeUInt16LE(2, 32); b.writeUInt16LE(16, 34); b.write('data', 36); b.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(2000 * Math.sin((2 * Math.PI * 330 * i) / rate)), 44 + i * 2);
  return b;
}
const audioFile = join(dir, `smoke 测试 ${Date.now()}.wav`);
writeFileSync(audioFile, wav(2));
const pngFile = join(dir, 'not-audio.png');
writeFileSync(pngFile, Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(2000, 7)]));

let failures = 0;
let passes = 0;
async function step(name, fn) {
  try {
    await fn();
    passes++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e.message.split('\n')[0]}`);
    if (SHOTS) await page.screenshot({ path: join(SHOTS, `fail-${passes + failures}.png`), fullPage: true }).catch(() => {});
  }
}
const shot = (name) => (SHOTS ? page.screenshot({ path: join(SHOTS, name + '.png'), fullPage: true }) : null);

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'en-US' });
const page = await context.newPage();
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(e.message));
let taskId = '';

await step('page loads with live events', async () => {
  await page.goto(BASE);
  await page.waitForSelector('[data-testid=file-input]', { state: 'attached' });
  await page.waitForSelector('[data-testid=conn-state][data-state=open]', { timeout: 10000 });
});

await step('upload: audio accepted, non-audio refused with the server message', async () => {
  await page.setInputFiles('[data-testid=file-input]', [audioFile, pngFile]);
  const bad = page.locator('[data-testid=upload-item][data-status=error]');
  await bad.waitFor({ timeout: 15000 });
  const msg = (await bad.locator('[data-testid=upload-error]').textContent()) || '';
  if (!msg.trim() || /HTTP \d+/.test(msg)) throw new Error(`unreadable error: ${msg}`);
  const good = page.locator('[data-testid=upload-item][data-task-id]:not([data-task-id=""])').first();
  await good.waitFor({ timeout: 15000 });
  taskId = (await good.getAttribute('data-task-id')) || '';
  if (!taskId) throw new Error('no task id');
});

await step('task reaches a terminal state through SSE', async () => {
  const item = page.locator(`[data-testid=upload-item][data-task-id="${taskId}"]`);
  await page.waitForFunction(
    (id) => ['done', 'failed'].includes(document.querySelector(`[data-testid=upload-item][data-task-id="${id}"]`)?.getAttribute('data-status') || ''),
    taskId,
    { timeout: 120000 },
  );
  if ((await item.getAttribute('data-status')) === 'done') await item.locator('[data-testid=transcript]').waitFor();
  await shot('transcribe');
});

await step('history lists and finds the task (Chinese query highlighted)', async () => {
  await page.click('[data-testid=nav-history]');
  await page.waitForSelector('[data-testid=history-search]');
  await page.fill('[data-testid=history-search]', '测试');
  const row = page.locator(`[data-testid=history-row][data-task-id="${taskId}"]`);
  await row.waitFor({ timeout: 10000 });
  const marked = await row.locator('mark').first().textContent();
  if (marked !== '测试') throw new Error(`highlight was ${marked}`);
  await shot('history');
  await row.click();
});

await step('detail shows player, exports and actions', async () => {
  await page.waitForSelector('[data-testid=audio-player]');
  await page.waitForSelector('[data-testid=task-status]');
  const status = await page.getAttribute('[data-testid=task-status]', 'data-status');
  if (status === 'done') {
    const href = await page.getAttribute('[data-testid=export-srt]', 'href');
    if (href !== `/api/v1/asr/export/${taskId}.srt`) throw new Error(`export href ${href}`);
    const segs = await page.locator('[data-testid=segment]').count();
    if (segs > 0) {
      await page.locator('[data-testid=segment]').last().click();
      await page.waitForSelector('[data-testid=segment].active', { timeout: 5000 });
    }
  } else {
    await page.waitForSelector('[data-testid=btn-retry]');
  }
  await shot('detail');
});

await step('delete asks first, then removes the task', async () => {
  await page.click('[data-testid=btn-delete]');
  await page.click('[data-testid=btn-delete-confirm]');
  await page.waitForSelector('[data-route="/history"]');
  await page.waitForFunction((id) => !document.querySelector(`[data-testid=history-row][data-task-id="${id}"]`), taskId);
});

await step('system lists workers and queue counts', async () => {
  await page.click('[data-testid=nav-system]');
  await page.waitForSelector('[data-testid=queue-queued]');
  await page.waitForSelector('[data-testid=worker-row], [data-testid=workers-empty]');
  await shot('system');
});

await step('language switch is remembered', async () => {
  await page.click('[data-testid=lang-switch]');
  await page.waitForFunction(() => document.documentElement.lang === 'zh-CN');
  await page.reload();
  const text = await page.textContent('[data-testid=nav-history]');
  if (text !== '历史记录') throw new Error(`nav says ${text}`);
});

await step('no uncaught page errors', async () => {
  if (pageErrors.length) throw new Error(pageErrors.join('; '));
});

await browser.close();
console.log(`${passes} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
