// Transcribe: pick or drop files, watch each upload, its place in the queue and its progress
// (pushed over SSE), then read the transcript. The list lives in this module, not in the DOM,
// so uploads carry on, and are still listed, after visiting another page.

import { api, isTerminal, submitFile, type TaskResult, type Upload } from '../api';
import { h, replaceChildren } from '../dom';
import { coalesce, events } from '../events';
import { formatBytes, formatPercent, formatTimestamp, formatWait } from '../format';
import { t } from '../i18n';
import { errorMessage, progressBar, statusBadge } from '../ui';

type Phase = 'uploading' | 'queued' | 'processing' | 'done' | 'failed' | 'canceled' | 'error' | 'deleted';

interface Item {
  key: number;
  file: File | null;
  name: string;
  size: number;
  phase: Phase;
  sent: number;
  total: number;
  taskId?: string;
  position?: number | null;
  wait?: number | null;
  waitPerPlace?: number | null;
  progress: number;
  language: string;
  hotwords: string;
  result?: TaskResult;
  error?: string;
  upload?: Upload;
  fetching?: boolean;
  refetch?: boolean;
}

const MAX_PARALLEL_UPLOADS = 2;

const state = {
  items: [] as Item[],
  language: 'auto',
  hotwords: '',
  nextKey: 1,
};

let redraw: ((item: Item) => void) | null = null;
let redrawList: (() => void) | null = null;

function changed(item: Item): void {
  redraw?.(item);
}

function addFiles(files: Iterable<File>): void {
  const added: Item[] = [];
  for (const file of files) {
    added.push({
      key: state.nextKey++,
      file,
      name: file.name,
      size: file.size,
      phase: 'uploading',
      sent: 0,
      total: file.size,
      progress: 0,
      language: state.language,
      hotwords: state.hotwords,
    });
  }
  // Newest batch on top, each batch in the order it was picked.
  state.items.unshift(...added);
  redrawList?.();
  pump();
}

/** Starts waiting uploads, a few at a time, oldest first. */
function pump(): void {
  const active = state.items.filter((i) => i.phase === 'uploading' && i.upload).length;
  let free = MAX_PARALLEL_UPLOADS - active;
  const waiting = state.items.filter((i) => i.phase === 'uploading' && !i.upload && i.file).sort((a, b) => a.key - b.key);
  for (const item of waiting) {
    if (free-- <= 0) break;
    startUpload(item);
  }
}

function startUpload(item: Item): void {
  const up = submitFile(item.file!, {
    language: item.language,
    hotwords: item.hotwords,
    onProgress: (loaded, total) => {
      item.sent = loaded;
      item.total = total || item.size;
      changed(item);
    },
  });
  item.upload = up;
  changed(item);
  up.promise.then(
    (res) => {
      item.upload = undefined;
      item.file = null;
      item.taskId = res.task_id;
      item.phase = res.status === 'processing' ? 'processing' : 'queued';
      item.position = res.position ?? null;
      item.wait = res.estimated_wait ?? null;
      item.waitPerPlace = res.position && res.estimated_wait ? res.estimated_wait / res.position : null;
      item.sent = item.total;
      changed(item);
      ensureWatching();
      fetchResult(item);
      pump();
    },
    (err) => {
      item.upload = undefined;
      item.file = null;
      item.phase = 'error';
      item.error = errorMessage(err);
      changed(item);
      pump();
    },
  );
}

/** Refreshes one task from GET /result; a second call while one runs is folded into a rerun. */
function fetchResult(item: Item): void {
  if (!item.taskId) return;
  if (item.fetching) {
    item.refetch = true;
    return;
  }
  item.fetching = true;
  api.result(item.taskId).then(
    (r) => {
      item.result = r;
      item.phase = (['queued', 'processing', 'done', 'failed', 'canceled'].includes(r.status) ? r.status : item.phase) as Phase;
      item.progress = r.progress ?? item.progress;
      item.position = r.position ?? (item.phase === 'queued' ? item.position : null);
      // The result has a position but no wait: scale the submit-time estimate by it.
      item.wait = item.phase === 'queued' && item.position && item.waitPerPlace ? item.position * item.waitPerPlace : null;
      item.error = item.phase === 'failed' ? r.error || undefined : undefined;
      done();
    },
    (err) => {
      if ((err as { status?: number }).status === 404) item.phase = 'deleted';
      item.error = errorMessage(err);
      done();
    },
  );
  function done() {
    item.fetching = false;
    changed(item);
    if (item.refetch) {
      item.refetch = false;
      fetchResult(item);
    }
  }
}

// ---- live updates: SSE first, polling when the stream is down --------------------------------

let watching = false;
const otherStatus = new Map<string, string>();

const refreshPositions = coalesce(() => {
  for (const item of state.items) if (item.phase === 'queued') fetchResult(item);
}, 300);

