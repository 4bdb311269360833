import './style.css';
import { h, replaceChildren } from './dom';
import { events, type ConnState } from './events';
import { getLang, setLang, t, type MessageKey } from './i18n';
import { matchRoute, parseHash, routerState } from './router';
import { mountTranscribe } from './pages/transcribe';
import { mountHistory } from './pages/history';
import { mountDetail } from './pages/detail';
import { mountSystem } from './pages/system';
import { mountLive } from './pages/live';
import { getToken, onUnauthorized, setToken, takeTokenFromUrl } from './auth';
import { showTokenDialog } from './ui';

export interface PageContext {
  params: Record<string, string>;
  query: URLSearchParams;
}

export type Cleanup = () => void;
type Mount = (root: HTMLElement, ctx: PageContext) => Cleanup | void;

interface Route {
  path: string;
  mount: Mount;
  /** Shown in the navigation bar when set; `active` lists the paths that highlight it. */
  nav?: { key: MessageKey; id: string; active: string[] };
}

// Adding a page (the live microphone page, for one) is one entry here.
const routes: Route[] = [
  { path: '/', mount: mountTranscribe, nav: { key: 'nav.transcribe', id: 'transcribe', active: ['/'] } },
  { path: '/live', mount: mountLive, nav: { key: 'nav.live', id: 'live', active: ['/live'] } },
  { path: '/history', mount: mountHistory, nav: { key: 'nav.history', id: 'history', active: ['/history', '/task'] } },
  { path: '/task/:id', mount: mountDetail },
  { path: '/system', mount: mountSystem, nav: { key: 'nav.system', id: 'system', active: ['/system'] } },
];

// First path segments of the routes, to recognise path-style deep links (`/history`, `/task/…`).
const KNOWN_PATHS = [...new Set(routes.filter((r) => r.path !== '/').map((r) => '/' + r.path.split('/')[1]))];

let cleanup: Cleanup | void;

const header = h('header', { class: 'topbar' });
const main = h('main', { class: 'page', id: 'page' });

function renderHeader(path: string): void {
  const conn = h('span', {
    class: 'conn conn-' + events.state,
    id: 'conn-state',
    'data-testid': 'conn-state',
    'data-state': events.state,
    title: t('conn.title'),
  });
  const setConn = (s: ConnState) => {
    conn.className = 'conn conn-' + s;
    conn.setAttribute('data-state', s);
    conn.textContent = t(('conn.' + s) as MessageKey);
  };
  setConn(events.state);
  connUnsub?.();
  connUnsub = events.onState(setConn);

  const links = routes
    .filter((r) => r.nav)
    .map((r) => {
      const nav = r.nav!;
      const active = nav.active.some((p) => (p === '/' ? path === '/' : path === p || path.startsWith(p + '/')));
      return h(
        'a',
        {
          href: '#' + r.path,
          class: 'nav-link' + (active ? ' active' : ''),
          'aria-current': active ? 'page' : undefined,
          id: 'nav-' + nav.id,
          'data-testid': 'nav-' + nav.id,
        },
        t(nav.key),
      );
    });

  replaceChildren(
    header,
    h(
      'div',
      { class: 'topbar-inner' },
      h('a', { href: '#/', class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), t('app.title')),
      h('nav', { class: 'nav', 'aria-label': t('nav.main') }, links),
      h(
        'div',
        { class: 'topbar-right' },
        conn,
        h(
          'button',
          {
            type: 'button',
            class: 'btn btn-ghost btn-small',
            id: 'lang-switch',
            'data-testid': 'lang-switch',
            'data-lang': getLang(),
            title: t('lang.switch.title'),
            onclick: () => {
              setLang(getLang() === 'zh' ? 'en' : 'zh');
              route(true);
            },
          },
          t('lang.switch'),
        ),
      ),
    ),
  );
}

let connUnsub: (() => void) | undefined;

function route(force = false): void {
  const hash = location.hash || '#/';
  if (!force && hash === routerState.renderedHash) return;
  routerState.renderedHash = hash;
  const loc = parseHash(hash);
  renderHeader(loc.path);
  if (cleanup) cleanup();
  cleanup = undefined;
  const m = matchRoute(routes, loc.path);
  const titleKey = m?.route.nav?.key ?? (m ? undefined : 'err.notfound');
  document.title = titleKey ? `${t(titleKey)} · ${t('app.title')}` : t('app.title');
  const root = h('div', { class: 'page-inner', 'data-route': m ? m.route.path : 'notfound' });
  replaceChildren(main, root);
  if (!m) {
    root.append(h('p', { class: 'empty', 'data-testid': 'not-found' }, t('err.notfound')));
    return;
  }
  cleanup = m.route.mount(root, { params: m.params, query: loc.query });
  window.scrollTo(0, 0);
}

function boot(): void {
  // Path-style deep links that reach us through the gateway's SPA fallback become hash links.
  const p = location.pathname;
  if (p !== '/' && p !== '/index.html' && KNOWN_PATHS.some((k) => p === k || p.startsWith(k + '/')) && !location.hash) {
    history.replaceState(null, '', '/#' + p + location.search);
  }
  const cleaned = takeTokenFromUrl(location.href);
  if (cleaned) history.replaceState(null, '', cleaned);
  onUnauthorized(() =>
    showTokenDialog(getToken() !== '', (token) => {
      setToken(token);
      events.restart();
      route(true);
    }),
  );
  setLang(getLang());
  const app = document.getElementById('app')!;
  replaceChildren(app, header, main);
  window.addEventListener('hashchange', () => route());
  window.addEventListener('popstate', () => route());
  events.start();
  route(true);
}

boot();
