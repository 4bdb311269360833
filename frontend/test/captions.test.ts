import { describe, expect, it } from 'vitest';
import { CaptionBook, joinSentences } from '../src/captions';

describe('CaptionBook', () => {
  it('grows partials and replaces them in place by the final', () => {
    const b = new CaptionBook();
    b.apply({ mode: '2pass-online', text: 'and so', partial: 'and so', sentence: 0 });
    b.apply({ mode: '2pass-online', text: ' my fellow', partial: 'and so my fellow', sentence: 0 });
    expect(b.list()).toEqual([{ index: 0, text: 'and so my fellow', final: false }]);
    b.apply({ mode: '2pass-offline', text: 'And so, my fellow Americans,', sentence: 0, start_ms: 0, end_ms: 2500 });
    expect(b.list()).toEqual([{ index: 0, text: 'And so, my fellow Americans,', final: true, startMs: 0, endMs: 2500 }]);
    // A late partial for a finished sentence changes nothing.
    expect(b.apply({ mode: '2pass-online', text: 'x', sentence: 0 })).toBeNull();
    b.apply({ mode: '2pass-online', text: 'ask not', sentence: 1 });
    expect(b.text()).toBe('And so, my fellow Americans, ask not');
  });

  it('appends deltas and follows the open sentence when no index is sent (plain FunASR)', () => {
    const b = new CaptionBook();
    b.apply({ mode: '2pass-online', text: '你好' });
    b.apply({ mode: '2pass-online', text: '世界' });
    b.apply({ mode: '2pass-offline', text: '你好，世界。' });
    b.apply({ mode: '2pass-online', text: '再见' });
    expect(b.list().map((s) => [s.index, s.text, s.final])).toEqual([
      [0, '你好，世界。', true],
      [1, '再见', false],
    ]);
    expect(b.text()).toBe('你好，世界。再见');
  });

  it('does not repeat the closing message as a sentence', () => {
    const b = new CaptionBook();
    b.apply({ mode: '2pass-offline', text: 'Ask not.', sentence: 0 });
    expect(b.apply({ mode: '2pass-offline', text: '', is_final: true, is_end: true })).toBeNull();
    expect(b.apply({ mode: 'offline', text: 'Ask not.', is_final: true })).toBeNull();
    expect(b.list().length).toBe(1);
    // A plain offline session: the closing message is the only text.
    const o = new CaptionBook();
    o.apply({ mode: 'offline', text: 'Whole text.', is_final: true });
    expect(o.text()).toBe('Whole text.');
  });

  it('ignores errors and unknown messages', () => {
    const b = new CaptionBook();
    expect(b.apply({ error: 'x', code: 'no_live_worker' })).toBeNull();
    expect(b.list()).toEqual([]);
  });

  it('joins Chinese without spaces and English with them', () => {
    expect(joinSentences(['Hello.', ' World. ', '', '你好。', '世界。', 'OK'])).toBe('Hello. World.你好。世界。OK');
  });
});
