import { describe, expect, it } from 'vitest';
import { escapeHtml, escapeRegExp, excerpt, highlightHtml, splitMatches } from '../src/highlight';

describe('highlightHtml', () => {
  it('marks case-insensitive English matches and keeps the original case', () => {
    expect(highlightHtml('Ask not what your country', 'COUNTRY')).toBe('Ask not what your <mark>country</mark>');
    expect(highlightHtml('the The THE', 'the')).toBe('<mark>the</mark> <mark>The</mark> <mark>THE</mark>');
  });

  it('marks Chinese matches', () => {
    expect(highlightHtml('今天天气很好，我们去公园吧。', '天气')).toBe('今天<mark>天气</mark>很好，我们去公园吧。');
    expect(highlightHtml('语音识别和语音合成', '语音')).toBe('<mark>语音</mark>识别和<mark>语音</mark>合成');
  });

  it('matches regex special characters literally', () => {
    expect(highlightHtml('costs $5.00 (approx.) [sic] a+b? c*d ^e| \\f {g}', '$5.00 (approx.)')).toBe(
      'costs <mark>$5.00 (approx.)</mark> [sic] a+b? c*d ^e| \\f {g}',
    );
    expect(highlightHtml('a.b axb', '.')).toBe('a<mark>.</mark>b axb');
    expect(highlightHtml('x [sic] y', '[sic]')).toBe('x <mark>[sic]</mark> y');
    expect(highlightHtml('a+b a-b', 'a-b')).toBe('a+b <mark>a-b</mark>');
    expect(highlightHtml('1/2 \\ 3', '\\')).toBe('1/2 <mark>\\</mark> 3');
    expect(highlightHtml('a|b', '|')).toBe('a<mark>|</mark>b');
    expect(highlightHtml('a.*b', '.*')).toBe('a<mark>.*</mark>b');
  });

  it('escapes HTML in the text and in the match', () => {
    expect(highlightHtml('<script>alert("x")</script>', '')).toBe('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    expect(highlightHtml('a <b> & c', '<b>')).toBe('a <mark>&lt;b&gt;</mark> &amp; c');
    expect(highlightHtml("it's <em>", "'")).toBe('it<mark>&#39;</mark>s &lt;em&gt;');
    // Searching for an entity's text must not match inside the escaped output.
    expect(highlightHtml('a & b', 'amp')).toBe('a &amp; b');
  });

  it('ignores a blank query and trims the query', () => {
    expect(highlightHtml('hello world', '   ')).toBe('hello world');
    expect(highlightHtml('hello world', '  world ')).toBe('hello <mark>world</mark>');
    expect(highlightHtml('', 'x')).toBe('');
  });

  it('handles astral characters and mixed scripts', () => {
    expect(highlightHtml('😀 OK 好的 ok', 'ok')).toBe('😀 <mark>OK</mark> 好的 <mark>ok</mark>');
    expect(highlightHtml('GPU 推理 gpu', 'gpu 推理')).toBe('<mark>GPU 推理</mark> gpu');
  });
});

describe('helpers', () => {
  it('splits into parts', () => {
    expect(splitMatches('abcabc', 'b')).toEqual([
      { text: 'a', match: false },
      { text: 'b', match: true },
      { text: 'ca', match: false },
      { text: 'b', match: true },
      { text: 'c', match: false },
    ]);
  });
  it('escapes every regex syntax character into a valid unicode regex', () => {
    const special = '.*+?^${}()|[]\\/';
    const re = new RegExp(escapeRegExp(special), 'u');
    expect(re.test('x' + special + 'y')).toBe(true);
    expect(() => new RegExp(escapeRegExp('a-b'), 'u')).not.toThrow();
  });
  it('escapes HTML', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });
});

describe('excerpt', () => {
  it('keeps short text whole', () => {
    expect(excerpt('short text', 'text', 20)).toBe('short text');
  });
  it('centres on the match with ellipses', () => {
    const text = 'a'.repeat(100) + 'NEEDLE' + 'b'.repeat(100);
    const ex = excerpt(text, 'needle', 10);
    expect(ex).toBe('…' + 'a'.repeat(10) + 'NEEDLE' + 'b'.repeat(10) + '…');
  });
  it('counts Chinese characters, not bytes or UTF-16 units', () => {
    const text = '前'.repeat(50) + '关键词' + '后'.repeat(50);
    expect(excerpt(text, '关键词', 3)).toBe('…前前前关键词后后后…');
  });
  it('starts at the beginning when nothing matches', () => {
    expect(excerpt('0123456789', 'zz', 2)).toBe('0123…');
    expect(excerpt('0123456789', '', 2)).toBe('0123…');
  });
});