function ensureWatching(): void {
  if (watching) return;
  watching = true;
  events.onTask((ev) => {
    const item = state.items.find((i) => i.taskId === ev.task_id);
    if (!item) {
      // Another task started, finished or went away: our places in the queue may have moved.
      if (ev.status && otherStatus.get(ev.task_id) !== ev.status) {
        otherStatus.set(ev.task_id, ev.status);
        if (otherStatus.size > 500) otherStatus.clear();
        if (ev.op !== 'insert') refreshPositions();
      }
      return;
    }
    if (ev.status === 'deleted' || ev.op === 'delete') {
      item.phase = 'deleted';
      changed(item);
      refreshPositions();
      return;
    }
    const statusChanged = ev.status && ev.status !== item.phase;
    if (typeof ev.progress === 'number') item.progress = ev.progress;
    if (statusChanged) {
      fetchResult(item);
      // One of ours left the queue: the others move up.
      if (item.phase === 'queued') refreshPositions();
    } else changed(item);
  });
  events.onResync(() => state.items.forEach((i) => !isTerminal(i.phase) && fetchResult(i)));
  // Fallback polling: quick while the event stream is down, slow as a safety net otherwise.
  let tick = 0;
  setInterval(() => {
    tick++;
    const pending = state.items.filter((i) => i.taskId && (i.phase === 'queued' || i.phase === 'processing'));
    if (!pending.length) return;
    if (!events.live || tick % 5 === 0) pending.forEach(fetchResult);
  }, 2000);
}

// ---- view ---------------------------------------------------------------------------------------

function renderTranscript(r: TaskResult | undefined): HTMLElement {
  const segs = r?.segments ?? [];
  const text = (r?.text ?? '').trim();
  if (segs.length) {
    return h(
      'ol',
      { class: 'transcript segments', 'data-testid': 'transcript' },
      segs.map((s) =>
        h(
          'li',
          { class: 'segment', 'data-testid': 'segment', 'data-start': s.start, 'data-end': s.end },
          h('span', { class: 'ts' }, formatTimestamp(s.start), ' → ', formatTimestamp(s.end)),
          h('span', { class: 'seg-text' }, s.text),
        ),
      ),
    );
  }
  return h('p', { class: 'transcript transcript-plain', 'data-testid': 'transcript' }, text || t('tx.notext'));
}

function renderItem(item: Item): HTMLElement {
  const statusKey = item.phase === 'uploading' ? 'uploading' : item.phase;
  let detail: (HTMLElement | string | null)[] = [];
  if (item.phase === 'uploading') {
    const frac = item.total ? item.sent / item.total : 0;
    detail = [
      progressBar(frac, 'upload-progress'),
      h(
        'span',
        { class: 'muted small' },
        `${formatPercent(frac)} · ${t('tx.uploaded', { sent: formatBytes(item.sent), total: formatBytes(item.total) })}`,
      ),
    ];
  } else if (item.phase === 'queued') {
    const bits: string[] = [];
    if (item.position) bits.push(t('tx.position', { position: item.position }));
    if (item.wait != null && item.wait > 0) bits.push(t('tx.wait', { wait: formatWait(item.wait) }));
    detail = [
      progressBar(0, 'task-progress', true),
      h('span', { class: 'muted small', 'data-testid': 'upload-position', 'data-position': item.position ?? '' }, bits.join(' · ')),
    ];
  } else if (item.phase === 'processing') {
    detail = [
      progressBar(item.progress, 'task-progress'),
      h('span', { class: 'muted small', 'data-testid': 'task-percent' }, formatPercent(item.progress)),
    ];
  }

  const canCancel = item.phase === 'uploading' || item.phase === 'queued' || item.phase === 'processing';
  const actions = h(
    'div',
    { class: 'item-actions' },
    item.taskId && item.phase !== 'deleted'
      ? h('a', { class: 'btn btn-small', href: `#/task/${encodeURIComponent(item.taskId)}`, 'data-testid': 'upload-open' }, t('tx.open'))
      : null,
    canCancel
      ? h(
          'button',
          {
            type: 'button',
            class: 'btn btn-small btn-ghost',
            'data-testid': 'upload-cancel',
            onclick: () => cancelItem(item),
          },
          t('tx.cancel'),
        )
      : h(
          'button',
          {
            type: 'button',
            class: 'btn btn-small btn-ghost',
            'data-testid': 'upload-dismiss',
            title: t('tx.dismiss'),
            'aria-label': t('tx.dismiss'),
            onclick: () => {
              state.items = state.items.filter((i) => i !== item);
              redrawList?.();
            },
          },
          '×',
        ),
  );

  return h(
    'li',
    {
      class: 'upload-item card',
      'data-testid': 'upload-item',
      'data-status': item.phase,
      'data-task-id': item.taskId ?? '',
      'data-filename': item.name,
      'data-key': item.key,
    },
    h(
      'div',
      { class: 'item-head' },
      h('span', { class: 'item-name', 'data-testid': 'upload-name', title: item.name }, item.name),
      h('span', { class: 'muted small' }, formatBytes(item.size)),
      statusBadge(statusKey, 'upload-status'),
      actions,
    ),
    detail.length ? h('div', { class: 'item-detail' }, detail) : null,
    item.error ? h('p', { class: 'alert alert-inline', role: 'alert', 'data-testid': 'upload-error' }, item.error) : null,
    item.phase === 'done' ? renderTranscript(item.result) : null,
  );
}

