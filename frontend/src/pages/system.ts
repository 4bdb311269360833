// System: the queue and every worker (host, device, engine, queues, models, state, current task,
// heartbeat), refreshed from SSE `worker` / `task` events and, as a safety net, every 10 s.

import { api, type Health, type QueueStatus, type WorkerInfo } from '../api';
import { h, replaceChildren } from '../dom';
import { coalesce, events } from '../events';
import { t, type MessageKey } from '../i18n';
import { errorBox, relTime } from '../ui';

const isPathKey = (k: string) => /(_path|_dir)$/.test(k);

/** Models as reported by a worker (an object of role → name, a list, or a string) as text lines;
 * local file paths (`asr_path`, …) are left out here and shown by `modelPaths` as a tooltip. */
export function modelLines(models: unknown): string[] {
  if (models == null) return [];
  if (typeof models === 'string') return models ? [models] : [];
  if (Array.isArray(models)) return models.map((m) => (typeof m === 'string' ? m : JSON.stringify(m)));
  if (typeof models === 'object') {
    return Object.entries(models as Record<string, unknown>)
      .filter(([k, v]) => v !== null && v !== undefined && v !== '' && !isPathKey(k))
      .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  return [String(models)];
}

/** The local model paths a worker reported, one per line (for a tooltip). */
export function modelPaths(models: unknown): string {
  if (!models || typeof models !== 'object' || Array.isArray(models)) return '';
  return Object.entries(models as Record<string, unknown>)
    .filter(([k, v]) => isPathKey(k) && typeof v === 'string' && v)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\n');
}

const QUEUE_FIELDS: [keyof QueueStatus, MessageKey][] = [
  ['queued', 'sys.q.queued'],
  ['processing', 'sys.q.processing'],
  ['done', 'sys.q.done'],
  ['failed', 'sys.q.failed'],
  ['canceled', 'sys.q.canceled'],
  ['workers', 'sys.q.workers'],
  ['workers_busy', 'sys.q.busy'],
];

export function mountSystem(root: HTMLElement): () => void {
  let alive = true;
  let workers: WorkerInfo[] | null = null;

  const healthEl = h('div', { class: 'health', 'data-testid': 'health' });
  const queueEl = h('div', { class: 'stats', id: 'queue-status', 'data-testid': 'queue-status' });
  const workersEl = h('div', { class: 'workers', id: 'workers', 'data-testid': 'workers' });

  root.append(
    h('div', { class: 'section-head' }, h('h1', null, t('sys.heading')), healthEl),
    h('section', null, h('h2', null, t('sys.queue')), queueEl),
    h('section', null, h('h2', null, t('sys.workers')), workersEl),
  );

  function loadQueue(): void {
    api.queueStatus().then(
      (q) => alive && renderQueue(q),
      (err) => alive && replaceChildren(queueEl, errorBox(err, loadQueue)),
    );
    api.health().then(
      (hl) => alive && renderHealth(hl),
      () => alive && renderHealth({ status: 'unreachable' }),
    );
  }

  function loadWorkers(): void {
    api.workers().then(
      (res) => {
        if (!alive) return;
        workers = res.workers ?? [];
        renderWorkers();
      },
      (err) => alive && replaceChildren(workersEl, errorBox(err, loadWorkers)),
    );
  }

  function renderHealth(hl: Health): void {
    const ok = hl.status === 'ready';
    replaceChildren(
      healthEl,
      h(
        'span',
        { class: 'badge ' + (ok ? 'badge-done' : 'badge-failed'), 'data-testid': 'health-status', 'data-status': hl.status, title: hl.reason ?? '' },
        `${t('sys.health')}: ${ok ? t('sys.health.ready') : hl.status}`,
      ),
      !ok && hl.reason ? h('span', { class: 'muted small' }, hl.reason) : null,
      hl.version ? h('span', { class: 'muted small', 'data-testid': 'version' }, /^\d/.test(hl.version) ? 'v' + hl.version : hl.version) : null,
    );
  }

  function renderQueue(q: QueueStatus): void {
    replaceChildren(
      queueEl,
      QUEUE_FIELDS.map(([k, label]) =>
        h(
          'div',
          { class: 'stat card stat-' + k + ((q[k] ?? 0) > 0 ? ' nonzero' : ''), 'data-testid': 'queue-' + k.replace('_', '-'), 'data-value': q[k] ?? 0 },
          h('span', { class: 'stat-value' }, String(q[k] ?? 0)),
          h('span', { class: 'stat-label' }, t(label)),
        ),
      ),
    );
  }

  function renderWorkers(): void {
    if (!workers) return;
    if (!workers.length) {
      replaceChildren(workersEl, h('p', { class: 'empty muted', 'data-testid': 'workers-empty' }, t('sys.noworkers')));
      return;
    }
    const sorted = [...workers].sort((a, b) => Number(b.active !== false) - Number(a.active !== false) || a.id.localeCompare(b.id));
    const now = Date.now();
    replaceChildren(
      workersEl,
      h(
        'div',
        { class: 'table workers-table', role: 'table' },
        h(
          'div',
          { class: 'tr th', role: 'row' },
          (['sys.col.worker', 'sys.col.device', 'sys.col.queues', 'sys.col.models', 'sys.col.state', 'sys.col.task', 'sys.col.heartbeat'] as MessageKey[]).map(
            (k) => h('span', { role: 'columnheader' }, t(k)),
          ),
        ),
        sorted.map((w) => {
          const queues = Array.isArray(w.queues) ? w.queues.join(', ') : w.queues || '';
          const state = w.state || 'unknown';
          return h(
            'div',
            {
              class: 'tr worker-row' + (w.active === false ? ' inactive' : ''),
              role: 'row',
              'data-testid': 'worker-row',
              'data-worker-id': w.id,
              'data-state': state,
              'data-active': String(w.active !== false),
            },
            h(
              'span',
              { class: 'cell cell-file', role: 'cell' },
              h('span', { class: 'file-name', 'data-testid': 'worker-host' }, w.host || w.id),
              h('span', { class: 'muted small mono-ish' }, w.id),
              w.version ? h('span', { class: 'muted small' }, /^\d/.test(w.version) ? 'v' + w.version : w.version) : null,
            ),
            h(
              'span',
              { class: 'cell', role: 'cell', 'data-label': t('sys.col.device') },
              h('span', { 'data-testid': 'worker-device' }, w.device || '—'),
              ' / ',
              h('span', { 'data-testid': 'worker-engine' }, w.engine || '—'),
            ),
            h('span', { class: 'cell', role: 'cell', 'data-label': t('sys.col.queues'), 'data-testid': 'worker-queues' }, queues || '—'),
            h(
              'span',
              { class: 'cell models', role: 'cell', 'data-label': t('sys.col.models'), 'data-testid': 'worker-models', title: modelPaths(w.models) || undefined },
              modelLines(w.models).map((m) => h('span', { class: 'model' }, m)),
            ),
            h(
              'span',
              { class: 'cell', role: 'cell', 'data-label': t('sys.col.state') },
              h('span', { class: 'badge wstate-' + state, 'data-testid': 'worker-state' }, t(('wstate.' + state) as MessageKey)),
              w.active === false && state !== 'gone' ? h('span', { class: 'muted small' }, ' ' + t('sys.inactive')) : null,
              w.error ? h('span', { class: 'alert alert-inline small', role: 'alert' }, w.error) : null,
            ),
            h(
              'span',
              { class: 'cell', role: 'cell', 'data-label': t('sys.col.task'), 'data-testid': 'worker-task' },
              w.current_task
                ? h('a', { href: `#/task/${encodeURIComponent(w.current_task)}`, class: 'mono-ish' }, w.current_task.slice(0, 8))
                : '—',
              typeof w.jobs_done === 'number' ? h('span', { class: 'muted small' }, ` · ${t('sys.col.jobs')}: ${w.jobs_done}`) : null,
              typeof w.avg_rtf === 'number' ? h('span', { class: 'muted small' }, ` · RTF ${w.avg_rtf.toFixed(2)}`) : null,
            ),
            h(
              'span',
              { class: 'cell', role: 'cell', 'data-label': t('sys.col.heartbeat') },
              h(
                'time',
                { class: 'heartbeat', 'data-testid': 'worker-heartbeat', datetime: w.last_heartbeat ?? '', title: w.last_heartbeat ?? '' },
                relTime(w.last_heartbeat, now),
              ),
            ),
          );
        }),
      ),
    );
  }

  // "3 s ago" has to keep counting between refetches.
  const ticker = setInterval(() => {
    for (const el of workersEl.querySelectorAll<HTMLElement>('time.heartbeat')) {
      el.textContent = relTime(el.getAttribute('datetime'));
    }
  }, 1000);

  const refreshWorkers = coalesce(loadWorkers, 400);
  const refreshQueue = coalesce(loadQueue, 400);
  const offWorker = events.onWorker(() => {
    refreshWorkers();
    refreshQueue();
  });
  const offTask = events.onTask((ev) => {
    if (ev.op === 'update' && ev.status === 'processing' && typeof ev.progress === 'number' && ev.progress > 0) return;
    refreshQueue();
  });
  const offResync = events.onResync(() => {
    refreshWorkers();
    refreshQueue();
  });
  const safety = setInterval(() => {
    loadWorkers();
    loadQueue();
  }, 10000);

  loadQueue();
  loadWorkers();

  return () => {
    alive = false;
    clearInterval(ticker);
    clearInterval(safety);
    refreshWorkers.cancel();
    refreshQueue.cancel();
    offWorker();
    offTask();
    offResync();
  };
}
