import type { Segment } from './api';

/**
 * The index of the segment playing at `time` seconds (start ≤ time < end), or -1 between
 * segments. Segments are sorted by start; a binary search keeps long recordings cheap.
 */
export function findSegmentIndex(segments: readonly Segment[], time: number): number {
  let lo = 0;
  let hi = segments.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (segments[mid].start <= time) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  if (found < 0) return -1;
  const s = segments[found];
  // A zero-length segment still owns its instant.
  return time < s.end || (s.end <= s.start && time === s.start) ? found : -1;
}
