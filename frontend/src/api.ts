import { authHeaders, reportUnauthorized, withToken } from './auth';
// The gateway's HTTP API (docs/CONTRACT.md). Every failure becomes an ApiError carrying the
// server's own sentence (`{"error": "...", "code": "..."}`) so the UI can show it as is.

export type TaskStatus = 'queued' | 'processing' | 'done' | 'failed' | 'canceled';
export type TaskKind = 'file' | 'live';

export interface Segment {
  start: number;
  end: number;
  text: string;
}

export interface TaskResult {
  task_id: string;
  kind?: TaskKind | string;
  status: TaskStatus | string;
  progress?: number | null;
  text?: string | null;
  segments?: Segment[] | null;
  duration?: number | null;
  language?: string | null;
  model?: string | null;
  engine?: string | null;
  worker?: string | null;
  rtf?: number | null;
  filename?: string | null;
  created_at?: string | null;
  started_at?: string | null;
  finished_at?: string | null;
  audio_url?: string | null;
  error?: string | null;
  position?: number | null;
}

export interface SubmitResponse {
  task_id: string;
  status: string;
  position?: number | null;
  estimated_wait?: number | null;
}

export interface HistoryPage {
  total: number;
  limit?: number;
  offset?: number;
  records: TaskResult[];
}

export interface HistoryQuery {
  limit?: number;
  offset?: number;
  q?: string;
  status?: string;
  kind?: string;
  /** Created at or after this instant (RFC 3339). */
  from?: string;
  /** Created before this instant (RFC 3339). */
  to?: string;
}

export interface QueueStatus {
  queued?: number;
  processing?: number;
  done?: number;
  failed?: number;
  canceled?: number;
  workers?: number;
  workers_busy?: number;
}

export interface WorkerInfo {
  id: string;
  host?: string | null;
  device?: string | null;
  engine?: string | null;
  queues?: string[] | string | null;
  models?: unknown;
  concurrency?: number | null;
  state?: string | null;
  current_task?: string | null;
  jobs_done?: number | null;
  avg_rtf?: number | null;
  last_heartbeat?: string | null;
  started_at?: string | null;
  version?: string | null;
  error?: string | null;
  active?: boolean | null;
}

export interface Health {
  status: string;
  database?: string;
  workers_active?: number;
  engines?: unknown;
  version?: string;
  reason?: string;
}

export const TERMINAL: readonly string[] = ['done', 'failed', 'canceled'];

export function isTerminal(status: string | null | undefined): boolean {
  return !!status && TERMINAL.includes(status);
}

/** What went wrong with one API call. `status` 0 means the server could not be reached. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** True when the message is the server's own sentence rather than a stand-in. */
  readonly fromServer: boolean;

  constructor(status: number, code: string, message: string, fromServer: boolean) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.fromServer = fromServer;
  }
}

const CODE_BY_STATUS: Record<number, string> = {
  0: 'network',
  400: 'invalid',
  404: 'not_found',
  409: 'conflict',
  413: 'too_large',
  415: 'unsupported_media',
  422: 'corrupt_audio',
  500: 'internal',
  502: 'unavailable',
  503: 'unavailable',
  504: 'unavailable',
};

/**
 * Turns a failed response into an ApiError: the JSON `error` sentence and `code` when the body
 * has them, else a short plain-text body, else a generic `HTTP <status>` message.
 */
export function parseApiError(status: number, body: string | null | undefined, statusText = ''): ApiError {
  const fallbackCode = CODE_BY_STATUS[status] ?? (status >= 500 ? 'internal' : 'http_' + status);
  const raw = (body ?? '').trim();
  if (raw) {
    try {
      const j: unknown = JSON.parse(raw);
      if (j && typeof j === 'object') {
        const o = j as Record<string, unknown>;
        const msg = typeof o.error === 'string' ? o.error : typeof o.message === 'string' ? o.message : '';
        const code = typeof o.code === 'string' && o.code ? o.code : fallbackCode;
        if (msg.trim()) return new ApiError(status, code, msg.trim(), true);
        return new ApiError(status, code, genericMessage(status, statusText), false);
      }
    } catch {
      /* not JSON: maybe a plain-text error from a proxy or http.Error */
    }
    if (!/^\s*</.test(raw) && raw.length <= 300) return new ApiError(status, fallbackCode, raw, true);
  }
  return new ApiError(status, fallbackCode, genericMessage(status, statusText), false);
}

