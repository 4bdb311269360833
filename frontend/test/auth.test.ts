import { beforeEach, describe, expect, it } from 'vitest';
import { authHeaders, getToken, onUnauthorized, reportUnauthorized, setToken, takeTokenFromUrl, withToken } from '../src/auth';
import { audioUrl, eventsUrl, exportUrl } from '../src/api';
import { streamUrl } from '../src/pages/live';

describe('access token', () => {
  beforeEach(() => setToken(''));

  it('adds nothing when no token is set', () => {
    expect(getToken()).toBe('');
    expect(authHeaders()).toEqual({});
    expect(withToken('/api/v1/events')).toBe('/api/v1/events');
    expect(audioUrl('abc')).toBe('/api/v1/asr/audio/abc');
  });

  it('sends the token as a bearer header and as a query parameter on browser-opened URLs', () => {
    setToken(' s3cret/+= ');
    expect(getToken()).toBe('s3cret/+=');
    expect(authHeaders()).toEqual({ Authorization: 'Bearer s3cret/+=' });
    expect(eventsUrl()).toBe('/api/v1/events?token=s3cret%2F%2B%3D');
    expect(exportUrl('id1', 'srt')).toBe('/api/v1/asr/export/id1.srt?token=s3cret%2F%2B%3D');
    expect(withToken('/x?a=1#frag')).toBe('/x?a=1&token=s3cret%2F%2B%3D#frag');
    expect(streamUrl({ protocol: 'https:', host: 'master.lan:8443' })).toBe(
      'wss://master.lan:8443/api/v1/asr/stream?token=s3cret%2F%2B%3D',
    );
  });

  it('takes a token from a shared link and removes it from the address', () => {
    expect(takeTokenFromUrl('http://master:8080/#/history')).toBeNull();
    expect(takeTokenFromUrl('http://master:8080/?token=abc#/history')).toBe('http://master:8080/#/history');
    expect(getToken()).toBe('abc');
    expect(takeTokenFromUrl('http://master:8080/#/history?q=x&token=def')).toBe('http://master:8080/#/history?q=x');
    expect(getToken()).toBe('def');
  });

  it('tells listeners when the server refused the token, until they unsubscribe', () => {
    let calls = 0;
    const off = onUnauthorized(() => calls++);
    reportUnauthorized();
    off();
    reportUnauthorized();
    expect(calls).toBe(1);
  });
});
