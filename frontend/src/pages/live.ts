// Live: microphone → AudioWorklet (16 kHz PCM16) → WebSocket /api/v1/asr/stream (FunASR 2pass
// protocol) → captions: grey italic partials, replaced in place by the corrected final sentence.

import { h, replaceChildren } from '../dom';
import { CaptionBook, type CaptionMessage, type Sentence } from '../captions';
import { CaptureError, startCapture, type Capture } from '../audio/capture';
import { meterPosition } from '../audio/resampler';
import { formatDuration } from '../format';
import { t, type MessageKey } from '../i18n';
import type { PageContext } from '../main';
import { toast } from '../ui';
import { withToken } from '../auth';

type State = 'idle' | 'connecting' | 'recording' | 'finishing' | 'done' | 'error';

const FRAME = 960; // 60 ms at 16 kHz, what FunASR's own clients send (chunk_size 10 / interval 10)
const END_TIMEOUT_MS = 65_000; // the gateway waits up to 60 s for the worker's last caption
const LANGS = ['auto', 'zh', 'en'] as const;
const MIC_SVG =
  '<svg viewBox="0 0 24 24" width="28" height="28" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">' +
  '<rect x="9" y="3" width="6" height="11" rx="3"/><path d="M5.5 11a6.5 6.5 0 0 0 13 0"/><path d="M12 17.5V21"/></svg>';

function stored(key: string, fallback: string): string {
  try {
    return localStorage.getItem(key) ?? fallback;
  } catch {
    return fallback;
  }
}
function store(key: string, value: string): void {
  try {
    localStorage.setItem(key, value);
  } catch {
    /* private mode */
  }
}

