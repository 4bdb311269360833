// Microphone capture for the live page: getUserMedia → AudioContext at the device's native rate →
// AudioWorklet (capture-worklet.ts) that resamples to 16 kHz and posts PCM16 frames.

import workletUrl from './capture-worklet.ts?worker&url';
import type { CaptureMessage } from './capture-worklet';

export type CaptureErrorKind = 'insecure' | 'unsupported' | 'denied' | 'nomic' | 'busy';

export class CaptureError extends Error {
  readonly kind: CaptureErrorKind;
  constructor(kind: CaptureErrorKind, detail?: string) {
    super(detail || kind);
    this.kind = kind;
  }
}

export interface CaptureHandlers {
  onFrame: (pcm: ArrayBuffer, rms: number, peak: number) => void;
}

export interface Capture {
  /** The device rate the context runs at (the worklet resamples from it). */
  readonly inputRate: number;
  /** Stops the microphone; resolves with the last, shorter frame (or null). */
  stop(): Promise<ArrayBuffer | null>;
}

/** Maps getUserMedia's DOMException names onto what the page tells the user. */
export function captureErrorKind(err: unknown): CaptureErrorKind {
  const name = (err as { name?: string } | null)?.name ?? '';
  if (name === 'NotAllowedError' || name === 'PermissionDeniedError' || name === 'SecurityError') return 'denied';
  if (name === 'NotFoundError' || name === 'DevicesNotFoundError' || name === 'OverconstrainedError') return 'nomic';
  return 'busy';
}

export async function startCapture(handlers: CaptureHandlers, frameSize = 960): Promise<Capture> {
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) throw new CaptureError('insecure');
  const Ctx: typeof AudioContext | undefined =
    window.AudioContext ?? (window as unknown as { webkitAudioContext?: typeof AudioContext }).webkitAudioContext;
  if (!Ctx || typeof AudioWorkletNode === 'undefined') throw new CaptureError('unsupported');

  let stream: MediaStream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      video: false,
    });
  } catch (err) {
    throw new CaptureError(captureErrorKind(err), (err as Error)?.message);
  }

  // No sampleRate option: the context runs at the device's rate (Firefox rejects a mismatch).
  const ctx = new Ctx({ latencyHint: 'interactive' });
  const release = () => {
    for (const tr of stream.getTracks()) tr.stop();
    void ctx.close().catch(() => undefined);
  };
  try {
    await ctx.audioWorklet.addModule(workletUrl);
    if (ctx.state === 'suspended') await ctx.resume();
  } catch (err) {
    release();
    throw new CaptureError('unsupported', (err as Error)?.message);
  }

  const source = ctx.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(ctx, 'lanasr-capture', {
    numberOfInputs: 1,
    numberOfOutputs: 1,
    outputChannelCount: [1],
    channelCount: 1,
    channelCountMode: 'explicit',
    channelInterpretation: 'speakers',
    processorOptions: { targetRate: 16000, frameSize },
  });
  // A silent path to the destination keeps the graph pulling the worklet in every browser.
  const mute = ctx.createGain();
  mute.gain.value = 0;
  source.connect(node);
  node.connect(mute);
  mute.connect(ctx.destination);

  let flushed: ((pcm: ArrayBuffer | null) => void) | null = null;
  node.port.onmessage = (e: MessageEvent<CaptureMessage>) => {
    const m = e.data;
    if (m.type === 'frame') handlers.onFrame(m.pcm, m.rms, m.peak);
    else if (m.type === 'flushed') flushed?.(m.pcm);
  };

  let stopping: Promise<ArrayBuffer | null> | null = null;
  return {
    inputRate: ctx.sampleRate,
    stop() {
      if (stopping) return stopping;
      stopping = new Promise<ArrayBuffer | null>((resolve) => {
        const timer = setTimeout(() => resolve(null), 500);
        flushed = (pcm) => {
          clearTimeout(timer);
          resolve(pcm);
        };
        node.port.postMessage({ type: 'flush' });
      }).finally(() => {
        try {
          source.disconnect();
          node.disconnect();
        } catch {
          /* already disconnected */
        }
        release();
      });
      return stopping;
    },
  };
}
