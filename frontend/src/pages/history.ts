// History: search (text and filename, Chinese too), filter, page through every transcription.

import { api, type HistoryPage, type TaskResult } from '../api';
import { h, replaceChildren } from '../dom';
import { coalesce, debounce, events } from '../events';
import { dateRange, formatDateTime, formatDuration, inRange, parseDateInput } from '../format';
import { excerpt, highlightHtml } from '../highlight';
import { t } from '../i18n';
import { buildHash, replaceLocation, routerState } from '../router';
import type { PageContext } from '../main';
import { errorBox, progressBar, statusBadge } from '../ui';

const STATUSES = ['queued', 'processing', 'done', 'failed', 'canceled'] as const;
const KINDS = ['file', 'live'] as const;
const PAGE_SIZES = [20, 50, 100];

interface Query {
  q: string;
  status: string;
  kind: string;
  /** Local dates `YYYY-MM-DD` (inclusive), empty when unset. */
  from: string;
  to: string;
  limit: number;
  offset: number;
}

function readQuery(sp: URLSearchParams): Query {
  const num = (v: string | null, d: number) => {
    const n = Number(v);
    return v !== null && Number.isFinite(n) && n >= 0 ? Math.floor(n) : d;
  };
  return {
    q: sp.get('q') ?? '',
    status: sp.get('status') ?? '',
    kind: sp.get('kind') ?? '',
    from: parseDateInput(sp.get('from')) ? sp.get('from')! : '',
    to: parseDateInput(sp.get('to')) ? sp.get('to')! : '',
    limit: Math.min(200, Math.max(1, num(sp.get('limit'), 20))),
    offset: num(sp.get('offset'), 0),
  };
}

function toHash(q: Query): string {
  return buildHash('/history', {
    q: q.q.trim(),
    status: q.status,
    kind: q.kind,
    from: q.from,
    to: q.to,
    limit: q.limit === 20 ? undefined : q.limit,
    offset: q.offset || undefined,
  });
}