function genericMessage(status: number, statusText: string): string {
  if (status === 0) return 'Network error';
  return `HTTP ${status}${statusText ? ' ' + statusText : ''}`;
}

export function networkError(detail = ''): ApiError {
  return new ApiError(0, 'network', detail || 'Network error', false);
}

const API = '/api/v1';

async function request<T>(method: string, path: string, init?: RequestInit): Promise<T> {
  let res: Response;
  try {
    res = await fetch(API + path, {
      method,
      headers: { Accept: 'application/json', ...authHeaders() },
      cache: 'no-store',
      ...init,
    });
  } catch (e) {
    throw networkError(e instanceof Error ? e.message : String(e));
  }
  const body = await res.text().catch(() => '');
  if (res.status === 401) reportUnauthorized();
  if (!res.ok) throw parseApiError(res.status, body, res.statusText);
  if (!body) return undefined as T;
  try {
    return JSON.parse(body) as T;
  } catch {
    throw new ApiError(res.status, 'bad_json', 'The server sent a reply that is not valid JSON.', false);
  }
}

/** Builds a query string from the set (non-empty) values, in a stable order. */
export function queryString(params: Record<string, string | number | undefined | null>): string {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    sp.set(k, String(v));
  }
  const s = sp.toString();
  return s ? '?' + s : '';
}

const enc = encodeURIComponent;

export const api = {
  result: (id: string) => request<TaskResult>('GET', `/asr/result/${enc(id)}`),
  history: (q: HistoryQuery) => request<HistoryPage>('GET', '/asr/history' + queryString({ ...q })),
  queueStatus: () => request<QueueStatus>('GET', '/asr/queue/status'),
  workers: () => request<{ workers: WorkerInfo[] }>('GET', '/workers'),
  health: async (): Promise<Health> => {
    // 503 still carries a useful body ({status, reason}); report it rather than throw.
    try {
      return await request<Health>('GET', '/health');
    } catch (e) {
      if (e instanceof ApiError && e.status === 503) return { status: 'unavailable', reason: e.message };
      throw e;
    }
  },
  retry: (id: string) => request<{ task_id: string; status: string }>('POST', `/asr/retry/${enc(id)}`),
  cancel: (id: string) => request<{ task_id: string; status: string }>('POST', `/asr/cancel/${enc(id)}`),
  remove: (id: string) => request<{ task_id: string; deleted: boolean }>('DELETE', `/asr/task/${enc(id)}`),
};

// URLs the browser opens by itself carry the token as a query parameter (see auth.ts).
export const audioUrl = (id: string) => withToken(`${API}/asr/audio/${enc(id)}`);
export const exportUrl = (id: string, fmt: 'txt' | 'srt' | 'vtt' | 'json') =>
  withToken(`${API}/asr/export/${enc(id)}.${fmt}`);
export const eventsUrl = () => withToken(`${API}/events`);

export interface UploadOptions {
  language?: string;
  hotwords?: string;
  onProgress?: (loaded: number, total: number) => void;
}

export interface Upload {
  promise: Promise<SubmitResponse>;
  abort: () => void;
}

/** Submits one file with XMLHttpRequest, so upload progress can be reported. */
export function submitFile(file: File, opts: UploadOptions = {}): Upload {
  const xhr = new XMLHttpRequest();
  const promise = new Promise<SubmitResponse>((resolve, reject) => {
    const form = new FormData();
    form.append('audio', file, file.name);
    if (opts.language) form.append('language', opts.language);
    if (opts.hotwords && opts.hotwords.trim()) form.append('hotwords', opts.hotwords.trim());
    xhr.open('POST', `${API}/asr/submit`);
    xhr.setRequestHeader('Accept', 'application/json');
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => {
      if (opts.onProgress) opts.onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    };
    xhr.onload = () => {
      const body = xhr.responseText;
      if (xhr.status === 401) reportUnauthorized();
      if (xhr.status < 200 || xhr.status >= 300) {
        reject(parseApiError(xhr.status, body, xhr.statusText));
        return;
      }
      try {
        const j = JSON.parse(body) as SubmitResponse;
        if (!j || typeof j.task_id !== 'string') throw new Error('no task_id');
        resolve(j);
      } catch {
        reject(new ApiError(xhr.status, 'bad_json', 'The server sent a reply that is not valid JSON.', false));
      }
    };
    xhr.onerror = () => reject(networkError());
    xhr.onabort = () => reject(new ApiError(0, 'aborted', 'The upload was aborted.', false));
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}
