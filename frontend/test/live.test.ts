import { describe, expect, it } from 'vitest';
import { captureErrorKind } from '../src/audio/capture';
import { sessionName, streamUrl } from '../src/pages/live';

describe('live page helpers', () => {
  it('speaks to the same origin, over wss on https', () => {
    expect(streamUrl({ protocol: 'http:', host: '192.168.1.5:8080' })).toBe('ws://192.168.1.5:8080/api/v1/asr/stream');
    expect(streamUrl({ protocol: 'https:', host: 'asr.lan' })).toBe('wss://asr.lan/api/v1/asr/stream');
  });

  it('names sessions by their local start time', () => {
    expect(sessionName(new Date(2026, 10, 2, 7, 5, 9))).toBe('live-20261102-070509');
  });

  it('maps getUserMedia failures to what the page explains', () => {
    expect(captureErrorKind({ name: 'NotAllowedError' })).toBe('denied');
    expect(captureErrorKind({ name: 'SecurityError' })).toBe('denied');
    expect(captureErrorKind({ name: 'NotFoundError' })).toBe('nomic');
    expect(captureErrorKind({ name: 'OverconstrainedError' })).toBe('nomic');
    expect(captureErrorKind({ name: 'NotReadableError' })).toBe('busy');
    expect(captureErrorKind(null)).toBe('busy');
  });
});
