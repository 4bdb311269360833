// Streaming resampler for microphone capture: float samples at the device's native rate in, 16 kHz
// out, block by block, with no drift and no seams between blocks. It runs inside the AudioWorklet
// (see capture-worklet.ts), so it has no DOM dependencies; vitest tests it in Node.
//
// Output sample k sits at input position k·inRate/outRate − W (W = the filter's half-width). That
// position is computed exactly from the integer k (no accumulated floating-point step), so after n
// input samples exactly ceil(n·outRate/inRate) output samples exist, whatever the block sizes. The
// fixed delay of W input samples (under a millisecond) is what lets every output use a full,
// symmetric windowed-sinc low-pass (cut-off just under min(inRate, outRate)/2) without waiting
// for more input: the virtual signal before the first sample is silence.

const ZERO_CROSSINGS = 8;
const CUTOFF = 0.92; // fraction of the lower Nyquist frequency kept
const MAX_PHASE_TABLES = 2048;

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

export class StreamResampler {
  readonly inRate: number;
  readonly outRate: number;
  /** Half-width of the filter in input samples. */
  readonly halfWidth: number;
  private readonly scale: number;
  private readonly phases: number;
  private readonly tables: (Float32Array | undefined)[];
  private readonly passthrough: boolean;
  /** Input history: buf[i] is absolute input sample (bufStart + i); fill = samples held. */
  private buf: Float32Array;
  private bufStart: number;
  private fill = 0;
  /** Input samples received so far (absolute count). */
  private received = 0;
  /** Output samples produced so far. */
  private produced = 0;

  constructor(inRate: number, outRate = 16000) {
    if (!(inRate > 0) || !(outRate > 0) || !Number.isInteger(inRate) || !Number.isInteger(outRate)) {
      throw new RangeError(`sample rates must be positive integers (got ${inRate} → ${outRate})`);
    }
    this.inRate = inRate;
    this.outRate = outRate;
    this.passthrough = inRate === outRate;
    this.scale = CUTOFF * Math.min(1, outRate / inRate);
    this.halfWidth = this.passthrough ? 0 : Math.ceil(ZERO_CROSSINGS / this.scale);
    const g = gcd(inRate, outRate);
    this.phases = outRate / g; // distinct fractional positions
    this.tables = new Array(this.phases <= MAX_PHASE_TABLES ? this.phases : 0);
    // The virtual silence before the first sample: W zeros of history.
    this.bufStart = -2 * this.halfWidth;
    this.buf = new Float32Array(Math.max(4096, 4 * this.halfWidth + 256));
    this.fill = 2 * this.halfWidth;
  }

  /** Output samples produced so far. */
  get outputCount(): number {
    return this.produced;
  }

  /** Output samples that `n` input samples yield in total: ceil(n·outRate/inRate). */
  static expectedOutput(n: number, inRate: number, outRate = 16000): number {
    return Math.ceil((n * outRate) / inRate);
  }

  /** Filter taps for output at fractional position `frac` (0 ≤ frac < 1) past input index i0: taps
   * for input indices i0 − W + 1 … i0 + W, normalised to unit DC gain. */
  private taps(phase: number): Float32Array {
    const cached = this.tables.length ? this.tables[phase] : undefined;
    if (cached) return cached;
    const W = this.halfWidth;
    const frac = phase / this.phases;
    const out = new Float32Array(2 * W);
    let sum = 0;
    for (let j = 0; j < 2 * W; j++) {
      const x = j - (W - 1) - frac; // distance from the output position, in input samples
      const sx = this.scale * x;
      const sinc = sx === 0 ? 1 : Math.sin(Math.PI * sx) / (Math.PI * sx);
      const r = x / W; // -1..1
      const win = Math.abs(r) >= 1 ? 0 : 0.42 + 0.5 * Math.cos(Math.PI * r) + 0.08 * Math.cos(2 * Math.PI * r);
      out[j] = sinc * win;
      sum += out[j];
    }
    for (let j = 0; j < out.length; j++) out[j] /= sum;
    if (this.tables.length) this.tables[phase] = out;
    return out;
  }

