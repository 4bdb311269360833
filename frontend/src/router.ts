// Hash routing (`#/history?q=…`): works behind any static server and needs no gateway support;
// the gateway's SPA fallback still sends path-style links (`/history`) here, which main.ts
// rewrites to their hash form.

export interface Location {
  path: string;
  query: URLSearchParams;
}

/** Splits a location hash into a normalised path and its query. */
export function parseHash(hash: string): Location {
  let s = hash.startsWith('#') ? hash.slice(1) : hash;
  if (!s.startsWith('/')) s = '/' + s;
  const qi = s.indexOf('?');
  const rawPath = qi >= 0 ? s.slice(0, qi) : s;
  const query = new URLSearchParams(qi >= 0 ? s.slice(qi + 1) : '');
  let path = rawPath.replace(/\/+$/, '') || '/';
  path = path.replace(/\/{2,}/g, '/');
  return { path, query };
}

/** Builds `#/path?query` from a path and the set (non-empty) query values. */
export function buildHash(path: string, params?: Record<string, string | number | undefined | null>): string {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) {
    if (v === undefined || v === null || v === '') continue;
    sp.set(k, String(v));
  }
  const q = sp.toString();
  return '#' + path + (q ? '?' + q : '');
}

export interface RouteMatch<R> {
  route: R;
  params: Record<string, string>;
}

/** Matches a path against patterns like `/task/:id`; segments are URI-decoded. */
export function matchRoute<R extends { path: string }>(routes: readonly R[], path: string): RouteMatch<R> | null {
  const parts = path.split('/').filter(Boolean);
  for (const route of routes) {
    const pp = route.path.split('/').filter(Boolean);
    if (pp.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < pp.length; i++) {
      if (pp[i].startsWith(':')) {
        try {
          params[pp[i].slice(1)] = decodeURIComponent(parts[i]);
        } catch {
          ok = false;
        }
      } else if (pp[i] !== parts[i]) ok = false;
      if (!ok) break;
    }
    if (ok) return { route, params };
  }
  return null;
}

/** The hash the current page was rendered for; a hashchange to it again is not a navigation. */
export const routerState = { renderedHash: null as string | null, lastHistory: '#/history' };

/** Lets a page record a query change (search, page) in the address bar without remounting. */
export function replaceLocation(hash: string, push = false): void {
  if (hash === (location.hash || '#/')) return;
  routerState.renderedHash = hash;
  if (push) history.pushState(null, '', hash);
  else history.replaceState(null, '', hash);
}
