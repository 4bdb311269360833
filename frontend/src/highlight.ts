// Search-match highlighting. The query is matched literally (regex metacharacters are escaped),
// case-insensitively, and everything that reaches innerHTML is HTML-escaped first.

const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

export function escapeRegExp(s: string): string {
  // Only syntax characters: under the `u` flag any other escaped character is a SyntaxError.
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

export interface Part {
  text: string;
  match: boolean;
}

/** Splits `text` into alternating plain and matching parts for the (trimmed) query. */
export function splitMatches(text: string, query: string): Part[] {
  const q = query.trim();
  if (!text) return [];
  if (!q) return [{ text, match: false }];
  const re = new RegExp(escapeRegExp(q), 'giu');
  const parts: Part[] = [];
  let last = 0;
  for (const m of text.matchAll(re)) {
    const i = m.index ?? 0;
    if (i > last) parts.push({ text: text.slice(last, i), match: false });
    parts.push({ text: m[0], match: true });
    last = i + m[0].length;
  }
  if (last < text.length) parts.push({ text: text.slice(last), match: false });
  return parts;
}

/** HTML for `text` with every match of `query` wrapped in `<mark>`; all text is escaped. */
export function highlightHtml(text: string, query: string): string {
  return splitMatches(text, query)
    .map((p) => (p.match ? `<mark>${escapeHtml(p.text)}</mark>` : escapeHtml(p.text)))
    .join('');
}

/**
 * A short excerpt of `text` around the first match of `query` (or its start), with ellipses
 * where it was cut. `radius` counts code points either side of the match.
 */
export function excerpt(text: string, query: string, radius = 60): string {
  if (!text) return '';
  const chars = Array.from(text);
  const q = query.trim();
  let start = 0;
  let matchLen = 0;
  if (q) {
    const m = new RegExp(escapeRegExp(q), 'iu').exec(text);
    if (m) {
      start = Array.from(text.slice(0, m.index)).length;
      matchLen = Array.from(m[0]).length;
    }
  }
  const from = Math.max(0, start - radius);
  const to = Math.min(chars.length, start + matchLen + radius + (start - from < radius ? radius - (start - from) : 0));
  let out = chars.slice(from, to).join('');
  if (from > 0) out = '…' + out;
  if (to < chars.length) out = out + '…';
  return out;
}
