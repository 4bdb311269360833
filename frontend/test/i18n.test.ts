import { describe, expect, it } from 'vitest';
import { createTranslator, detectLang, dictionaries, interpolate } from '../src/i18n';

describe('i18n', () => {
  it('translates into the chosen language', () => {
    expect(createTranslator(dictionaries, 'zh')('nav.history')).toBe('历史记录');
    expect(createTranslator(dictionaries, 'en')('nav.history')).toBe('History');
  });

  it('falls back to English, then to the key', () => {
    const dicts = { en: { 'a.b': 'English only' }, zh: {} } as never;
    const tr = createTranslator(dicts, 'zh');
    expect(tr('a.b')).toBe('English only');
    expect(tr('missing.key')).toBe('missing.key');
    expect(createTranslator(dicts, 'fr')('a.b')).toBe('English only');
  });

  it('interpolates placeholders and leaves unknown ones alone', () => {
    expect(interpolate('Position {position} of {total}', { position: 3, total: 9 })).toBe('Position 3 of 9');
    expect(interpolate('{x} and {y}', { x: 'a' })).toBe('a and {y}');
    expect(createTranslator(dictionaries, 'zh')('tx.position', { position: 2 })).toBe('队列第 2 位');
  });

  it('detects the language from storage first, then the browser', () => {
    expect(detectLang('en', ['zh-CN'])).toBe('en');
    expect(detectLang('zh', ['en-US'])).toBe('zh');
    expect(detectLang(null, ['zh-TW', 'en'])).toBe('zh');
    expect(detectLang(null, ['en-GB'])).toBe('en');
    expect(detectLang('bogus', ['fr-FR', 'zh-Hans'])).toBe('zh');
    expect(detectLang(undefined, ['fr-FR'])).toBe('en');
    expect(detectLang(null, [])).toBe('en');
  });

  it('has every Chinese key in the English set, and no placeholder mismatches', () => {
    const en = dictionaries.en as Record<string, string>;
    const zh = dictionaries.zh as Record<string, string>;
    const ph = (s: string) => (s.match(/\{\w+\}/g) ?? []).sort().join(',');
    for (const [k, v] of Object.entries(zh)) {
      expect(en[k], `zh key ${k} is not in en`).toBeDefined();
      expect(ph(v), `placeholders of ${k}`).toBe(ph(en[k]));
    }
  });
});
