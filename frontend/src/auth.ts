// The optional API token (the gateway's ASR_API_TOKEN). When the gateway asks for one (HTTP 401),
// the page asks the user once and keeps it in localStorage. Requests made with fetch/XHR send it
// as `Authorization: Bearer …`; URLs the browser opens by itself (EventSource, WebSocket, <audio>,
// downloads) cannot carry headers, so they get `?token=…`, which the gateway accepts too.

const STORAGE_KEY = 'lanasr.token';
let memory = '';

function storage(): Storage | null {
  try {
    return typeof localStorage === 'undefined' ? null : localStorage;
  } catch {
    return null; // storage disabled (privacy mode): keep the token for this page only
  }
}

export function getToken(): string {
  const s = storage();
  return (s ? s.getItem(STORAGE_KEY) : null) ?? memory;
}

export function setToken(token: string): void {
  memory = token.trim();
  const s = storage();
  if (!s) return;
  if (memory) s.setItem(STORAGE_KEY, memory);
  else s.removeItem(STORAGE_KEY);
}

/** `url` with the token as a query parameter, when there is one. */
export function withToken(url: string, token: string = getToken()): string {
  if (!token) return url;
  const hashAt = url.indexOf('#');
  const base = hashAt >= 0 ? url.slice(0, hashAt) : url;
  const hash = hashAt >= 0 ? url.slice(hashAt) : '';
  return `${base}${base.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}${hash}`;
}

/** Headers for fetch/XHR: the bearer token, when there is one. */
export function authHeaders(token: string = getToken()): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/**
 * A link shared as `http://master:8080/?token=…` (or `#/history?token=…`): keep the token and
 * return the URL without it, so it does not linger in the address bar or the history.
 */
export function takeTokenFromUrl(href: string): string | null {
  const url = new URL(href);
  let found = url.searchParams.get('token');
  if (found !== null) url.searchParams.delete('token');
  const hash = url.hash;
  const q = hash.indexOf('?');
  if (q >= 0) {
    const hp = new URLSearchParams(hash.slice(q + 1));
    const inHash = hp.get('token');
    if (inHash !== null) {
      found = found ?? inHash;
      hp.delete('token');
      const rest = hp.toString();
      url.hash = hash.slice(0, q) + (rest ? '?' + rest : '');
    }
  }
  if (found === null) return null;
  setToken(found);
  return url.toString();
}

type Listener = () => void;
const unauthorized = new Set<Listener>();

/** Called when the gateway answered 401: the token is missing or wrong. */
export function onUnauthorized(fn: Listener): () => void {
  unauthorized.add(fn);
  return () => unauthorized.delete(fn);
}

export function reportUnauthorized(): void {
  unauthorized.forEach((fn) => fn());
}
