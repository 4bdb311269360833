import { describe, expect, it } from 'vitest';
import { ApiError, isTerminal, parseApiError, queryString } from '../src/api';

describe('parseApiError', () => {
  it('uses the JSON error sentence and code', () => {
    const e = parseApiError(415, '{"error":"The file is not audio (PNG image).","code":"unsupported_media"}');
    expect(e).toBeInstanceOf(ApiError);
    expect(e.message).toBe('The file is not audio (PNG image).');
    expect(e.code).toBe('unsupported_media');
    expect(e.status).toBe(415);
    expect(e.fromServer).toBe(true);
  });

  it('derives the code from the status when the body has none', () => {
    const e = parseApiError(413, '{"error":"Upload is larger than 512 MB."}');
    expect(e.code).toBe('too_large');
    expect(e.message).toBe('Upload is larger than 512 MB.');
    expect(parseApiError(404, '{"error":"no such task"}').code).toBe('not_found');
    expect(parseApiError(418, '{"error":"teapot"}').code).toBe('http_418');
  });

  it('keeps Chinese messages', () => {
    expect(parseApiError(422, '{"error":"音频文件已损坏","code":"corrupt_audio"}').message).toBe('音频文件已损坏');
  });

  it('accepts a plain-text body', () => {
    const e = parseApiError(502, 'upstream connect error\n');
    expect(e.message).toBe('upstream connect error');
    expect(e.code).toBe('unavailable');
    expect(e.fromServer).toBe(true);
  });

  it('falls back to a generic message for HTML, empty or odd bodies', () => {
    const html = parseApiError(500, '<html><body>Internal Server Error</body></html>', 'Internal Server Error');
    expect(html.message).toBe('HTTP 500 Internal Server Error');
    expect(html.fromServer).toBe(false);
    expect(parseApiError(503, '').message).toBe('HTTP 503');
    expect(parseApiError(400, '{"code":"invalid"}').message).toBe('HTTP 400');
    expect(parseApiError(400, '{"code":"invalid"}').code).toBe('invalid');
    expect(parseApiError(400, '[1,2]').fromServer).toBe(false);
    expect(parseApiError(400, '{"error": 42}').message).toBe('HTTP 400');
    expect(parseApiError(0, null).code).toBe('network');
  });

  it('accepts a `message` field from other servers', () => {
    expect(parseApiError(400, '{"message":"bad"}').message).toBe('bad');
  });
});

describe('query helpers', () => {
  it('drops empty values and encodes the rest', () => {
    expect(queryString({ q: '天气 & more', status: '', kind: undefined, limit: 20, offset: 0 })).toBe(
      '?q=%E5%A4%A9%E6%B0%94+%26+more&limit=20&offset=0',
    );
    expect(queryString({})).toBe('');
  });
  it('knows terminal states', () => {
    expect(isTerminal('done')).toBe(true);
    expect(isTerminal('canceled')).toBe(true);
    expect(isTerminal('processing')).toBe(false);
    expect(isTerminal(undefined)).toBe(false);
  });
});
