import { describe, expect, it } from 'vitest';
import {
  formatBytes,
  formatDateTime,
  formatDuration,
  formatPercent,
  formatTimestamp,
  formatWait,
  relativeTime,
} from '../src/format';

describe('formatTimestamp', () => {
  it('formats hh:mm:ss.mmm', () => {
    expect(formatTimestamp(0)).toBe('00:00:00.000');
    expect(formatTimestamp(1.5)).toBe('00:00:01.500');
    expect(formatTimestamp(62.345)).toBe('00:01:02.345');
    expect(formatTimestamp(3600 + 23 * 60 + 45.678)).toBe('01:23:45.678');
    expect(formatTimestamp(100 * 3600)).toBe('100:00:00.000');
  });
  it('rounds to the millisecond without float noise', () => {
    expect(formatTimestamp(0.1 + 0.2)).toBe('00:00:00.300');
    expect(formatTimestamp(59.9996)).toBe('00:01:00.000');
    expect(formatTimestamp(1.0004)).toBe('00:00:01.000');
    expect(formatTimestamp(4.07)).toBe('00:00:04.070');
  });
  it('treats bad input as zero', () => {
    expect(formatTimestamp(-3)).toBe('00:00:00.000');
    expect(formatTimestamp(Number.NaN)).toBe('00:00:00.000');
    expect(formatTimestamp(Infinity)).toBe('00:00:00.000');
    expect(formatTimestamp(null)).toBe('00:00:00.000');
    expect(formatTimestamp(undefined)).toBe('00:00:00.000');
  });
});

describe('formatDuration', () => {
  it('is compact', () => {
    expect(formatDuration(7)).toBe('0:07');
    expect(formatDuration(11.04)).toBe('0:11');
    expect(formatDuration(725)).toBe('12:05');
    expect(formatDuration(3723)).toBe('1:02:03');
  });
  it('shows a dash when unknown', () => {
    expect(formatDuration(null)).toBe('—');
    expect(formatDuration(undefined)).toBe('—');
    expect(formatDuration(-1)).toBe('—');
  });
});

describe('other formats', () => {
  it('formats bytes', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.5 KB');
    expect(formatBytes(350 * 1024 * 1024)).toBe('350 MB');
    expect(formatBytes(undefined)).toBe('—');
  });
  it('formats waits', () => {
    expect(formatWait(0.2)).toBe('1 s');
    expect(formatWait(45)).toBe('45 s');
    expect(formatWait(180)).toBe('3 min');
    expect(formatWait(3900)).toBe('1 h 5 min');
    expect(formatWait(null)).toBe('—');
  });
  it('formats percentages, clamped', () => {
    expect(formatPercent(0.426)).toBe('43%');
    expect(formatPercent(1.5)).toBe('100%');
    expect(formatPercent(-1)).toBe('0%');
    expect(formatPercent(null)).toBe('0%');
  });
  it('formats date-times in local time', () => {
    const d = new Date(2026, 0, 2, 3, 4, 5);
    expect(formatDateTime(d.toISOString())).toBe('2026-01-02 03:04:05');
    expect(formatDateTime(null)).toBe('—');
    expect(formatDateTime('not a date')).toBe('—');
  });
  it('computes relative times', () => {
    const now = Date.parse('2026-11-22T10:00:00Z');
    expect(relativeTime('2026-11-22T10:00:00Z', now)).toEqual({ unit: 'justnow', n: 0 });
    expect(relativeTime('2026-11-22T09:59:30Z', now)).toEqual({ unit: 'sec', n: 30 });
    expect(relativeTime('2026-11-22T09:55:00Z', now)).toEqual({ unit: 'min', n: 5 });
    expect(relativeTime('2026-11-22T07:00:00Z', now)).toEqual({ unit: 'hour', n: 3 });
    expect(relativeTime('2026-11-20T10:00:00Z', now)).toEqual({ unit: 'day', n: 2 });
    // A clock slightly ahead of ours is not "in the future".
    expect(relativeTime('2026-11-22T10:00:05Z', now)).toEqual({ unit: 'justnow', n: 0 });
    expect(relativeTime(null, now)).toBeNull();
    expect(relativeTime('garbage', now)).toBeNull();
  });
});

describe('date filters', () => {
  it('accepts only real YYYY-MM-DD dates', async () => {
    const { parseDateInput } = await import('../src/format');
    expect(parseDateInput('2026-11-22')).toEqual({ y: 2026, m: 11, d: 22 });
    expect(parseDateInput('2026-02-30')).toBeNull();
    expect(parseDateInput('22.11.2026')).toBeNull();
    expect(parseDateInput('')).toBeNull();
    expect(parseDateInput(null)).toBeNull();
  });

  it('turns a local-date range into instants: from the first day, up to the day after the last', async () => {
    const { dateRange, inRange } = await import('../src/format');
    const r = dateRange('2026-11-20', '2026-11-22');
    expect(r.from).toBe(new Date(2026, 10, 20).toISOString());
    expect(r.to).toBe(new Date(2026, 10, 23).toISOString());
    expect(inRange(new Date(2026, 10, 20, 0, 0, 0).toISOString(), r)).toBe(true);
    expect(inRange(new Date(2026, 10, 22, 23, 59).toISOString(), r)).toBe(true);
    expect(inRange(new Date(2026, 10, 23, 0, 0, 0).toISOString(), r)).toBe(false);
    expect(inRange(new Date(2026, 10, 19, 23, 59).toISOString(), r)).toBe(false);
    expect(inRange(null, r)).toBe(false);
    expect(dateRange('', 'nonsense')).toEqual({});
    expect(inRange(null, {})).toBe(true);
  });
});
