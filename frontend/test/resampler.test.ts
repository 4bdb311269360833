import { describe, expect, it } from 'vitest';
import { Framer, StreamResampler, levels, meterPosition, toPcm16 } from '../src/audio/resampler';

function sine(n: number, rate: number, freq: number, amp = 0.5, offset = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = amp * Math.sin((2 * Math.PI * freq * (i + offset)) / rate);
  return out;
}

function inBlocks(r: StreamResampler, input: Float32Array, sizes: number[]): Float32Array {
  const parts: Float32Array[] = [];
  let i = 0;
  let s = 0;
  while (i < input.length) {
    const n = Math.min(sizes[s++ % sizes.length], input.length - i);
    parts.push(r.process(input.subarray(i, i + n)));
    i += n;
  }
  const total = parts.reduce((a, p) => a + p.length, 0);
  const out = new Float32Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

describe('Framer', () => {
  it('cuts any input into frames of exactly the frame size', () => {
    const f = new Framer(960);
    const frames: Float32Array[] = [];
    let fed = 0;
    for (const n of [128, 5, 1000, 0, 2000, 37, 960]) {
      const block = new Float32Array(n).map((_, i) => fed + i);
      fed += n;
      frames.push(...f.push(block));
    }
    expect(frames.every((fr) => fr.length === 960)).toBe(true);
    expect(frames.length).toBe(Math.floor(fed / 960));
    const rest = f.flush()!;
    expect(rest.length).toBe(fed % 960);
    // Order and values are kept across frame boundaries.
    const all = [...frames.flatMap((fr) => Array.from(fr)), ...Array.from(rest)];
    expect(all).toEqual(Array.from({ length: fed }, (_, i) => i));
    expect(f.flush()).toBeNull();
  });

  it('refuses a nonsensical frame size', () => {
    expect(() => new Framer(0)).toThrow(RangeError);
    expect(() => new Framer(1.5)).toThrow(RangeError);
  });
});

describe('StreamResampler', () => {
  it.each([44100, 48000, 96000, 22050, 16000, 8000])('turns %i Hz into 16 kHz without drift across blocks', (rate) => {
    const r = new StreamResampler(rate, 16000);
    const block = 128; // the AudioWorklet render quantum
    let outCount = 0;
    for (let n = 1; n <= 3000; n++) {
      outCount += r.process(new Float32Array(block)).length;
      const expected = (n * block * 16000) / rate;
      expect(Math.abs(outCount - expected)).toBeLessThanOrEqual(1);
    }
    expect(outCount).toBe(r.outputCount);
  });

  it('keeps exact counts with irregular block sizes (44.1 kHz)', () => {
    const r = new StreamResampler(44100);
    let inCount = 0;
    let outCount = 0;
    const sizes = [128, 441, 1, 4096, 333, 127, 2048];
    for (let i = 0; i < 2000; i++) {
      const n = sizes[i % sizes.length];
      inCount += n;
      outCount += r.process(new Float32Array(n)).length;
      expect(outCount).toBe(StreamResampler.expectedOutput(inCount, 44100));
    }
    // Ten minutes of 128-sample blocks at 44.1 kHz stay within one sample of the ideal count.
    expect(Math.abs(outCount - (inCount * 16000) / 44100)).toBeLessThanOrEqual(1);
  });

  it.each([44100, 48000])('a sine resampled in blocks equals the sine resampled at once (%i Hz)', (rate) => {
    const input = sine(rate * 2, rate, 440);
    const once = new StreamResampler(rate).process(input);
    const blocked = inBlocks(new StreamResampler(rate), input, [128, 7, 1000, 128, 4410]);
    expect(blocked.length).toBe(once.length);
    let maxDiff = 0;
    for (let i = 0; i < once.length; i++) maxDiff = Math.max(maxDiff, Math.abs(once[i] - blocked[i]));
    expect(maxDiff).toBeLessThan(1e-6);
  });

  it.each([44100, 48000])('reproduces a 1 kHz sine at 16 kHz (%i Hz in)', (rate) => {
    const r = new StreamResampler(rate);
    const out = inBlocks(r, sine(rate, rate, 1000, 0.5), [128]);
    // Output sample k is the input at time k/16000 − W/rate (the filter's fixed delay).
    const delay = r.halfWidth / rate;
    let maxErr = 0;
    for (let k = 200; k < out.length - 200; k++) {
      const expected = 0.5 * Math.sin(2 * Math.PI * 1000 * (k / 16000 - delay));
      maxErr = Math.max(maxErr, Math.abs(out[k] - expected));
    }
    expect(maxErr).toBeLessThan(0.01);
  });

  it('removes what 16 kHz cannot represent (a 12 kHz tone from 48 kHz)', () => {
    const out = new StreamResampler(48000).process(sine(48000, 48000, 12000, 0.5));
    const { rms } = levels(out.subarray(200, out.length - 200));
    expect(rms).toBeLessThan(0.01); // the unfiltered tone would alias to 4 kHz at rms 0.35
  });

  it('refuses bad rates', () => {
    expect(() => new StreamResampler(0)).toThrow(RangeError);
    expect(() => new StreamResampler(44100.5)).toThrow(RangeError);
  });
});

describe('PCM and levels', () => {
  it('writes clipped PCM16 little-endian', () => {
    const b = new DataView(toPcm16(new Float32Array([0, 1, -1, 2, -2, 0.5])));
    expect(b.byteLength).toBe(12);
    expect([0, 1, 2, 3, 4, 5].map((i) => b.getInt16(i * 2, true))).toEqual([0, 32767, -32768, 32767, -32768, 16384]);
  });

  it('measures levels and maps them onto the meter', () => {
    const l = levels(sine(16000, 16000, 440, 1));
    expect(l.rms).toBeCloseTo(Math.SQRT1_2, 3);
    expect(l.peak).toBeCloseTo(1, 3);
    expect(meterPosition(0)).toBe(0);
    expect(meterPosition(1)).toBe(1);
    expect(meterPosition(0.001)).toBeCloseTo(0, 5);
    expect(meterPosition(0.1)).toBeCloseTo(2 / 3, 5);
  });
});
