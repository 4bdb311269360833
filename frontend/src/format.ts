// Pure formatting helpers: no DOM, no globals, so they are unit-tested directly.

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** Seconds as `hh:mm:ss.mmm` (rounded to the millisecond; bad input reads as zero). */
export function formatTimestamp(seconds: number | null | undefined): string {
  const s = typeof seconds === 'number' && Number.isFinite(seconds) && seconds > 0 ? seconds : 0;
  const totalMs = Math.round(s * 1000);
  const ms = totalMs % 1000;
  const totalS = Math.floor(totalMs / 1000);
  const h = Math.floor(totalS / 3600);
  const m = Math.floor((totalS % 3600) / 60);
  const sec = totalS % 60;
  return `${pad(h)}:${pad(m)}:${pad(sec)}.${pad(ms, 3)}`;
}

/** A compact duration: `0:07`, `12:05`, `1:02:03`; `—` when unknown. */
export function formatDuration(seconds: number | null | undefined): string {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) return '—';
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

/** A wait estimate in words-free form: `~45 s`, `~3 min`, `~1 h 5 min`. */
export function formatWait(seconds: number | null | undefined): string {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) return '—';
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  const min = Math.round(seconds / 60);
  if (min < 60) return `${min} min`;
  return `${Math.floor(min / 60)} h ${min % 60} min`;
}

/** Bytes as B / KB / MB / GB (powers of 1024, one decimal above KB). */
export function formatBytes(n: number | null | undefined): string {
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return '—';
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** An RFC 3339 time as local `YYYY-MM-DD HH:MM:SS`; `—` for null or unparsable input. */
export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '—';
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

export type RelativeUnit = 'justnow' | 'sec' | 'min' | 'hour' | 'day';

/** How long ago `iso` was, relative to `now` (ms since epoch), as a unit and a count. */
export function relativeTime(iso: string | null | undefined, now: number): { unit: RelativeUnit; n: number } | null {
  if (!iso) return null;
  const then = new Date(iso).getTime();
  if (Number.isNaN(then)) return null;
  const s = Math.max(0, Math.floor((now - then) / 1000));
  if (s < 2) return { unit: 'justnow', n: 0 };
  if (s < 60) return { unit: 'sec', n: s };
  if (s < 3600) return { unit: 'min', n: Math.floor(s / 60) };
  if (s < 86400) return { unit: 'hour', n: Math.floor(s / 3600) };
  return { unit: 'day', n: Math.floor(s / 86400) };
}

/** A 0..1 fraction as a whole percentage, clamped. */
export function formatPercent(fraction: number | null | undefined): string {
  const f = typeof fraction === 'number' && Number.isFinite(fraction) ? fraction : 0;
  return `${Math.round(Math.min(1, Math.max(0, f)) * 100)}%`;
}

/** A `YYYY-MM-DD` date input value, or null when it is not one. */
export function parseDateInput(v: string | null | undefined): { y: number; m: number; d: number } | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(v ?? '');
  if (!m) return null;
  const y = +m[1];
  const mo = +m[2];
  const d = +m[3];
  const dt = new Date(y, mo - 1, d);
  if (dt.getFullYear() !== y || dt.getMonth() !== mo - 1 || dt.getDate() !== d) return null;
  return { y, m: mo, d };
}

/**
 * The instants a local-date range covers: `from` is the start of its day, `to` the start of the
 * day after (exclusive), both as RFC 3339 UTC; either may be missing.
 */
export function dateRange(from: string, to: string): { from?: string; to?: string } {
  const out: { from?: string; to?: string } = {};
  const f = parseDateInput(from);
  const t = parseDateInput(to);
  if (f) out.from = new Date(f.y, f.m - 1, f.d).toISOString();
  if (t) out.to = new Date(t.y, t.m - 1, t.d + 1).toISOString();
  return out;
}

/** Whether an RFC 3339 time lies in a range made by `dateRange`. */
export function inRange(iso: string | null | undefined, range: { from?: string; to?: string }): boolean {
  if (!range.from && !range.to) return true;
  const t = iso ? Date.parse(iso) : NaN;
  if (!Number.isFinite(t)) return false;
  if (range.from && t < Date.parse(range.from)) return false;
  if (range.to && t >= Date.parse(range.to)) return false;
  return true;
}