function cancelItem(item: Item): void {
  if (item.phase === 'uploading') {
    if (item.upload) item.upload.abort();
    else {
      item.file = null;
      item.phase = 'error';
      item.error = t('err.aborted');
      changed(item);
    }
    return;
  }
  if (!item.taskId) return;
  api.cancel(item.taskId).then(
    () => fetchResult(item),
    (err) => {
      item.error = errorMessage(err);
      changed(item);
    },
  );
}

export function mountTranscribe(root: HTMLElement): () => void {
  const input = h('input', {
    type: 'file',
    id: 'file-input',
    'data-testid': 'file-input',
    class: 'visually-hidden',
    multiple: true,
    accept: 'audio/*,video/*,.wav,.mp3,.m4a,.flac,.ogg,.opus,.webm,.mp4,.aac,.wma,.amr',
    onchange: () => {
      if (input.files && input.files.length) addFiles(Array.from(input.files));
      input.value = '';
    },
  });

  const drop = h(
    'div',
    { class: 'dropzone', id: 'dropzone', 'data-testid': 'dropzone' },
    h('div', { class: 'drop-icon', 'aria-hidden': 'true' }),
    h('p', { class: 'drop-title' }, t('tx.drop')),
    h('p', { class: 'muted' }, t('tx.or')),
    h('label', { class: 'btn btn-primary', for: 'file-input', id: 'pick-files', 'data-testid': 'pick-files', tabindex: 0,
      onkeydown: (e: KeyboardEvent) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          input.click();
        }
      } }, t('tx.pick')),
    input,
  );
  let depth = 0;
  drop.addEventListener('dragenter', (e) => {
    e.preventDefault();
    depth++;
    drop.classList.add('dragover');
  });
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
  });
  drop.addEventListener('dragleave', () => {
    if (--depth <= 0) {
      depth = 0;
      drop.classList.remove('dragover');
    }
  });
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    depth = 0;
    drop.classList.remove('dragover');
    const files = e.dataTransfer?.files;
    if (files && files.length) addFiles(Array.from(files));
  });
  // A file dropped just beside the zone must not make the browser navigate away to it.
  const swallow = (e: DragEvent) => e.preventDefault();
  window.addEventListener('dragover', swallow);
  window.addEventListener('drop', swallow);

  const lang = h(
    'select',
    {
      id: 'language-select',
      'data-testid': 'language-select',
      onchange: () => (state.language = lang.value),
    },
    (['auto', 'zh', 'en'] as const).map((v) =>
      h('option', { value: v, selected: state.language === v }, t(`tx.lang.${v}`)),
    ),
  );
  const hot = h('input', {
    type: 'text',
    id: 'hotwords-input',
    'data-testid': 'hotwords-input',
    placeholder: t('tx.hotwords.placeholder'),
    value: state.hotwords,
    autocomplete: 'off',
    oninput: () => (state.hotwords = hot.value),
  });

  const list = h('ul', { class: 'upload-list', id: 'upload-list', 'data-testid': 'upload-list' });
  const elements = new Map<number, HTMLElement>();
  const empty = h('p', { class: 'muted empty', 'data-testid': 'upload-empty' }, t('tx.empty'));
  const clearBtn = h(
    'button',
    {
      type: 'button',
      class: 'btn btn-small btn-ghost',
      'data-testid': 'clear-finished',
      onclick: () => {
        state.items = state.items.filter((i) => !(isTerminal(i.phase) || i.phase === 'error' || i.phase === 'deleted'));
        redrawList?.();
      },
    },
    t('tx.clear'),
  );

  const syncClear = () => {
    clearBtn.hidden = !state.items.some((i) => isTerminal(i.phase) || i.phase === 'error' || i.phase === 'deleted');
  };
  redraw = (item) => {
    const old = elements.get(item.key);
    if (!old) return;
    const el = renderItem(item);
    old.replaceWith(el);
    elements.set(item.key, el);
    syncClear();
  };
  redrawList = () => {
    elements.clear();
    replaceChildren(
      list,
      state.items.map((item) => {
        const el = renderItem(item);
        elements.set(item.key, el);
        return el;
      }),
    );
    empty.hidden = state.items.length > 0;
    syncClear();
  };
  redrawList();

  root.append(
    h('h1', null, t('tx.heading')),
    h('p', { class: 'muted lead' }, t('tx.intro')),
    h(
      'section',
      { class: 'card upload-card' },
      drop,
      h(
        'div',
        { class: 'options' },
        h('label', { class: 'field' }, h('span', null, t('tx.language')), lang),
        h('label', { class: 'field field-grow' }, h('span', null, t('tx.hotwords')), hot),
      ),
    ),
    h(
      'section',
      { class: 'uploads' },
      h('div', { class: 'section-head' }, h('h2', null, t('tx.uploads')), clearBtn),
      empty,
      list,
    ),
  );

  return () => {
    redraw = null;
    redrawList = null;
    window.removeEventListener('dragover', swallow);
    window.removeEventListener('drop', swallow);
  };
}
