// A stand-in for the gateway, for working on the UI without Go, PostgreSQL or models:
// `npm run build && npm run mock` then open http://127.0.0.1:8090/. In-memory tasks, a fake
// worker that "transcribes" in a few seconds, SSE events, and the error shapes of the contract.
// Uploads whose name ends in .png get 415; names containing "fail" end as failed.
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';

const PORT = Number(process.env.PORT || 8090);
const DIST = resolve(process.argv[2] || new URL('../../gateway-go/ui/dist', import.meta.url).pathname);
const tasks = new Map();
const clients = new Set();
const now = () => new Date().toISOString();
const workers = [
  { id: 'master-1234-ab12', host: 'master', device: 'cuda', engine: 'funasr', queues: ['batch', 'final'],
    models: { asr: 'paraformer-zh', vad: 'fsmn-vad', punc: 'ct-punc' }, concurrency: 1, state: 'idle',
    current_task: null, jobs_done: 0, avg_rtf: 0.05, last_heartbeat: now(), started_at: now(), version: '0.1.0', error: null, active: true },
  { id: 'laptop-77-9f3e', host: 'laptop', device: 'cpu', engine: 'offline', queues: ['batch'],
    models: { asr: 'whisper-base (ctranslate2)' }, concurrency: 1, state: 'gone', current_task: null, jobs_done: 3,
    avg_rtf: 0.4, last_heartbeat: new Date(Date.now() - 3600e3).toISOString(), started_at: now(), version: '0.1.0', error: null, active: false },
];

function send(res, status, body, headers = {}) {
  const data = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', ...headers });
  res.end(data);
}
const fail = (res, status, code, error) => send(res, status, { error, code });
function emit(type, payload) {
  const msg = `event: ${type}\ndata: ${JSON.stringify(payload)}\n\n`;
  for (const c of clients) c.write(msg);
}
function taskEvent(t, op = 'update') {
  emit('task', { type: 'task', op, task_id: t.task_id, kind: t.kind, status: op === 'delete' ? 'deleted' : t.status, progress: t.progress });
}
function position(t) {
  if (t.status !== 'queued') return null;
  return [...tasks.values()].filter((x) => x.status === 'queued' && x.created_at <= t.created_at).length;
}
const view = (t, withSegs = true) => {
  const { segments, ...rest } = t;
  return { ...rest, position: position(t), ...(withSegs ? { segments } : {}) };
};

const SAMPLE = [
  ['今天天气很好，我们去公园散步吧。', 'Ask not what your country can do for you.'],
  ['语音识别的结果会保存在数据库里。', 'The quick brown fox jumps over the lazy dog (twice).'],
];

function createTask(filename, language) {
  const id = randomUUID();
  const t = { task_id: id, kind: 'file', status: 'queued', progress: 0, text: '', segments: [], duration: null,
    language: language === 'auto' ? null : language, model: null, engine: null, worker: null, rtf: null, filename,
    created_at: now(), started_at: null, finished_at: null, audio_url: `/api/v1/asr/audio/${id}`, error: null };
  tasks.set(id, t);
  taskEvent(t, 'insert');
  return t;
}

// The fake worker: one task at a time, ~4 s each.
let running = null;
setInterval(() => {
  workers[0].last_heartbeat = now();
  if (running) {
    const t = tasks.get(running);
    if (!t || t.status !== 'processing') { running = null; setWorker('idle', null); return; }
    t.progress = Math.min(1, +(t.progress + 0.25).toFixed(2));
    if (t.progress >= 1) {
      if (/fail/i.test(t.filename)) {
        Object.assign(t, { status: 'failed', error: 'The audio could not be decoded: invalid data found when processing input.', finished_at: now() });
      } else {
        const [zh, en] = SAMPLE[t.filename.length % 2];
        t.segments = [{ start: 0, end: 2.4, text: zh }, { start: 2.4, end: 5.1, text: en }, { start: 6, end: 8.25, text: 'Segment three <b>not bold</b> & more.' }];
        Object.assign(t, { status: 'done', text: t.segments.map((s) => s.text).join(' '), duration: 9.5, language: t.language || 'zh',
          model: 'paraformer-zh', engine: 'funasr', rtf: 0.05, finished_at: now() });
      }
      workers[0].jobs_done++;
      running = null;
      setWorker('idle', null);
    }
    taskEvent(t);
    return;
  }
  const next = [...tasks.values()].filter((t) => t.status === 'queued').sort((a, b) => a.created_at.localeCompare(b.created_at))[0];
  if (next) {
    running = next.task_id;
    Object.assign(next, { status: 'processing', started_at: now(), worker: workers[0].id, progress: 0 });
    setWorker('busy', next.task_id);
    taskEvent(next);
  }
}, 1000);
function setWorker(state, current) {
  workers[0].state = state;
  workers[0].current_task = current;
  emit('worker', { type: 'worker', worker_id: workers[0].id, state, current_task: current });
}