export function mountHistory(root: HTMLElement, ctx: PageContext): () => void {
  const query = readQuery(ctx.query);
  let seq = 0;
  let alive = true;

  const search = h('input', {
    type: 'search',
    id: 'history-search',
    'data-testid': 'history-search',
    placeholder: t('hist.search'),
    'aria-label': t('hist.search.label'),
    value: query.q,
    autocomplete: 'off',
    enterkeyhint: 'search',
  });
  const select = (id: string, label: string, values: readonly string[], current: string, labelOf: (v: string) => string) => {
    const el = h(
      'select',
      { id, 'data-testid': id, 'aria-label': label },
      h('option', { value: '' }, t('hist.any')),
      values.map((v) => h('option', { value: v, selected: v === current }, labelOf(v))),
    );
    return el;
  };
  const statusSel = select('history-status', t('hist.status'), STATUSES, query.status, (v) => t(`status.${v}` as 'status.done'));
  const kindSel = select('history-kind', t('hist.kind'), KINDS, query.kind, (v) => t(`kind.${v}` as 'kind.file'));
  const sizeSel = h(
    'select',
    { id: 'history-limit', 'data-testid': 'history-limit', 'aria-label': t('hist.pagesize') },
    (PAGE_SIZES.includes(query.limit) ? PAGE_SIZES : [...PAGE_SIZES, query.limit].sort((a, b) => a - b)).map((n) =>
      h('option', { value: n, selected: n === query.limit }, String(n)),
    ),
  );

  const dateInput = (id: string, label: string, value: string) =>
    h('input', { type: 'date', id, 'data-testid': id, 'aria-label': label, value, max: '9999-12-31' });
  const fromInput = dateInput('history-from', t('hist.from'), query.from);
  const toInput = dateInput('history-to', t('hist.to'), query.to);
  const clearBtn = h(
    'button',
    { type: 'button', class: 'btn btn-ghost btn-small', id: 'history-clear', 'data-testid': 'history-clear', onclick: () => clearFilters() },
    t('hist.clearfilters'),
  );
  const syncClear = () => {
    clearBtn.hidden = !(query.q.trim() || query.status || query.kind || query.from || query.to);
  };

  const results = h('div', { class: 'history-results', id: 'history-results', 'data-testid': 'history-results', 'aria-live': 'polite' });
  const pager = h('div', { class: 'pager' });

  function load(push = false): void {
    const hash = toHash(query);
    routerState.lastHistory = hash;
    replaceLocation(hash, push);
    const my = ++seq;
    syncClear();
    const range = dateRange(query.from, query.to);
    results.setAttribute('aria-busy', 'true');
    results.setAttribute('data-loading', 'true');
    api
      .history({
        q: query.q.trim() || undefined,
        status: query.status || undefined,
        kind: query.kind || undefined,
        from: range.from,
        to: range.to,
        limit: query.limit,
        offset: query.offset,
      })
      .then(
        (page) => {
          if (!alive || my !== seq) return;
          // Past the end (rows deleted, or a stale link): go back to the last page that has rows.
          if (page.records.length === 0 && page.total > 0 && query.offset >= page.total) {
            query.offset = Math.max(0, Math.floor((page.total - 1) / query.limit) * query.limit);
            load();
            return;
          }
          // The gateway filters by date; rows outside the range never show even if one did not.
          render({ ...page, records: page.records.filter((r) => inRange(r.created_at, range)) });
        },
        (err) => {
          if (!alive || my !== seq) return;
          results.removeAttribute('aria-busy');
          results.setAttribute('data-loading', 'false');
          replaceChildren(results, errorBox(err, () => load()));
          replaceChildren(pager);
        },
      );
  }

  function render(page: HistoryPage): void {
    results.removeAttribute('aria-busy');
    results.setAttribute('data-loading', 'false');
    const q = query.q.trim();
    if (!page.records.length) {
      replaceChildren(results, h('p', { class: 'empty muted', 'data-testid': 'history-empty' }, t('hist.empty')));
    } else {
      replaceChildren(
        results,
        h(
          'div',
          { class: 'table', role: 'table' },
          h(
            'div',
            { class: 'tr th', role: 'row' },
            ['hist.col.file', 'hist.col.created', 'hist.col.duration', 'hist.col.model', 'hist.col.worker', 'hist.col.status'].map((k) =>
              h('span', { role: 'columnheader' }, t(k as 'hist.col.file')),
            ),
          ),
          page.records.map((r) => row(r, q)),
        ),
      );
    }
    const from = page.total ? query.offset + 1 : 0;
    const to = Math.min(page.total, query.offset + page.records.length);
    replaceChildren(
      pager,
      h('span', { class: 'muted', 'data-testid': 'history-total', 'data-total': page.total }, t('hist.range', { from, to, total: page.total })),
      h('span', { class: 'pager-buttons' },
        h('label', { class: 'inline-field' }, h('span', { class: 'muted small' }, t('hist.pagesize')), sizeSel),
        h(
          'button',
          {
            type: 'button',
            class: 'btn btn-small',
            id: 'history-prev',
            'data-testid': 'history-prev',
            disabled: query.offset <= 0,
            onclick: () => {
              query.offset = Math.max(0, query.offset - query.limit);
              load(true);
            },
          },
          '‹ ' + t('hist.prev'),
        ),
        h(
          'button',
          {
            type: 'button',
            class: 'btn btn-small',
            id: 'history-next',
            'data-testid': 'history-next',
            disabled: query.offset + page.records.length >= page.total,
            onclick: () => {
              query.offset += query.limit;
              load(true);
            },
          },
          t('hist.next') + ' ›',
        ),
      ),
    );
  }

  function row(r: TaskResult, q: string): HTMLElement {
    const href = `#/task/${encodeURIComponent(r.task_id)}`;
    const name = r.filename || t('hist.untitled');
    const text = (r.text ?? '').trim();
    const snippet = text ? excerpt(text, q, 80) : '';
    return h(
      'a',
      {
        class: 'tr row-link',
        role: 'row',
        href,
        'data-testid': 'history-row',
        'data-task-id': r.task_id,
        'data-status': r.status,
      },
      h(
        'span',
        { class: 'cell cell-file', role: 'cell' },
        h('span', { class: 'file-name', 'data-testid': 'history-filename', html: highlightHtml(name, q) }),
        r.kind === 'live' ? h('span', { class: 'tag' }, t('kind.live')) : null,
        snippet ? h('span', { class: 'snippet muted', 'data-testid': 'history-snippet', html: highlightHtml(snippet, q) }) : null,
        r.status === 'processing' ? progressBar(r.progress, undefined) : null,
      ),
      h('span', { class: 'cell', role: 'cell', 'data-label': t('hist.col.created') }, h('time', { datetime: r.created_at ?? '' }, formatDateTime(r.created_at))),
      h('span', { class: 'cell num', role: 'cell', 'data-label': t('hist.col.duration') }, formatDuration(r.duration)),
      h('span', { class: 'cell', role: 'cell', 'data-label': t('hist.col.model') }, r.model || t('common.dash')),
      h('span', { class: 'cell mono-ish', role: 'cell', 'data-label': t('hist.col.worker') }, r.worker || t('common.dash')),
      h('span', { class: 'cell', role: 'cell' }, statusBadge(r.status, 'history-status-badge')),
    );
  }

  const onSearch = debounce(() => {
    query.q = search.value;
    query.offset = 0;
    load();
  }, 250);
  search.addEventListener('input', onSearch);
  search.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      onSearch.cancel();
      query.q = search.value;
      query.offset = 0;
      load();
    }
  });
  statusSel.addEventListener('change', () => {
    query.status = statusSel.value;
    query.offset = 0;
    load();
  });
  kindSel.addEventListener('change', () => {
    query.kind = kindSel.value;
    query.offset = 0;
    load();
  });
  for (const [el, key] of [[fromInput, 'from'], [toInput, 'to']] as const) {
    el.addEventListener('change', () => {
      const v = parseDateInput(el.value) ? el.value : '';
      if (v === query[key]) return;
      query[key] = v;
      query.offset = 0;
      load();
    });
  }
  function clearFilters(): void {
    Object.assign(query, { q: '', status: '', kind: '', from: '', to: '', offset: 0 });
    search.value = '';
    statusSel.value = '';
    kindSel.value = '';
    fromInput.value = '';
    toInput.value = '';
    load();
    search.focus();
  }
  sizeSel.addEventListener('change', () => {
    query.limit = Number(sizeSel.value) || 20;
    query.offset = 0;
    load();
  });

  // New, finished or deleted tasks change what this page shows: refresh, at most once a second.
  const refresh = coalesce(() => load(), 1000);
  const offTask = events.onTask((ev) => {
    const el = Array.from(results.querySelectorAll<HTMLElement>('[data-testid="history-row"]')).find(
      (r) => r.dataset.taskId === ev.task_id,
    );
    // Progress of a row already shown as processing: move its bar, no refetch needed.
    if (el && ev.op === 'update' && ev.status === 'processing' && el.dataset.status === 'processing') {
      const fill = el.querySelector<HTMLElement>('.progress-fill');
      if (fill && typeof ev.progress === 'number') fill.style.width = Math.round(ev.progress * 100) + '%';
      return;
    }
    refresh();
  });
  const offResync = events.onResync(refresh);

  root.append(
    h('h1', null, t('hist.heading')),
    h(
      'div',
      { class: 'toolbar card' },
      h('label', { class: 'field field-grow' }, h('span', null, t('hist.search.label')), search),
      h('label', { class: 'field' }, h('span', null, t('hist.status')), statusSel),
      h('label', { class: 'field' }, h('span', null, t('hist.kind')), kindSel),
      h('label', { class: 'field field-date' }, h('span', null, t('hist.from')), fromInput),
      h('label', { class: 'field field-date' }, h('span', null, t('hist.to')), toInput),
      clearBtn,
    ),
    results,
    pager,
  );
  results.append(h('p', { class: 'muted loading' }, t('common.loading')));
  load();
  if (query.q) search.focus();

  return () => {
    alive = false;
    onSearch.cancel();
    refresh.cancel();
    offTask();
    offResync();
  };
}