  /** Resamples one block; returns the output samples it completes (possibly none). */
  process(input: Float32Array): Float32Array {
    if (this.passthrough) {
      this.received += input.length;
      this.produced += input.length;
      return input.slice();
    }
    this.append(input);
    const W = this.halfWidth;
    const total = StreamResampler.expectedOutput(this.received, this.inRate, this.outRate);
    const out = new Float32Array(total - this.produced);
    let o = 0;
    for (let k = this.produced; k < total; k++) {
      // Position of output k: (k·inRate)/outRate − W = i0 + frac, exactly.
      const num = k * this.inRate;
      const whole = Math.floor(num / this.outRate);
      const rem = num - whole * this.outRate; // 0 ≤ rem < outRate
      const phase = (rem * this.phases) / this.outRate; // integer: outRate/phases = gcd divides rem
      const i0 = whole - W;
      const taps = this.taps(phase);
      let acc = 0;
      let b = i0 - W + 1 - this.bufStart;
      for (let j = 0; j < taps.length; j++, b++) acc += taps[j] * this.buf[b];
      out[o++] = acc;
    }
    this.produced = total;
    this.trim();
    return out;
  }

  private append(input: Float32Array): void {
    if (this.fill + input.length > this.buf.length) {
      const next = new Float32Array(Math.max(this.buf.length * 2, this.fill + input.length));
      next.set(this.buf.subarray(0, this.fill));
      this.buf = next;
    }
    this.buf.set(input, this.fill);
    this.fill += input.length;
    this.received += input.length;
  }

  /** Drops input no future output needs (everything before the next output's first tap). */
  private trim(): void {
    const W = this.halfWidth;
    const nextWhole = Math.floor((this.produced * this.inRate) / this.outRate);
    const keepFrom = nextWhole - 2 * W + 1;
    const drop = keepFrom - this.bufStart;
    if (drop <= 0) return;
    this.buf.copyWithin(0, drop, this.fill);
    this.fill -= drop;
    this.bufStart += drop;
  }
}

/** Cuts a stream of samples into frames of exactly `size` samples. */
export class Framer {
  readonly size: number;
  private pending: Float32Array;
  private fill = 0;

  constructor(size: number) {
    if (!(size > 0) || !Number.isInteger(size)) throw new RangeError(`frame size must be a positive integer (got ${size})`);
    this.size = size;
    this.pending = new Float32Array(size);
  }

  /** Adds samples; returns the frames they complete. */
  push(samples: Float32Array): Float32Array[] {
    const frames: Float32Array[] = [];
    let i = 0;
    while (i < samples.length) {
      const n = Math.min(this.size - this.fill, samples.length - i);
      this.pending.set(samples.subarray(i, i + n), this.fill);
      this.fill += n;
      i += n;
      if (this.fill === this.size) {
        frames.push(this.pending);
        this.pending = new Float32Array(this.size);
        this.fill = 0;
      }
    }
    return frames;
  }

  /** The incomplete last frame (shorter than `size`), or null when there is none. */
  flush(): Float32Array | null {
    if (!this.fill) return null;
    const rest = this.pending.slice(0, this.fill);
    this.fill = 0;
    return rest;
  }
}

/** Float samples (−1..1) to PCM16 little-endian bytes. */
export function toPcm16(samples: Float32Array): ArrayBuffer {
  const buf = new ArrayBuffer(samples.length * 2);
  const view = new DataView(buf);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(i * 2, s < 0 ? Math.round(s * 0x8000) : Math.round(s * 0x7fff), true);
  }
  return buf;
}

/** Root-mean-square and peak of a block, both 0..1. */
export function levels(samples: Float32Array): { rms: number; peak: number } {
  let sum = 0;
  let peak = 0;
  for (let i = 0; i < samples.length; i++) {
    const v = samples[i];
    sum += v * v;
    const a = v < 0 ? -v : v;
    if (a > peak) peak = a;
  }
  return { rms: samples.length ? Math.sqrt(sum / samples.length) : 0, peak };
}

/** A level meter's position (0..1) for an RMS value: −60 dBFS … 0 dBFS, linear in dB. */
export function meterPosition(rms: number): number {
  if (!(rms > 0)) return 0;
  const db = 20 * Math.log10(rms);
  return Math.max(0, Math.min(1, (db + 60) / 60));
}
