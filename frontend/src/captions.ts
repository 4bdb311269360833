// The live page's caption model (docs/CONTRACT.md, "Caption messages"): `2pass-online` partials
// grow a sentence (`partial` is its whole current text; without it, `text` is the delta to append),
// a `2pass-offline` final replaces the sentence with its corrected text. Messages carry `sentence`
// (the index); when a server leaves it out, the open sentence is the one after the last final.

export interface CaptionMessage {
  mode?: string;
  text?: string;
  partial?: string;
  sentence?: number;
  start_ms?: number;
  end_ms?: number;
  is_final?: boolean;
  is_end?: boolean;
  session_id?: string;
  task_id?: string;
  error?: string;
  code?: string;
}

export interface Sentence {
  index: number;
  text: string;
  final: boolean;
  startMs?: number;
  endMs?: number;
}

export class CaptionBook {
  readonly sentences = new Map<number, Sentence>();
  private open = 0;

  /** Applies one caption message; returns the sentence it changed, if any. */
  apply(m: CaptionMessage): Sentence | null {
    const mode = m.mode ?? '';
    const online = mode.endsWith('online');
    const offline = mode.endsWith('offline');
    if (!online && !offline) return null;
    // The session's closing message (`is_final`, no sentence index) repeats or summarises what the
    // sentences already said; it only adds text when nothing came before it.
    if (m.is_final && typeof m.sentence !== 'number' && (this.sentences.size > 0 || !(m.text ?? '').trim())) return null;
    const index = typeof m.sentence === 'number' && m.sentence >= 0 ? m.sentence : this.open;
    let s = this.sentences.get(index);
    if (!s) {
      s = { index, text: '', final: false };
      this.sentences.set(index, s);
    }
    if (typeof m.start_ms === 'number') s.startMs = m.start_ms;
    if (typeof m.end_ms === 'number') s.endMs = m.end_ms;
    if (online) {
      if (s.final) return null; // a late partial never overwrites a corrected sentence
      s.text = typeof m.partial === 'string' ? m.partial : s.text + (m.text ?? '');
    } else {
      s.text = m.text ?? '';
      s.final = true;
      if (index >= this.open) this.open = index + 1;
    }
    return s;
  }

  /** Sentences in order. */
  list(): Sentence[] {
    return [...this.sentences.values()].sort((a, b) => a.index - b.index);
  }

  /** The text so far: final sentences, then the partial ones. */
  text(): string {
    return joinSentences(this.list().map((s) => s.text));
  }

  clear(): void {
    this.sentences.clear();
    this.open = 0;
  }
}

/** Joins sentences: no space between CJK text, one space otherwise. */
export function joinSentences(parts: string[]): string {
  let out = '';
  for (const raw of parts) {
    const p = raw.trim();
    if (!p) continue;
    if (out && !/[\u3000-\u9fff\uff00-\uffef]$/.test(out) && !/^[\u3000-\u9fff\uff00-\uffef]/.test(p)) out += ' ';
    out += p;
  }
  return out;
}