function wav(seconds = 9.5, rate = 16000) {
  const n = Math.floor(seconds * rate);
  const b = Buffer.alloc(44 + n * 2);
  b.write('RIFF', 0); b.writeUInt32LE(36 + n * 2, 4); b.write('WAVEfmt ', 8); b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22); b.writeUInt32LE(rate, 24); b.writeUInt32LE(rate * 2, 28);
  b.writeUInt16LE(2, 32); b.writeUInt16LE(16, 34); b.write('data', 36); b.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(3000 * Math.sin((2 * Math.PI * 440 * i) / rate)), 44 + i * 2);
  return b;
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks);
}

const ts = (s, sep) => {
  const ms = Math.round(s * 1000);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(Math.floor(ms / 3600000))}:${p(Math.floor(ms / 60000) % 60)}:${p(Math.floor(ms / 1000) % 60)}${sep}${p(ms % 1000, 3)}`;
};

async function api(req, res, url) {
  const p = url.pathname;
  let m;
  if (p === '/api/v1/events') {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
    res.write(': hello\n\n');
    clients.add(res);
    req.on('close', () => clients.delete(res));
    return;
  }
  if (p === '/api/v1/asr/submit' && req.method === 'POST') {
    const body = await readBody(req);
    const head = body.subarray(0, 4096).toString('latin1');
    const name = /name="audio"; filename="([^"]*)"/.exec(head)?.[1];
    const lang = /name="language"\r\n\r\n([^\r]*)/.exec(body.toString('latin1'))?.[1] || 'auto';
    if (!name) return fail(res, 400, 'invalid', 'The multipart field "audio" is missing.');
    const filename = Buffer.from(name, 'latin1').toString('utf8');
    if (/\.png$/i.test(filename)) return fail(res, 415, 'unsupported_media', 'The upload is not audio (it looks like a PNG image).');
    if (body.length < 300) return fail(res, 400, 'invalid', 'The uploaded file is empty.');
    const t = createTask(filename, lang);
    return send(res, 202, { task_id: t.task_id, status: 'queued', position: position(t), estimated_wait: 4 * position(t) });
  }
  if ((m = /^\/api\/v1\/asr\/result\/([^/]+)$/.exec(p))) {
    const t = tasks.get(m[1]);
    return t ? send(res, 200, view(t)) : fail(res, 404, 'not_found', `No task ${m[1]}.`);
  }
  if (p === '/api/v1/asr/history') {
    const q = (url.searchParams.get('q') || '').toLowerCase();
    const st = url.searchParams.get('status');
    const kind = url.searchParams.get('kind');
    const limit = Number(url.searchParams.get('limit') || 20);
    const offset = Number(url.searchParams.get('offset') || 0);
    if (!(limit >= 1 && limit <= 200)) return fail(res, 400, 'invalid', 'limit must be between 1 and 200.');
    const all = [...tasks.values()]
      .filter((t) => (!q || t.text.toLowerCase().includes(q) || t.filename.toLowerCase().includes(q)) && (!st || t.status === st) && (!kind || t.kind === kind))
      .sort((a, b) => b.created_at.localeCompare(a.created_at));
    return send(res, 200, { total: all.length, limit, offset, records: all.slice(offset, offset + limit).map((t) => view(t, false)) });
  }
  if (p === '/api/v1/asr/queue/status') {
    const c = (s) => [...tasks.values()].filter((t) => t.status === s).length;
    return send(res, 200, { queued: c('queued'), processing: c('processing'), done: c('done'), failed: c('failed'), canceled: c('canceled'),
      workers: workers.filter((w) => w.active).length, workers_busy: workers.filter((w) => w.state === 'busy').length });
  }
  if (p === '/api/v1/workers') return send(res, 200, { workers });
  if (p === '/api/v1/health') return send(res, 200, { status: 'ready', database: 'ok', workers_active: 1, engines: ['funasr'], version: '0.1.0-mock' });
  if ((m = /^\/api\/v1\/asr\/(retry|cancel)\/([^/]+)$/.exec(p)) && req.method === 'POST') {
    const t = tasks.get(m[2]);
    if (!t) return fail(res, 404, 'not_found', `No task ${m[2]}.`);
    if (m[1] === 'retry') {
      if (!['failed', 'canceled'].includes(t.status)) return fail(res, 409, 'conflict', `Only failed or canceled tasks can be retried; this one is ${t.status}.`);
      Object.assign(t, { status: 'queued', progress: 0, error: null, text: '', segments: [], finished_at: null });
      taskEvent(t);
      return send(res, 202, { task_id: t.task_id, status: 'queued' });
    }
    if (!['queued', 'processing'].includes(t.status)) return fail(res, 409, 'conflict', `The task is already ${t.status}.`);
    Object.assign(t, { status: 'canceled', finished_at: now(), error: 'Canceled by the user.' });
    taskEvent(t);
    return send(res, 200, { task_id: t.task_id, status: 'canceled' });
  }
  if ((m = /^\/api\/v1\/asr\/task\/([^/]+)$/.exec(p)) && req.method === 'DELETE') {
    const t = tasks.get(m[1]);
    if (!t) return fail(res, 404, 'not_found', `No task ${m[1]}.`);
    tasks.delete(m[1]);
    taskEvent(t, 'delete');
    return send(res, 200, { task_id: t.task_id, deleted: true });
  }
  if ((m = /^\/api\/v1\/asr\/audio\/([^/]+)$/.exec(p))) {
    if (!tasks.has(m[1])) return fail(res, 404, 'not_found', `No task ${m[1]}.`);
    const b = wav();
    const range = /bytes=(\d+)-(\d*)/.exec(req.headers.range || '');
    if (range) {
      const start = Number(range[1]);
      const end = range[2] ? Number(range[2]) : b.length - 1;
      res.writeHead(206, { 'Content-Type': 'audio/wav', 'Accept-Ranges': 'bytes', 'Content-Range': `bytes ${start}-${end}/${b.length}`, 'Content-Length': end - start + 1 });
      return res.end(b.subarray(start, end + 1));
    }
    res.writeHead(200, { 'Content-Type': 'audio/wav', 'Accept-Ranges': 'bytes', 'Content-Length': b.length });
    return res.end(b);
  }
  if ((m = /^\/api\/v1\/asr\/export\/([^/]+)\.(txt|srt|vtt|json)$/.exec(p))) {
    const t = tasks.get(m[1]);
    if (!t) return fail(res, 404, 'not_found', `No task ${m[1]}.`);
    const cd = { 'Content-Disposition': `attachment; filename="${m[1]}.${m[2]}"` };
    if (m[2] === 'json') return send(res, 200, view(t), cd);
    if (m[2] === 'txt') return send(res, 200, t.text + '\n', { ...cd, 'Content-Type': 'text/plain; charset=utf-8' });
    const sep = m[2] === 'srt' ? ',' : '.';
    const cues = t.segments.map((s, i) => `${m[2] === 'srt' ? i + 1 + '\n' : ''}${ts(s.start, sep)} --> ${ts(s.end, sep)}\n${s.text}\n`).join('\n');
    return send(res, 200, (m[2] === 'vtt' ? 'WEBVTT\n\n' : '') + cues, { ...cd, 'Content-Type': 'text/plain; charset=utf-8' });
  }
  return fail(res, 404, 'not_found', 'No such API endpoint.');
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };

createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  try {
    if (url.pathname.startsWith('/api/')) return await api(req, res, url);
    let file = join(DIST, url.pathname);
    if (!file.startsWith(DIST) || !(await stat(file).catch(() => null))?.isFile()) file = join(DIST, 'index.html');
    const data = await readFile(file);
    res.writeHead(200, { 'Content-Type': TYPES[extname(file)] || 'application/octet-stream' });
    res.end(data);
  } catch (e) {
    fail(res, 500, 'internal', String(e));
  }
}).listen(PORT, '127.0.0.1', () => console.log(`mock gateway on http://127.0.0.1:${PORT}/ serving ${DIST}`));
