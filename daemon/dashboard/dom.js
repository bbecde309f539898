// DOM building blocks shared by every view: element builders (text is always set as text, never
// parsed as HTML, so API data cannot inject markup), time and number formatting, and the small
// components the pages repeat (badges, tables, sections, error panels).

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(parent, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child) append(parent, c);
  } else if (child instanceof Node) {
    parent.appendChild(child);
  } else {
    parent.appendChild(document.createTextNode(String(child)));
  }
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'testid') {
      el.setAttribute('data-testid', value);
    } else if (key === 'class' && Array.isArray(value)) {
      el.setAttribute('class', value.filter(Boolean).join(' '));
    } else if (key === 'value' && 'value' in el && !(el instanceof SVGElement)) {
      el.value = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

/** An HTML element: h('a', {href: '#/'}, 'text', child, [more]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element, same calling convention as `h`. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** Several nodes without a wrapper. */
export function frag(...children) {
  const f = document.createDocumentFragment();
  append(f, children);
  return f;
}

/** A test id safe for CSS attribute selectors: identifiers are `[a-z0-9._-]`, keep them as they are. */
export function tid(...parts) {
  return parts.map((p) => String(p).replace(/[^A-Za-z0-9._-]/g, '_')).join('-');
}

// ---- links ------------------------------------------------------------------------------------

export function enc(part) {
  return encodeURIComponent(part);
}

export function entityLink(id, label, testid) {
  return h('a', { href: `#/entities/${enc(id)}`, testid }, label ?? id);
}

export function teamLink(team, testid) {
  if (!team) return h('span', { class: 'muted' }, 'no team');
  return h('a', { href: `#/teams/${enc(team)}`, testid }, team);
}

export function initiativeLink(id, label, testid) {
  return h('a', { href: `#/initiatives/${enc(id)}`, testid }, label ?? id);
}

/** `#/path?k=v` from a path and an object of query values (empty values dropped). */
export function hashUrl(path, query) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') params.set(k, v);
  }
  const qs = params.toString();
  return `#${path}${qs ? `?${qs}` : ''}`;
}

// ---- time -------------------------------------------------------------------------------------

// The daemon's clock, as last seen in /v1/status; ages are computed against it so that a browser
// with a skewed clock still shows the right "3 min ago".
let clockSkewMs = 0;

export function setServerNow(iso) {
  const t = Date.parse(iso);
  if (!Number.isNaN(t)) clockSkewMs = t - Date.now();
}

export function serverNow() {
  return Date.now() + clockSkewMs;
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const UNITS = [
  ['year', 365 * 24 * 3600e3],
  ['month', 30 * 24 * 3600e3],
  ['week', 7 * 24 * 3600e3],
  ['day', 24 * 3600e3],
  ['hour', 3600e3],
  ['minute', 60e3],
  ['second', 1e3],
];

/** "3 hours ago", "in 12 days". */
export function relTime(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '—';
  const diff = t - serverNow();
  for (const [unit, ms] of UNITS) {
    if (Math.abs(diff) >= ms || unit === 'second') {
      return rtf.format(Math.round(diff / ms), unit);
    }
  }
  return '—';
}

/** "3 h 12 min", a duration since `iso` until now. */
export function since(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '—';
  let ms = Math.max(0, serverNow() - t);
  const d = Math.floor(ms / 86400e3);
  ms -= d * 86400e3;
  const hrs = Math.floor(ms / 3600e3);
  ms -= hrs * 3600e3;
  const min = Math.floor(ms / 60e3);
  if (d > 0) return `${d} d ${hrs} h`;
  if (hrs > 0) return `${hrs} h ${min} min`;
  return `${min} min`;
}

const dtf = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const df = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

export function absTime(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? '—' : dtf.format(t);
}

export function absDate(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? String(iso ?? '—') : df.format(t);
}

/** A <time> showing a relative time, the exact time on hover. */
export function timeEl(iso, testid) {
  if (!iso) return h('span', { class: 'muted', testid }, '—');
  return h('time', { datetime: iso, title: absTime(iso), testid }, relTime(iso));
}

export function pct(value) {
  if (typeof value !== 'number' || Number.isNaN(value)) return '—';
  return `${Math.round(value)}%`;
}

// ---- components -------------------------------------------------------------------------------

const STATUS_LABEL = {
  pass: 'pass',
  fail: 'fail',
  warn: 'warn',
  error: 'error',
  not_applicable: 'n/a',
  exempt: 'exempt',
  pending: 'pending',
  approved: 'approved',
  denied: 'denied',
  revoked: 'revoked',
  expired: 'expired',
  open: 'open',
  overdue: 'overdue',
  done: 'done',
};

/** A coloured status pill; `status` is an API status word. */
export function badge(status, testid, text) {
  const word = String(status ?? 'unknown');
  return h(
    'span',
    { class: ['badge', `st-${word.replace(/[^a-z_]/g, '')}`], testid, 'data-status': word },
    text ?? STATUS_LABEL[word] ?? word,
  );
}

/** Whether a rule status counts as passed for levels (DESIGN.md section 3). */
export function countsAsPassed(status) {
  return status === 'pass' || status === 'warn' || status === 'exempt';
}

/** A CSS class grading level `index` of `count` levels from lowest (0) to top (4). */
export function levelClass(index, count) {
  if (count <= 1) return 'lvl-4';
  return `lvl-${Math.round((index / (count - 1)) * 4)}`;
}

export function levelPill(level, index, count, testid) {
  return h(
    'span',
    { class: ['level', levelClass(index, count)], testid, 'data-level-index': index },
    level,
  );
}

/** A titled section; `actions` are nodes placed next to the heading. */
export function section(title, attrs, ...children) {
  const { actions, level = 'h2', ...rest } = attrs || {};
  return h(
    'section',
    { class: 'card', ...rest },
    h('div', { class: 'card-head' }, h(level, {}, title), actions ? h('div', { class: 'card-actions' }, actions) : null),
    children,
  );
}

/**
 * A table inside a horizontally scrolling wrapper (narrow screens).
 * `columns`: [{label, className?}], `rows`: arrays of cells, or {cells, attrs}.
 */
export function table(columns, rows, attrs) {
  const { empty = 'Nothing to show.', caption, ...rest } = attrs || {};
  if (!rows.length) return h('p', { class: 'muted empty', testid: rest.testid ? `${rest.testid}-empty` : null }, empty);
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      rest,
      caption ? h('caption', { class: 'sr-only' }, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.className }, c.label)))),
      h(
        'tbody',
        {},
        rows.map((row) => {
          const { cells, attrs: rowAttrs } = Array.isArray(row) ? { cells: row, attrs: {} } : row;
          return h('tr', rowAttrs, cells.map((cell, i) => h('td', { class: columns[i]?.className, 'data-label': columns[i]?.label }, cell)));
        }),
      ),
    ),
  );
}

