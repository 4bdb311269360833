// Small shared pieces of UI: status badges, error banners, progress bars.

import { ApiError } from './api';
import { h } from './dom';
import { relativeTime } from './format';
import { t, type MessageKey } from './i18n';

/** A readable sentence for any error: the server's own words when it gave some. */
export function errorMessage(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.fromServer) return err.message;
    if (err.code === 'network') return t('err.network');
    if (err.code === 'aborted') return t('err.aborted');
    if (err.code === 'bad_json') return t('err.badjson');
    return t('err.http', { status: err.status });
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

export function statusLabel(status: string | null | undefined): string {
  if (!status) return t('common.dash');
  return t(('status.' + status) as MessageKey);
}

export function statusBadge(status: string | null | undefined, testid?: string): HTMLElement {
  return h(
    'span',
    { class: `badge badge-${status || 'unknown'}`, 'data-testid': testid, 'data-status': status || '' },
    statusLabel(status),
  );
}

export function errorBox(err: unknown, onRetry?: () => void): HTMLElement {
  return h(
    'div',
    { class: 'alert', role: 'alert', 'data-testid': 'error' },
    h('span', null, errorMessage(err)),
    onRetry ? h('button', { class: 'btn btn-small', type: 'button', onclick: onRetry }, t('common.retry')) : null,
  );
}

export function progressBar(fraction: number | null | undefined, testid?: string, indeterminate = false): HTMLElement {
  const pct = Math.round(Math.min(1, Math.max(0, fraction ?? 0)) * 100);
  return h(
    'div',
    {
      class: 'progress' + (indeterminate ? ' progress-indeterminate' : ''),
      role: 'progressbar',
      'aria-valuemin': 0,
      'aria-valuemax': 100,
      'aria-valuenow': indeterminate ? undefined : pct,
      'data-testid': testid,
    },
    h('div', { class: 'progress-fill', style: { width: indeterminate ? '' : pct + '%' } }),
  );
}

export function relTime(iso: string | null | undefined, now = Date.now()): string {
  const r = relativeTime(iso, now);
  if (!r) return t('common.dash');
  return r.unit === 'justnow' ? t('time.justnow') : t(('time.' + r.unit) as MessageKey, { n: r.n });
}

export function loading(): HTMLElement {
  return h('p', { class: 'muted loading', 'data-testid': 'loading' }, t('common.loading'));
}

let toastHost: HTMLElement | null = null;

/** A short notice at the bottom of the screen that fades after a few seconds. */
export function toast(message: string, kind: 'info' | 'error' = 'info'): void {
  if (!toastHost) {
    toastHost = h('div', { class: 'toasts', 'aria-live': 'polite' });
    document.body.append(toastHost);
  }
  const el = h('div', { class: 'toast toast-' + kind, role: kind === 'error' ? 'alert' : 'status', 'data-testid': 'toast' }, message);
  toastHost.append(el);
  setTimeout(() => el.classList.add('toast-out'), 4000);
  setTimeout(() => el.remove(), 4600);
}

/**
 * The access-token prompt, shown when the gateway answers 401 (ASR_API_TOKEN is set). Saving
 * keeps the token (auth.ts) and calls `onSaved`; at most one prompt is open at a time.
 */
export function showTokenDialog(hadToken: boolean, onSaved: (token: string) => void): void {
  if (document.getElementById('token-dialog')) return;
  const input = h('input', {
    type: 'password',
    id: 'token-input',
    'data-testid': 'token-input',
    autocomplete: 'current-password',
    placeholder: t('auth.placeholder'),
    'aria-label': t('auth.placeholder'),
  }) as HTMLInputElement;
  const close = () => overlay.remove();
  const save = () => {
    const v = input.value.trim();
    if (!v) {
      input.focus();
      return;
    }
    close();
    onSaved(v);
  };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') save();
    if (e.key === 'Escape') close();
  });
  const overlay = h(
    'div',
    { class: 'overlay', id: 'token-dialog', 'data-testid': 'token-dialog' },
    h(
      'form',
      {
        class: 'dialog card',
        role: 'dialog',
        'aria-modal': 'true',
        'aria-labelledby': 'token-title',
        onsubmit: (e: Event) => {
          e.preventDefault();
          save();
        },
      },
      h('h2', { id: 'token-title' }, t('auth.title')),
      h('p', null, t(hadToken ? 'auth.wrong' : 'auth.body')),
      input,
      h(
        'div',
        { class: 'dialog-actions' },
        h('button', { type: 'button', class: 'btn btn-ghost', onclick: close }, t('auth.cancel')),
        h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'token-save' }, t('auth.save')),
      ),
    ),
  );
  document.body.append(overlay);
  input.focus();
}
