// readyd's dashboard: the shell around the pages. It owns hash routing (#/..., shareable links),
// the API token (sessionStorage only), live updates (polls /v1/status and the current page's own
// watch key every few seconds and re-renders the page in place when they change, unless the user
// is editing a form), the flash area for action results, and the capture of unexpected script
// errors (shown on the page and kept in window.__readyd.errors for the browser test).
// It talks to nothing but the daemon's public /v1 API.

import { h, errorPanel, setServerNow } from './dom.js';
import { get, getToken, setToken, request, ApiError } from './api.js';
import { describeError } from './actions.js';
import * as overview from './overview.js';
import * as tier1 from './tier1.js';
import * as entity from './entity.js';
import * as team from './team.js';
import * as initiatives from './initiatives.js';
import * as approvals from './approvals.js';
import * as statusPage from './status.js';
import { renderEntities, renderTasks } from './lists.js';

const POLL_MS = 4000;
const HIDDEN_POLL_MS = 20000;

const ROUTES = [
  { re: /^\/?$/, nav: 'overview', title: () => 'Overview', render: overview.render, watch: overview.watch },
  { re: /^\/tier1\/?$/, nav: 'tier1', title: () => 'Tier 1', render: tier1.render, watch: tier1.watch },
  { re: /^\/entities\/?$/, nav: 'entities', title: () => 'Entities', render: renderEntities },
  { re: /^\/entities\/([^/]+)\/?$/, nav: 'entities', title: (p) => p[0], render: entity.render, watch: entity.watch },
  { re: /^\/teams\/?$/, nav: 'teams', title: () => 'Teams', render: team.renderList },
  { re: /^\/teams\/([^/]+)\/?$/, nav: 'teams', title: (p) => `Team ${p[0]}`, render: team.render, watch: team.watch },
  { re: /^\/initiatives\/?$/, nav: 'initiatives', title: () => 'Initiatives', render: initiatives.renderList },
  { re: /^\/initiatives\/([^/]+)\/?$/, nav: 'initiatives', title: (p) => p[0], render: initiatives.render },
  { re: /^\/approvals\/?$/, nav: 'approvals', title: () => 'Approvals', render: approvals.render },
  { re: /^\/tasks\/?$/, nav: 'tasks', title: () => 'Tasks', render: renderTasks },
  { re: /^\/status\/?$/, nav: 'status', title: () => 'Status', render: statusPage.render, live: true },
];

const NOT_FOUND = {
  nav: '',
  title: () => 'Not found',
  render: async (ctx) =>
    h(
      'div',
      { class: 'page' },
      h('h1', { tabindex: -1 }, 'No such page'),
      h('p', { testid: 'not-found' }, `Nothing lives at #${ctx.path}. `, h('a', { href: '#/' }, 'Go to the overview'), '.'),
    ),
};

// Everything the shell remembers between renders; exposed for the browser test.
const app = {
  status: null,
  statusSig: null,
  watchSig: null,
  gen: 0,
  renders: 0,
  daemonDown: false,
  viewErrorStatus: null,
  navigated: false,
  softNavigation: false,
  errors: [],
};
window.__readyd = app;

const $ = (sel) => document.querySelector(sel);

function recordError(err) {
  const text = (err && (err.stack || err.message)) || String(err);
  app.errors.push(text);
  flash(`The page hit an unexpected error: ${err && err.message ? err.message : text}`, 'error');
}
window.addEventListener('error', (e) => recordError(e.error || e.message));
window.addEventListener('unhandledrejection', (e) => recordError(e.reason));

// ---- routing ----------------------------------------------------------------------------------

function resolve() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const q = raw.indexOf('?');
  const path = q >= 0 ? raw.slice(0, q) : raw;
  const query = Object.fromEntries(new URLSearchParams(q >= 0 ? raw.slice(q + 1) : ''));
  for (const route of ROUTES) {
    const m = route.re.exec(path);
    if (m) {
      let params;
      try {
        params = m.slice(1).map((p) => decodeURIComponent(p));
      } catch {
        params = m.slice(1);
      }
      return { ...route, path, query, params };
    }
  }
  return { ...NOT_FOUND, path, query, params: [] };
}

function makeCtx(route) {
  return {
    path: route.path,
    params: route.params,
    query: route.query,
    hasToken: Boolean(getToken()),
    status: app.status,
    setStatus: (st) => applyStatus(st),
    // Used by filter forms: the new view replaces this one in place, keeping focus and scroll.
    navigate: (hash) => {
      if (location.hash !== hash) {
        app.softNavigation = true;
        location.hash = hash;
      } else {
        renderView({ soft: true });
      }
    },
    // After an action: the page and the header's counts show the new state at once.
    refresh: () => {
      refreshStatus();
      return renderView({ soft: true });
    },
    flash,
    openTokenPanel,
  };
}

