import { describe, expect, it } from 'vitest';
import { buildHash, matchRoute, parseHash } from '../src/router';
import { findSegmentIndex } from '../src/segments';
import { modelLines, modelPaths } from '../src/pages/system';

describe('router', () => {
  it('parses hashes', () => {
    expect(parseHash('').path).toBe('/');
    expect(parseHash('#/').path).toBe('/');
    expect(parseHash('#/history/').path).toBe('/history');
    const l = parseHash('#/history?q=%E5%A4%A9&offset=20');
    expect(l.path).toBe('/history');
    expect(l.query.get('q')).toBe('天');
    expect(l.query.get('offset')).toBe('20');
    expect(parseHash('#history').path).toBe('/history');
  });
  it('builds hashes without empty values', () => {
    expect(buildHash('/history', { q: 'a b', status: '', offset: undefined })).toBe('#/history?q=a+b');
    expect(buildHash('/system')).toBe('#/system');
  });
  it('matches routes with parameters', () => {
    const routes = [{ path: '/' }, { path: '/history' }, { path: '/task/:id' }];
    expect(matchRoute(routes, '/')?.route.path).toBe('/');
    expect(matchRoute(routes, '/history')?.route.path).toBe('/history');
    const m = matchRoute(routes, '/task/0b6c%2Fx');
    expect(m?.route.path).toBe('/task/:id');
    expect(m?.params.id).toBe('0b6c/x');
    expect(matchRoute(routes, '/task')).toBeNull();
    expect(matchRoute(routes, '/nope')).toBeNull();
  });
});

describe('findSegmentIndex', () => {
  const segs = [
    { start: 0, end: 1.5, text: 'a' },
    { start: 1.5, end: 3, text: 'b' },
    { start: 4, end: 6, text: 'c' },
  ];
  it('finds the segment under the playhead', () => {
    expect(findSegmentIndex(segs, 0)).toBe(0);
    expect(findSegmentIndex(segs, 1.49)).toBe(0);
    expect(findSegmentIndex(segs, 1.5)).toBe(1);
    expect(findSegmentIndex(segs, 5.99)).toBe(2);
  });
  it('returns -1 in gaps, before and after', () => {
    expect(findSegmentIndex(segs, 3.5)).toBe(-1);
    expect(findSegmentIndex(segs, 6)).toBe(-1);
    expect(findSegmentIndex([{ start: 1, end: 2, text: '' }], 0.5)).toBe(-1);
    expect(findSegmentIndex([], 1)).toBe(-1);
  });
});

describe('modelLines', () => {
  it('keeps local paths out of the lines and offers them as a tooltip', () => {
    const m = { asr: 'whisper-base', asr_path: '/root/.cache/m', vad: 'fsmn-vad', cache_dir: '/x' };
    expect(modelLines(m)).toEqual(['asr: whisper-base', 'vad: fsmn-vad']);
    expect(modelPaths(m)).toBe('asr_path: /root/.cache/m\ncache_dir: /x');
    expect(modelPaths(['a'])).toBe('');
  });

  it('renders the shapes a worker may report', () => {
    expect(modelLines({ asr: 'paraformer-zh', vad: 'fsmn-vad', punc: null })).toEqual(['asr: paraformer-zh', 'vad: fsmn-vad']);
    expect(modelLines(['base', 'tiny.en'])).toEqual(['base', 'tiny.en']);
    expect(modelLines('whisper-base')).toEqual(['whisper-base']);
    expect(modelLines(null)).toEqual([]);
  });
});
