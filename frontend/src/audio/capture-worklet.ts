// AudioWorklet processor: takes the microphone at the AudioContext's own (native) rate, resamples
// to 16 kHz here, and posts PCM16 frames of a fixed size plus the input level to the page. The
// context is never asked for 16 kHz: Firefox refuses to connect a microphone to a context whose
// rate differs from the device's. Built by Vite as a separate script (`?worker&url`).

import { Framer, StreamResampler, levels, toPcm16 } from './resampler';

declare const sampleRate: number;
declare function registerProcessor(name: string, ctor: unknown): void;
declare class AudioWorkletProcessor {
  readonly port: MessagePort;
  constructor(options?: unknown);
}

interface Options {
  processorOptions?: { targetRate?: number; frameSize?: number };
}

/** Messages to the page: a frame of PCM16 (transferred) with its level, or the flushed tail. */
export type CaptureMessage =
  | { type: 'frame'; pcm: ArrayBuffer; rms: number; peak: number }
  | { type: 'flushed'; pcm: ArrayBuffer | null }
  | { type: 'format'; inputRate: number; targetRate: number; frameSize: number };

class CaptureProcessor extends AudioWorkletProcessor {
  private resampler: StreamResampler;
  private framer: Framer;
  private stopped = false;

  constructor(options: Options) {
    super(options);
    const targetRate = options.processorOptions?.targetRate ?? 16000;
    const frameSize = options.processorOptions?.frameSize ?? 960;
    this.resampler = new StreamResampler(sampleRate, targetRate);
    this.framer = new Framer(frameSize);
    this.port.postMessage({ type: 'format', inputRate: sampleRate, targetRate, frameSize } satisfies CaptureMessage);
    this.port.onmessage = (e: MessageEvent) => {
      if (e.data?.type === 'flush') {
        this.stopped = true;
        const rest = this.framer.flush();
        const pcm = rest ? toPcm16(rest) : null;
        this.port.postMessage({ type: 'flushed', pcm } satisfies CaptureMessage, pcm ? [pcm] : []);
      }
    };
  }

  process(inputs: Float32Array[][]): boolean {
    if (this.stopped) return false;
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true; // not connected yet
    let mono = channels[0];
    if (channels.length > 1) {
      mono = new Float32Array(channels[0].length);
      for (const ch of channels) for (let i = 0; i < mono.length; i++) mono[i] += ch[i] / channels.length;
    }
    for (const frame of this.framer.push(this.resampler.process(mono))) {
      const { rms, peak } = levels(frame);
      const pcm = toPcm16(frame);
      this.port.postMessage({ type: 'frame', pcm, rms, peak } satisfies CaptureMessage, [pcm]);
    }
    return true;
  }
}

registerProcessor('lanasr-capture', CaptureProcessor);