/** A key/value list. */
export function dl(pairs, attrs) {
  return h(
    'dl',
    { class: 'kv', ...attrs },
    pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]),
  );
}

/** A panel explaining why data could not be shown; the message is the server's. */
export function errorPanel(err, context) {
  const status = err && typeof err.status === 'number' ? err.status : 0;
  let title = 'Something went wrong';
  let hint = '';
  if (status === 0) {
    title = 'The daemon cannot be reached';
    hint = 'The page keeps retrying in the background.';
  } else if (status === 401) {
    title = 'A token is needed';
    hint = 'Enter an API token with the “Token” button at the top of the page.';
  } else if (status === 403) {
    title = 'Not allowed';
    hint = 'Your token’s role does not allow this.';
  } else if (status === 404) {
    title = 'Not found';
  } else if (status === 503) {
    title = 'The daemon is not ready yet';
    hint = 'It is starting or reloading; this page refreshes itself when it is ready.';
  }
  return h(
    'div',
    { class: 'error-panel', role: 'alert', testid: 'view-error', 'data-status': status },
    h('h2', {}, title),
    context ? h('p', {}, context) : null,
    h('p', { class: 'error-message', testid: 'view-error-message' }, err?.message || String(err)),
    hint ? h('p', { class: 'muted' }, hint) : null,
  );
}

/** A short inline message area for a form: role=alert so screen readers hear failures. */
export function formMessage(testid) {
  return h('p', { class: 'form-message', role: 'alert', 'aria-live': 'assertive', testid, hidden: true });
}

export function showFormMessage(el, text, kind) {
  el.textContent = text;
  el.className = `form-message ${kind === 'error' ? 'is-error' : 'is-ok'}`;
  el.hidden = !text;
}

/** A labelled form field; returns [wrapper, control]. */
export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  const hintEl = hint ? h('span', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return [h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl), control];
}

/** Flatten a JSON object to dotted keys (for the facts tables). */
export function flatten(obj, prefix = '', out = [], depth = 0) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v) && depth < 3 && Object.keys(v).length) {
      flatten(v, key, out, depth + 1);
    } else {
      out.push([key, v]);
    }
  }
  return out;
}

export function jsonText(v, max = 240) {
  const text = typeof v === 'string' ? v : JSON.stringify(v);
  return text && text.length > max ? `${text.slice(0, max - 1)}…` : text ?? 'null';
}

export function tierLabel(tier) {
  return tier === null || tier === undefined ? 'untiered' : `Tier ${tier}`;
}

/** Group `items` by `key(item)` into a Map, keeping order. */
export function groupBy(items, key) {
  const map = new Map();
  for (const item of items) {
    const k = key(item);
    if (!map.has(k)) map.set(k, []);
    map.get(k).push(item);
  }
  return map;
}
