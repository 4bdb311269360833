// Detail: play the audio with the segment under the playhead highlighted, seek by clicking a
// segment, export, and retry / cancel / delete.

import { api, audioUrl, exportUrl, isTerminal, type Segment, type TaskResult } from '../api';
import { h, replaceChildren } from '../dom';
import { events } from '../events';
import { formatDateTime, formatDuration, formatPercent, formatTimestamp } from '../format';
import { t, type MessageKey } from '../i18n';
import type { PageContext } from '../main';
import { routerState } from '../router';
import { findSegmentIndex } from '../segments';
import { errorBox, errorMessage, loading, progressBar, statusBadge, toast } from '../ui';

const FORMATS = ['txt', 'srt', 'vtt', 'json'] as const;

export function mountDetail(root: HTMLElement, ctx: PageContext): () => void {
  const id = ctx.params.id;
  let alive = true;
  let task: TaskResult | null = null;
  let segEls: HTMLElement[] = [];
  let segments: Segment[] = [];
  let activeIdx = -1;
  let busy = false;
  let confirming = false;
  let actionError: unknown = null;
  let seq = 0;

  const audio = h('audio', {
    id: 'audio-player',
    'data-testid': 'audio-player',
    controls: true,
    preload: 'metadata',
    src: audioUrl(id),
    class: 'player',
  });

  const audioError = h('p', { class: 'alert alert-inline', role: 'alert', 'data-testid': 'audio-error', hidden: true }, t('detail.audioerror'));
  const head = h('div', { class: 'detail-head' });
  const statusArea = h('div', { class: 'detail-status' });
  const meta = h('dl', { class: 'meta', 'data-testid': 'task-meta' });
  const exportsEl = h('div', { class: 'exports' });
  const segArea = h('section', { class: 'card segments-card' });
  const body = h('div', { class: 'detail-body' }, loading());

  root.append(
    h('a', { href: routerState.lastHistory, class: 'back', 'data-testid': 'detail-back' }, '‹ ' + t('detail.back')),
    body,
  );

  function load(): void {
    const my = ++seq;
    api.result(id).then(
      (r) => {
        if (!alive || my !== seq) return;
        task = r;
        render();
      },
      (err) => {
        if (!alive || my !== seq) return;
        if (!task) replaceChildren(body, errorBox(err, load));
        else {
          actionError = err;
          renderHead();
        }
      },
    );
  }

  function render(): void {
    if (!task) return;
    document.title = `${task.filename || t('hist.untitled')} · ${t('app.title')}`;
    if (!body.contains(head)) {
      replaceChildren(
        body,
        head,
        statusArea,
        h('section', { class: 'card player-card' }, audio, audioError, exportsEl),
        segArea,
        h('section', { class: 'card' }, meta),
      );
    }
    renderHead();
    renderStatus();
    renderExports();
    renderMeta();
    renderSegments();
  }

  function renderHead(): void {
    if (!task) return;
    const s = task.status;
    const canRetry = s === 'failed' || s === 'canceled';
    const canCancel = s === 'queued' || s === 'processing';
    const btn = (key: MessageKey, testid: string, cls: string, onclick: () => void) =>
      h('button', { type: 'button', class: 'btn btn-small ' + cls, 'data-testid': testid, id: testid, disabled: busy, onclick }, t(key));
    replaceChildren(
      head,
      h(
        'div',
        { class: 'title-row' },
        h('h1', { class: 'task-title', 'data-testid': 'task-filename', title: task.filename ?? '' }, task.filename || t('hist.untitled')),
        statusBadge(s, 'task-status'),
      ),
      h(
        'div',
        { class: 'actions' },
        canRetry ? btn('detail.retry', 'btn-retry', '', () => act(() => api.retry(id))) : null,
        canCancel ? btn('detail.cancel', 'btn-cancel', '', () => act(() => api.cancel(id))) : null,
        confirming
          ? h(
              'span',
              { class: 'confirm', role: 'group', 'data-testid': 'delete-confirm' },
              h('span', { class: 'confirm-text' }, t('detail.delete.confirm')),
              btn('detail.delete.yes', 'btn-delete-confirm', 'btn-danger', doDelete),
              btn('detail.delete.no', 'btn-delete-cancel', 'btn-ghost', () => {
                confirming = false;
                renderHead();
              }),
            )
          : btn('detail.delete', 'btn-delete', 'btn-danger-ghost', () => {
              confirming = true;
              renderHead();
              head.querySelector<HTMLElement>('[data-testid="btn-delete-cancel"]')?.focus();
            }),
      ),
      actionError ? errorBox(actionError) : null,
    );
  }

  function act(fn: () => Promise<unknown>): void {
    busy = true;
    actionError = null;
    renderHead();
    fn().then(
      () => {
        busy = false;
        load();
      },
      (err) => {
        busy = false;
        actionError = err;
        renderHead();
        load();
      },
    );
  }

  function doDelete(): void {
    busy = true;
    actionError = null;
    renderHead();
    api.remove(id).then(
      () => {
        busy = false;
        audio.pause();
        toast(t('detail.deleted'));
        location.hash = routerState.lastHistory;
      },
      (err) => {
        busy = false;
        confirming = false;
        actionError = err;
        renderHead();
      },
    );
  }

  function renderStatus(): void {
    if (!task) return;
    const parts: (HTMLElement | null)[] = [];
    if (task.status === 'processing') {
      parts.push(progressBar(task.progress, 'task-progress'), h('span', { class: 'muted small', 'data-testid': 'task-percent' }, formatPercent(task.progress)));
    } else if (task.status === 'queued') {
      parts.push(progressBar(0, 'task-progress', true));
      if (task.position) parts.push(h('span', { class: 'muted small', 'data-testid': 'task-position' }, t('tx.position', { position: task.position })));
    }
    if (task.error && (task.status === 'failed' || task.status === 'canceled')) {
      parts.push(h('p', { class: 'alert alert-inline', role: 'alert', 'data-testid': 'task-error' }, task.error));
    }
    replaceChildren(statusArea, parts);
    statusArea.hidden = parts.length === 0;
  }

  function renderExports(): void {
    const ready = task?.status === 'done';
    replaceChildren(
      exportsEl,
      h('span', { class: 'muted small' }, t('detail.export')),
      FORMATS.map((f) =>
        ready
          ? h('a', { class: 'btn btn-small', href: exportUrl(id, f), download: '', 'data-testid': `export-${f}`, id: `export-${f}` }, f.toUpperCase())
          : h('span', { class: 'btn btn-small', 'aria-disabled': 'true', 'data-testid': `export-${f}`, 'data-disabled': 'true' }, f.toUpperCase()),
      ),
    );
  }

  function renderMeta(): void {
    if (!task) return;
    const rows: [MessageKey, string][] = [
      ['detail.kind', task.kind ? t(('kind.' + task.kind) as MessageKey) : t('common.dash')],
      ['detail.created', formatDateTime(task.created_at)],
      ['detail.started', formatDateTime(task.started_at)],
      ['detail.finished', formatDateTime(task.finished_at)],
      ['detail.duration', formatDuration(task.duration)],
      ['detail.language', task.language || t('common.dash')],
      ['detail.model', task.model || t('common.dash')],
      ['detail.engine', task.engine || t('common.dash')],
      ['detail.worker', task.worker || t('common.dash')],
      ['detail.rtf', typeof task.rtf === 'number' ? task.rtf.toFixed(3) : t('common.dash')],
    ];
    replaceChildren(
      meta,
      rows.map(([k, v]) => h('div', { class: 'meta-item', 'data-field': k.slice(7) }, h('dt', null, t(k)), h('dd', null, v))),
    );
  }

  function renderSegments(): void {
    if (!task) return;
    segments = [...(task.segments ?? [])].sort((a, b) => a.start - b.start);
    activeIdx = -1;
    const text = (task.text ?? '').trim();
    let content: HTMLElement;
    if (segments.length) {
      segEls = segments.map((s, i) =>
        h(
          'li',
          null,
          h(
            'button',
            {
              type: 'button',
              class: 'segment',
              'data-testid': 'segment',
              'data-index': i,
              'data-start': s.start,
              'data-end': s.end,
              onclick: () => seek(s.start),
            },
            h('span', { class: 'ts' }, formatTimestamp(s.start)),
            h('span', { class: 'seg-text' }, s.text),
          ),
        ),
      );
      content = h('ol', { class: 'segments transcript', 'data-testid': 'transcript' }, segEls);
      segEls = segEls.map((li) => li.firstElementChild as HTMLElement);
    } else if (text) {
      segEls = [];
      content = h('p', { class: 'transcript transcript-plain', 'data-testid': 'transcript' }, text);
    } else {
      segEls = [];
      content = h('p', { class: 'muted', 'data-testid': 'no-segments' }, isTerminal(task.status) ? t('tx.notext') : t('detail.nosegments'));
    }
    const copy =
      text && navigator.clipboard
        ? h(
            'button',
            {
              type: 'button',
              class: 'btn btn-small btn-ghost',
              'data-testid': 'copy-text',
              onclick: (e: Event) => {
                const b = e.currentTarget as HTMLButtonElement;
                navigator.clipboard.writeText(text).then(
                  () => (b.textContent = t('detail.copied')),
                  (err) => toast(errorMessage(err), 'error'),
                );
              },
            },
            t('detail.copy'),
          )
        : null;
    replaceChildren(
      segArea,
      h('div', { class: 'section-head' }, h('h2', null, t('detail.segments')), copy),
      content,
    );
    syncActive(false);
  }

  function seek(time: number): void {
    audio.currentTime = time + 0.001;
    syncActive(false);
    const p = audio.play();
    if (p) p.catch(() => undefined);
  }

  function syncActive(scroll: boolean): void {
    const idx = findSegmentIndex(segments, audio.currentTime);
    if (idx === activeIdx) return;
    if (activeIdx >= 0 && segEls[activeIdx]) {
      segEls[activeIdx].classList.remove('active');
      segEls[activeIdx].removeAttribute('aria-current');
    }
    activeIdx = idx;
    const el = segEls[idx];
    if (el) {
      el.classList.add('active');
      el.setAttribute('aria-current', 'true');
      if (scroll && !audio.paused) el.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    }
  }

  audio.addEventListener('error', () => {
    if (audio.getAttribute('src')) audioError.hidden = false;
  });
  audio.addEventListener('loadedmetadata', () => (audioError.hidden = true));

  const onTime = () => syncActive(true);
  audio.addEventListener('timeupdate', onTime);
  audio.addEventListener('seeked', onTime);
  // timeupdate fires only ~4×/s; a frame loop while playing keeps short segments in step.
  let raf = 0;
  const loop = () => {
    syncActive(true);
    raf = audio.paused ? 0 : requestAnimationFrame(loop);
  };
  audio.addEventListener('play', () => {
    if (!raf) raf = requestAnimationFrame(loop);
  });

  const offTask = events.onTask((ev) => {
    if (ev.task_id !== id || !task) return;
    if (ev.op === 'delete' || ev.status === 'deleted') {
      task = { ...task, status: 'deleted' };
      renderHead();
      return;
    }
    if (ev.status === task.status && ev.status === 'processing' && typeof ev.progress === 'number') {
      task.progress = ev.progress;
      renderStatus();
      return;
    }
    load();
  });
  const offResync = events.onResync(load);
  const poll = setInterval(() => {
    if (task && !isTerminal(task.status) && !events.live) load();
  }, 2000);

  load();

  return () => {
    alive = false;
    offTask();
    offResync();
    clearInterval(poll);
    cancelAnimationFrame(raf);
    audio.pause();
    audio.removeAttribute('src');
    audio.load();
  };
}