/** The session's name in the history: `live-20261122-143005` (local time). */
export function sessionName(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `live-${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

export function streamUrl(loc: { protocol: string; host: string } = location): string {
  return withToken(`${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/api/v1/asr/stream`);
}

export function mountLive(root: HTMLElement, _ctx: PageContext): () => void {
  let state: State = 'idle';
  let capture: Capture | null = null;
  let ws: WebSocket | null = null;
  let taskId: string | null = null;
  let startedAt = 0;
  let timerId: number | undefined;
  let endTimer: number | undefined;
  let gotEnd = false;
  let serverError = false;
  let alive = true;
  const pending: ArrayBuffer[] = []; // frames captured before the socket opened
  const book = new CaptionBook();
  const nodes = new Map<number, HTMLElement>();

  // ---- options ----
  const langSel = h(
    'select',
    { id: 'live-language', 'data-testid': 'live-language' },
    LANGS.map((v) => h('option', { value: v, selected: v === stored('lanasr.live.language', 'auto') }, t(`tx.lang.${v}` as MessageKey))),
  );
  const hotInput = h('input', {
    type: 'text',
    id: 'live-hotwords',
    'data-testid': 'live-hotwords',
    placeholder: t('live.hotwords.placeholder'),
    value: stored('lanasr.live.hotwords', ''),
    autocomplete: 'off',
  });
  langSel.addEventListener('change', () => store('lanasr.live.language', langSel.value));
  hotInput.addEventListener('change', () => store('lanasr.live.hotwords', hotInput.value));

  // ---- controls ----
  const micLabel = h('span', { class: 'mic-label' });
  const micBtn = h(
    'button',
    { type: 'button', class: 'mic', id: 'live-mic', 'data-testid': 'live-mic', onclick: () => (isActive() ? stop() : start()) },
    h('span', { class: 'mic-icon', 'aria-hidden': 'true', html: MIC_SVG }),
    h('span', { class: 'stop-icon', 'aria-hidden': 'true' }),
    micLabel,
  );
  const meterFill = h('span', { class: 'meter-fill' });
  const meterPeak = h('span', { class: 'meter-peak' });
  const meter = h(
    'div',
    { class: 'meter', id: 'live-level', 'data-testid': 'live-level', role: 'meter', 'aria-label': t('live.level'), 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': 0, 'data-level': '0' },
    meterFill,
    meterPeak,
  );
  const timer = h('span', { class: 'live-timer', 'data-testid': 'live-timer' }, '0:00');
  const statusText = h('span', { class: 'live-status', 'data-testid': 'live-status', role: 'status' });
  const formatText = h('span', { class: 'muted small live-format', 'data-testid': 'live-format' });
  const errorHost = h('div', { class: 'live-error-host' });
  const savedHost = h('div', { class: 'live-saved-host' });

  // ---- captions ----
  const placeholder = h('p', { class: 'captions-empty muted', 'data-testid': 'live-empty' }, t('live.placeholder'));
  const captions = h('div', { class: 'captions', id: 'live-captions', 'data-testid': 'live-captions', 'aria-live': 'polite' }, placeholder);
  const copyBtn = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'live-copy', disabled: true, onclick: () => copyText() }, t('live.copy'));
  const clearBtn = h('button', { type: 'button', class: 'btn btn-small btn-ghost', 'data-testid': 'live-clear', disabled: true, onclick: () => clearCaptions() }, t('live.clear'));

  function isActive(): boolean {
    return state === 'connecting' || state === 'recording';
  }

  function setState(s: State): void {
    state = s;
    root.dataset.state = s;
    micBtn.dataset.state = s;
    micBtn.classList.toggle('mic-on', s === 'recording');
    micBtn.disabled = s === 'finishing';
    micLabel.textContent = isActive() ? t('live.stop') : t('live.start');
    micBtn.title = isActive() ? t('live.stop.title') : t('live.start.title');
    micBtn.setAttribute('aria-pressed', String(isActive()));
    statusText.textContent = t(`live.state.${s}` as MessageKey);
    statusText.dataset.state = s;
    langSel.disabled = s !== 'idle' && s !== 'done' && s !== 'error';
    hotInput.disabled = langSel.disabled;
    if (s !== 'recording') {
      peakHold = 0;
      setLevel(0, 0);
    }
  }

  let peakHold = 0;
  function setLevel(rms: number, peak: number): void {
    const pos = meterPosition(rms);
    const pk = meterPosition(peak);
    peakHold = Math.max(pk, peakHold * 0.92);
    meterFill.style.clipPath = `inset(0 ${(100 - pos * 100).toFixed(1)}% 0 0)`;
    meterPeak.style.left = `${(peakHold * 100).toFixed(1)}%`;
    meterPeak.style.opacity = peakHold > 0.02 ? '1' : '0';
    meter.dataset.level = pos.toFixed(2);
    meter.setAttribute('aria-valuenow', String(Math.round(pos * 100)));
    meter.classList.toggle('meter-hot', pk > 0.97);
  }

  function showError(message: string): void {
    replaceChildren(errorHost, h('div', { class: 'alert', role: 'alert', 'data-testid': 'live-error' }, h('span', null, message)));
  }

  function tick(): void {
    timer.textContent = formatDuration(Math.floor((Date.now() - startedAt) / 1000));
  }

  async function start(): Promise<void> {
    if (isActive() || state === 'finishing') return;
    replaceChildren(errorHost);
    replaceChildren(savedHost);
    clearCaptions();
    taskId = null;
    gotEnd = false;
    serverError = false;
    pending.length = 0;
    formatText.textContent = '';
    setState('connecting');

    try {
      capture = await startCapture({ onFrame }, FRAME);
    } catch (err) {
      if (!alive) return;
      const kind = err instanceof CaptureError ? err.kind : 'busy';
      showError(t(`live.err.${kind}` as MessageKey));
      setState('error');
      return;
    }
    if (!alive || state !== 'connecting') {
      void capture.stop();
      capture = null;
      return;
    }
    formatText.textContent = t('live.format', { rate: +(capture.inputRate / 1000).toFixed(1) });
    openSocket();
  }

  function openSocket(): void {
    let opened = false;
    try {
      ws = new WebSocket(streamUrl());
    } catch {
      fail(t('live.err.connect'));
      return;
    }
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      opened = true;
      ws!.send(
        JSON.stringify({
          mode: '2pass',
          wav_name: sessionName(new Date()),
          wav_format: 'pcm',
          audio_fs: 16000,
          chunk_size: [5, 10, 5],
          chunk_interval: 10,
          is_speaking: true,
          hotwords: hotInput.value.trim(),
          itn: true,
          language: langSel.value,
        }),
      );
      for (const f of pending.splice(0)) ws!.send(f);
      startedAt = Date.now();
      tick();
      timerId = window.setInterval(tick, 500);
      setState('recording');
    };
    ws.onmessage = (e) => {
      if (typeof e.data !== 'string') return;
      let m: CaptionMessage;
      try {
        m = JSON.parse(e.data);
      } catch {
        return;
      }
      onMessage(m);
    };
    ws.onclose = (e) => {
      ws = null;
      if (!alive) return;
      if (state === 'finishing' || gotEnd) {
        finish();
        return;
      }
      if (state === 'connecting' || state === 'recording') {
        if (!serverError) fail(opened ? t('live.err.closed', { code: e.code }) : t('live.err.connect'));
        else teardown('error');
      }
    };
  }

  function onFrame(pcm: ArrayBuffer, rms: number, peak: number): void {
    if (state === 'recording') setLevel(rms, peak);
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(pcm);
    } else if (state === 'connecting' && pending.length < 200) {
      pending.push(pcm);
    }
  }

  function onMessage(m: CaptionMessage): void {
    const id = m.task_id || m.session_id;
    if (id && !taskId) taskId = id;
    if (m.error) {
      const key = `live.err.${m.code}` as MessageKey;
      const localized = m.code ? t(key) : '';
      showError(localized && localized !== key ? localized : m.error);
      // worker_lost is a warning: the session goes on and captions resume on another worker.
      if (m.code !== 'worker_lost') {
        serverError = true;
        if (state === 'connecting' || state === 'recording') teardown('error');
      }
      return;
    }
    const s = book.apply(m);
    if (s) renderSentence(s);
    if (m.is_final || m.is_end) {
      gotEnd = true;
      if (state === 'finishing') finish();
    }
  }

  function renderSentence(s: Sentence): void {
    placeholder.remove();
    let el = nodes.get(s.index);
    if (!el) {
      el = h('p', { class: 'caption', 'data-testid': 'caption', 'data-sentence': s.index });
      nodes.set(s.index, el);
      // Keep sentences in order even if messages arrive out of order.
      const after = [...nodes.entries()].filter(([i]) => i > s.index).sort((a, b) => a[0] - b[0])[0];
      captions.insertBefore(el, after ? after[1] : null);
    }
    if (!s.text.trim() && s.final) {
      el.remove();
      nodes.delete(s.index);
    } else {
      el.className = 'caption ' + (s.final ? 'caption-final' : 'caption-partial');
      el.dataset.final = String(s.final);
      el.textContent = s.text;
      if (!s.final) el.title = t('live.partial');
      else el.removeAttribute('title');
    }
    const any = nodes.size > 0;
    copyBtn.disabled = !any;
    clearBtn.disabled = !any || isActive() || state === 'finishing';
    if (!any && !placeholder.isConnected) captions.append(placeholder);
    // Follow the newest caption unless the reader scrolled up.
    const nearBottom = captions.scrollHeight - captions.scrollTop - captions.clientHeight < 80;
    if (nearBottom) captions.scrollTop = captions.scrollHeight;
  }

  async function stop(): Promise<void> {
    if (state === 'connecting') {
      // Nothing was sent yet: just give up.
      ws?.close(1000);
      teardown('idle');
      return;
    }
    if (state !== 'recording') return;
    setState('finishing');
    clearInterval(timerId);
    const rest = capture ? await capture.stop() : null;
    capture = null;
    if (ws && ws.readyState === WebSocket.OPEN) {
      if (rest && rest.byteLength) ws.send(rest);
      ws.send(JSON.stringify({ is_speaking: false }));
      if (gotEnd) finish();
      else
        endTimer = window.setTimeout(() => {
          if (state === 'finishing') {
            toast(t('live.err.timeout'), 'error');
            finish();
          }
        }, END_TIMEOUT_MS);
    } else {
      finish();
    }
  }

  function finish(): void {
    if (state === 'done') return;
    clearTimeout(endTimer);
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
    ws = null;
    teardown('done');
    const href = taskId ? `#/task/${encodeURIComponent(taskId)}` : '#/history?kind=live';
    replaceChildren(
      savedHost,
      h(
        'div',
        { class: 'saved-bar', 'data-testid': 'live-saved-bar' },
        h('span', { class: 'saved-check', 'aria-hidden': 'true' }),
        h('span', null, t('live.saved')),
        h(
          'a',
          { class: 'btn btn-primary btn-small', href, id: 'live-saved', 'data-testid': 'live-saved', 'data-task-id': taskId ?? '' },
          taskId ? t('live.open') : t('live.open.history'),
          ' →',
        ),
      ),
    );
  }

  function fail(message: string): void {
    showError(message);
    teardown('error');
  }

  function teardown(next: State): void {
    clearInterval(timerId);
    clearTimeout(endTimer);
    if (capture) void capture.stop();
    capture = null;
    if (ws && next !== 'done') {
      const sock = ws;
      ws = null;
      sock.onclose = null;
      if (sock.readyState === WebSocket.OPEN) {
        try {
          sock.send(JSON.stringify({ is_speaking: false }));
        } catch {
          /* closing anyway */
        }
      }
      sock.close(1000);
    }
    pending.length = 0;
    setState(next);
    clearBtn.disabled = nodes.size === 0;
  }

  function clearCaptions(): void {
    book.clear();
    for (const el of nodes.values()) el.remove();
    nodes.clear();
    if (!placeholder.isConnected) captions.append(placeholder);
    copyBtn.disabled = true;
    clearBtn.disabled = true;
  }

  function copyText(): void {
    const text = book.text();
    navigator.clipboard?.writeText(text).then(
      () => toast(t('detail.copied')),
      () => toast(text),
    );
  }

  root.append(
    h('h1', null, t('live.heading')),
    h('p', { class: 'lead muted' }, t('live.intro')),
    h(
      'section',
      { class: 'card live-card' },
      h(
        'div',
        { class: 'live-controls' },
        micBtn,
        h(
          'div',
          { class: 'live-readout' },
          h('div', { class: 'live-line' }, statusText, timer),
          meter,
          formatText,
        ),
      ),
      h(
        'div',
        { class: 'options live-options' },
        h('label', { class: 'field' }, h('span', null, t('tx.language')), langSel),
        h('label', { class: 'field field-grow' }, h('span', null, t('tx.hotwords')), hotInput),
      ),
    ),
    errorHost,
    savedHost,
    h(
      'section',
      { class: 'card captions-card' },
      h('div', { class: 'section-head' }, h('h2', null, t('live.captions')), h('div', { class: 'actions' }, copyBtn, clearBtn)),
      captions,
    ),
  );
  setState('idle');

  return () => {
    alive = false;
    // Leaving the page ends the session cleanly: what was sent is saved by the server.
    teardown('idle');
  };
}