function updateNav(nav) {
  for (const a of document.querySelectorAll('.mainnav a[data-nav]')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

/** Render the current route into <main>. `soft`: an in-place update (keep scroll and focus). */
async function renderView({ soft = false } = {}) {
  const route = resolve();
  const gen = ++app.gen;
  const main = $('#main');
  main.setAttribute('aria-busy', 'true');
  updateNav(route.nav);
  document.title = `${route.title(route.params)} · readyd`;
  const ctx = makeCtx(route);
  // The watch key is taken before the page's data, so a change in between is seen by the next poll.
  const watchPromise = route.watch ? route.watch(ctx).catch(() => null) : Promise.resolve(null);
  let node;
  let errorStatus = null;
  try {
    node = await route.render(ctx);
  } catch (err) {
    if (!(err instanceof ApiError)) recordError(err);
    errorStatus = err instanceof ApiError ? err.status : -1;
    node = errorPanel(err);
  }
  const watchSig = await watchPromise;
  if (gen !== app.gen) return;

  // An in-place update keeps what the user opened and where the keyboard focus was.
  const keepOpen = [];
  const keepClosed = [];
  let focusSelector = null;
  if (soft) {
    for (const d of main.querySelectorAll('details[data-testid]')) (d.open ? keepOpen : keepClosed).push(d.dataset.testid);
    const active = document.activeElement;
    if (active && active !== main && main.contains(active)) {
      if (active.dataset.testid) focusSelector = `[data-testid="${CSS.escape(active.dataset.testid)}"]`;
      else if (active.getAttribute('href')) focusSelector = `a[href="${CSS.escape(active.getAttribute('href'))}"]`;
    }
  }
  main.replaceChildren(node);
  for (const id of keepOpen) main.querySelector(`details[data-testid="${CSS.escape(id)}"]`)?.setAttribute('open', '');
  for (const id of keepClosed) main.querySelector(`details[data-testid="${CSS.escape(id)}"]`)?.removeAttribute('open');
  if (focusSelector) main.querySelector(focusSelector)?.focus({ preventScroll: true });
  main.setAttribute('aria-busy', 'false');
  main.dataset.route = route.nav || 'not-found';
  app.renders += 1;
  main.dataset.renders = String(app.renders);
  app.viewErrorStatus = errorStatus;
  app.watchSig = errorStatus === null ? watchSig : null;
  hideStale();
  if (!soft) {
    window.scrollTo(0, 0);
    // Move focus to the new page's heading after a navigation, as a screen reader expects.
    if (app.navigated) main.querySelector('h1')?.focus({ preventScroll: true });
  }
}

function isEditing() {
  const main = $('#main');
  const active = document.activeElement;
  if (active && main.contains(active) && active.matches('input, textarea, select') && !active.closest('[data-live]')) return true;
  return Boolean(main.querySelector('form[data-dirty]'));
}

/** A background update: re-render now, or offer it when the user is in the middle of a form. */
function requestSoftRender() {
  if (isEditing()) {
    $('#stale').hidden = false;
    return;
  }
  renderView({ soft: true });
}

function hideStale() {
  $('#stale').hidden = true;
}

// ---- live status --------------------------------------------------------------------------------

function statusSignature(st) {
  return JSON.stringify([
    st.ready,
    st.entities,
    st.scorecards,
    st.catalog?.revision,
    st.catalog?.last_error,
    st.standards?.revision,
    st.standards?.last_error,
    st.degraded,
    st.open_tasks,
    st.pending_exemptions,
    st.pending_tier_requests,
    (st.plugins ?? []).map((p) => [p.name, p.version, p.state, p.last_error]),
  ]);
}

function applyStatus(st) {
  app.status = st;
  if (st.now) setServerNow(st.now);
  const banner = $('#banner');
  if (st.ready === false) {
    banner.textContent = 'The daemon is still starting: the first evaluation is running, numbers may change.';
    banner.className = 'banner is-warn';
    banner.hidden = false;
  } else {
    banner.hidden = true;
  }
  const pending = (st.pending_exemptions ?? 0) + (st.pending_tier_requests ?? 0);
  const count = $('#nav-approvals-count');
  count.textContent = String(pending);
  count.hidden = pending === 0;
  count.setAttribute('aria-label', `${pending} pending`);
  const troubled =
    Boolean(st.catalog?.last_error || st.standards?.last_error) ||
    (st.plugins ?? []).some((p) => p.last_error || /park|fail|error/i.test(statusPage.pluginState(p)));
  $('#nav-status-dot').hidden = !troubled;
  $('#footer-version').textContent = `readyd ${st.version ?? ''}`.trim();
  const live = $('#footer-live');
  live.textContent = `live · updated ${new Date().toLocaleTimeString()}`;
  live.className = 'live is-ok';
}

function showDown(err) {
  const banner = $('#banner');
  banner.textContent =
    err instanceof ApiError && err.status === 503
      ? `The daemon is not ready: ${err.message}. Retrying…`
      : err instanceof ApiError && err.status === 401
        ? `The daemon needs a token to read: ${err.message}`
        : `${describeError(err)}. Retrying…`;
  banner.className = 'banner is-bad';
  banner.hidden = false;
  const live = $('#footer-live');
  live.textContent = 'offline';
  live.className = 'live is-bad';
}

/** Fetch the status now (after an action) rather than at the next poll. */
async function refreshStatus() {
  try {
    const st = await get('status');
    applyStatus(st);
    app.statusSig = statusSignature(st);
  } catch {
    // The next poll reports it.
  }
}

async function poll() {
  const route = resolve();
  try {
    const watchPromise = route.watch && app.viewErrorStatus === null ? route.watch(makeCtx(route)).catch(() => null) : Promise.resolve(null);
    const st = await get('status');
    const watchSig = await watchPromise;
    const wasDown = app.daemonDown;
    app.daemonDown = false;
    applyStatus(st);
    const sig = statusSignature(st);
    const statusChanged = app.statusSig !== null && sig !== app.statusSig;
    const pageChanged = watchSig !== null && app.watchSig !== null && watchSig !== app.watchSig;
    app.statusSig = sig;
    // Transient failures (daemon away, starting) are retried; a 404 or 403 is not.
    const retry = app.viewErrorStatus === 0 || app.viewErrorStatus === 503;
    if (wasDown || retry || statusChanged || pageChanged || route.live) requestSoftRender();
  } catch (err) {
    if (!(err instanceof ApiError)) recordError(err);
    app.daemonDown = true;
    showDown(err);
  } finally {
    setTimeout(poll, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
  }
}

// ---- flash messages -------------------------------------------------------------------------------

function flash(text, kind = 'ok') {
  const el = $('#flash');
  el.replaceChildren(
    h('span', { testid: 'flash-text' }, text),
    (() => {
      const close = h('button', { type: 'button', class: 'btn small ghost', 'aria-label': 'Dismiss message', testid: 'flash-close' }, '×');
      close.addEventListener('click', () => {
        el.hidden = true;
      });
      return close;
    })(),
  );
  el.className = `flash ${kind === 'error' ? 'is-error' : 'is-ok'}`;
  el.dataset.kind = kind;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  el.hidden = false;
}

function clearFlash() {
  $('#flash').hidden = true;
}

// ---- token ------------------------------------------------------------------------------------------

function refreshTokenUi() {
  const has = Boolean(getToken());
  $('#token-state').textContent = has ? 'Token active' : 'Read-only · enter token';
  $('#token-panel').classList.toggle('has-token', has);
  $('#token-clear').hidden = !has;
}

function tokenMessage(text, kind) {
  const el = $('#token-message');
  el.textContent = text;
  el.className = `form-message ${kind === 'error' ? 'is-error' : 'is-ok'}`;
  el.hidden = !text;
}

function openTokenPanel() {
  const panel = $('#token-panel');
  panel.open = true;
  $('#token-input').focus();
}

function bindToken() {
  const panel = $('#token-panel');
  const input = $('#token-input');
  $('#token-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = input.value.trim();
    if (!value) {
      tokenMessage('Enter a token first.', 'error');
      return;
    }
    tokenMessage('Checking…', 'ok');
    try {
      await request('GET', 'status', undefined, { token: value });
    } catch (err) {
      // 401 means the daemon does not know the token; anything else (not ready, a role that may
      // not read the status) does not say the token is wrong.
      if (err instanceof ApiError && err.status === 401) {
        tokenMessage(describeError(err), 'error');
        return;
      }
    }
    setToken(value);
    input.value = '';
    tokenMessage('', 'ok');
    panel.open = false;
    refreshTokenUi();
    flash('Token in use: actions are unlocked for what its role allows.', 'ok');
    await renderView({ soft: true });
  });
  $('#token-clear').addEventListener('click', async () => {
    setToken('');
    input.value = '';
    tokenMessage('', 'ok');
    panel.open = false;
    refreshTokenUi();
    flash('Token forgotten: the dashboard is read-only.', 'ok');
    await renderView({ soft: true });
  });
  panel.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && panel.open) {
      panel.open = false;
      panel.querySelector('summary').focus();
    }
  });
  panel.addEventListener('toggle', () => {
    if (panel.open) input.focus();
  });
}

// ---- start ------------------------------------------------------------------------------------------

function start() {
  const main = $('#main');
  main.addEventListener('input', (e) => {
    const form = e.target.closest('form');
    if (form && !form.hasAttribute('data-live')) form.setAttribute('data-dirty', '');
  });
  $('#skip-link').addEventListener('click', () => main.focus());
  $('#stale-reload').addEventListener('click', () => {
    for (const f of main.querySelectorAll('form[data-dirty]')) f.removeAttribute('data-dirty');
    renderView({ soft: true });
  });
  window.addEventListener('hashchange', () => {
    const soft = app.softNavigation;
    app.softNavigation = false;
    app.navigated = true;
    if (!soft) clearFlash();
    renderView({ soft });
  });
  bindToken();
  refreshTokenUi();
  poll();
  renderView();
}

start();
