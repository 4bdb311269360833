import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { coalesce, debounce, parseEventData, type TaskEvent } from '../src/events';

describe('parseEventData', () => {
  it('parses the gateway payloads', () => {
    const ev = parseEventData<TaskEvent>(
      '{"type":"task","op":"update","task_id":"7c1e","kind":"file","status":"processing","progress":0.25}',
    );
    expect(ev?.status).toBe('processing');
    expect(ev?.progress).toBe(0.25);
  });
  it('rejects what is not a JSON object', () => {
    expect(parseEventData('keepalive')).toBeNull();
    expect(parseEventData('42')).toBeNull();
    expect(parseEventData('null')).toBeNull();
  });
});

describe('timers', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('debounce fires once after the burst', () => {
    const fn = vi.fn();
    const d = debounce(fn, 100);
    d(1);
    vi.advanceTimersByTime(50);
    d(2);
    vi.advanceTimersByTime(99);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledTimes(1);
    expect(fn).toHaveBeenCalledWith(2);
  });

  it('coalesce fires at most once per interval and never starves', () => {
    const fn = vi.fn();
    const c = coalesce(fn, 100);
    for (let i = 0; i < 10; i++) {
      c();
      vi.advanceTimersByTime(30);
    }
    // Calls every 30 ms for 300 ms fire at 100 and 220 (a debounce would not have fired at all);
    // the call at 240 is pending until 340, and cancel drops it.
    expect(fn).toHaveBeenCalledTimes(2);
    c.cancel();
    vi.advanceTimersByTime(500);
    expect(fn).toHaveBeenCalledTimes(2);
  });
});
