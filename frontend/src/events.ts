// One EventSource for the whole page (GET /api/v1/events). Pages subscribe by event type; after a
// reconnect they get a `resync` so they can refetch whatever they may have missed meanwhile.

import { eventsUrl } from './api';

export interface TaskEvent {
  type: 'task';
  op?: 'insert' | 'update' | 'delete' | string;
  task_id: string;
  kind?: string;
  status?: string;
  progress?: number;
}

export interface WorkerEvent {
  type: 'worker';
  worker_id: string;
  state?: string;
  current_task?: string | null;
}

export type ConnState = 'connecting' | 'open' | 'closed';

type Listener<T> = (ev: T) => void;

/** Parses one SSE `data:` payload; null when it is not a JSON object. */
export function parseEventData<T>(data: string): T | null {
  try {
    const v: unknown = JSON.parse(data);
    return v && typeof v === 'object' ? (v as T) : null;
  } catch {
    return null;
  }
}

class EventHub {
  private es: EventSource | null = null;
  private taskL = new Set<Listener<TaskEvent>>();
  private workerL = new Set<Listener<WorkerEvent>>();
  private resyncL = new Set<() => void>();
  private stateL = new Set<Listener<ConnState>>();
  private retryMs = 1000;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private everOpened = false;
  state: ConnState = 'connecting';

  start(): void {
    if (this.es || typeof EventSource === 'undefined') {
      if (typeof EventSource === 'undefined') this.setState('closed');
      return;
    }
    this.setState('connecting');
    const es = new EventSource(eventsUrl());
    this.es = es;
    es.onopen = () => {
      this.retryMs = 1000;
      const reopened = this.everOpened;
      this.everOpened = true;
      this.setState('open');
      if (reopened) this.resyncL.forEach((fn) => fn());
    };
    es.onerror = () => {
      // The browser retries by itself while readyState is CONNECTING; once CLOSED (e.g. a 503
      // from a gateway without its database) it gives up, so start over with a backoff.
      if (es.readyState === EventSource.CLOSED) {
        es.close();
        this.es = null;
        this.setState('closed');
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.start(), this.retryMs);
        this.retryMs = Math.min(this.retryMs * 2, 15000);
      } else {
        this.setState('closed');
      }
    };
    es.addEventListener('task', (e) => {
      const ev = parseEventData<TaskEvent>((e as MessageEvent).data);
      if (ev && ev.task_id) this.taskL.forEach((fn) => fn(ev));
    });
    es.addEventListener('worker', (e) => {
      const ev = parseEventData<WorkerEvent>((e as MessageEvent).data);
      if (ev) this.workerL.forEach((fn) => fn(ev));
    });
  }

  private setState(s: ConnState): void {
    if (s === this.state) return;
    this.state = s;
    this.stateL.forEach((fn) => fn(s));
  }

  /** Reconnect now (a new URL: the access token changed). */
  restart(): void {
    clearTimeout(this.timer);
    if (this.es) {
      this.es.close();
      this.es = null;
    }
    this.retryMs = 1000;
    this.start();
  }

  onTask(fn: Listener<TaskEvent>): () => void {
    this.taskL.add(fn);
    return () => this.taskL.delete(fn);
  }

  onWorker(fn: Listener<WorkerEvent>): () => void {
    this.workerL.add(fn);
    return () => this.workerL.delete(fn);
  }

  /** Called after the stream reconnects: events may have been missed. */
  onResync(fn: () => void): () => void {
    this.resyncL.add(fn);
    return () => this.resyncL.delete(fn);
  }

  onState(fn: Listener<ConnState>): () => void {
    this.stateL.add(fn);
    return () => this.stateL.delete(fn);
  }

  get live(): boolean {
    return this.state === 'open';
  }
}

export const events = new EventHub();

/** Calls `fn` once, `ms` after the last of a burst of calls. */
export function debounce<A extends unknown[]>(fn: (...args: A) => void, ms: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const wrapped = (...args: A) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

/**
 * Calls `fn` `ms` after the first of a burst of calls, then again for calls after that: a steady
 * stream of events refreshes at most every `ms`, and never starves the way a debounce can.
 */
export function coalesce(fn: () => void, ms: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const wrapped = () => {
    if (timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      fn();
    }, ms);
  };
  wrapped.cancel = () => {
    clearTimeout(timer);
    timer = undefined;
  };
  return wrapped;
}
