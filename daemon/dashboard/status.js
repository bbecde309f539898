// #/status — the daemon's own health: every plugin with its state, version and last error; the
// standards and catalog revisions and their last load errors. Re-rendered on every status poll.

import { get } from './api.js';
import { h, section, table, badge, timeEl, dl, tid, jsonText } from './dom.js';

/** A plugin's state word: the API sends `{state: "active" | "failed" | "parked", ...}`. */
export function pluginState(p) {
  return p.state && typeof p.state === 'object' ? String(p.state.state ?? 'unknown') : String(p.state ?? 'unknown');
}

/** What the state object adds: why it failed, or since when it is parked. */
function stateDetail(p) {
  const st = p.state && typeof p.state === 'object' ? p.state : {};
  if (st.state === 'parked') return h('span', { class: 'sub' }, `after ${st.failures ?? '?'} failures, `, timeEl(st.since));
  if (st.state === 'failed') return h('span', { class: 'sub' }, st.reason ?? '', st.at ? [' — ', timeEl(st.at)] : null);
  return null;
}

function pluginTone(state) {
  const s = String(state ?? '').toLowerCase();
  if (/^(ok|ready|loaded|active|healthy|running)$/.test(s)) return 'pass';
  if (/park|fail|error|broken|dead/.test(s)) return 'fail';
  return 'warn';
}

function errorList(errors, testid) {
  if (!errors || (Array.isArray(errors) && !errors.length) || (typeof errors === 'object' && !Object.keys(errors).length)) return null;
  const items = Array.isArray(errors) ? errors : Object.entries(errors).map(([k, v]) => ({ file: k, message: v }));
  return h(
    'ul',
    { class: 'errors', testid },
    items.map((e) => {
      if (typeof e === 'string') return h('li', {}, e);
      const where = [e.file, e.line, e.rule, e.plugin].filter((x) => x !== undefined && x !== null).join(':');
      return h('li', {}, where ? h('span', { class: 'mono' }, `${where} `) : null, e.message ?? jsonText(e));
    }),
  );
}

function revisionBlock(title, part, testid) {
  const p = part ?? {};
  return section(
    title,
    { testid },
    dl([
      ['Revision', h('span', { class: 'mono', testid: `${testid}-revision` }, p.revision === undefined || p.revision === null ? '—' : String(p.revision))],
      ['Loaded', timeEl(p.loaded_at)],
      [
        'Last error',
        p.last_error
          ? h('span', { class: 'bad', testid: `${testid}-last-error` }, p.last_error, p.last_error_at ? [' (', timeEl(p.last_error_at), ')'] : null)
          : h('span', { class: 'good', testid: `${testid}-last-error` }, 'none'),
      ],
    ]),
    errorList(p.errors, `${testid}-errors`),
  );
}

export async function render(ctx) {
  const st = await get('status');
  ctx.setStatus(st);
  const plugins = [...(st.plugins ?? [])].sort((a, b) => String(a.name).localeCompare(String(b.name)));
  const rows = plugins.map((p) => ({
    attrs: { testid: `plugin-row-${tid(p.name)}`, 'data-state': pluginState(p) },
    cells: [
      h('strong', {}, p.name),
      p.kind ?? '—',
      h('span', { class: 'mono', title: p.version ?? '' }, p.version ? String(p.version).slice(0, 12) : '—', p.from_cache ? h('span', { class: 'sub' }, 'from cache') : null),
      timeEl(p.loaded_at),
      h('span', {}, h('span', { class: ['badge', `st-${pluginTone(pluginState(p))}`], testid: `plugin-state-${tid(p.name)}` }, pluginState(p)), stateDetail(p)),
      p.last_error ? h('span', { class: 'bad', testid: `plugin-error-${tid(p.name)}` }, p.last_error) : h('span', { class: 'muted' }, '—'),
      h('span', { class: 'num' }, String(p.calls ?? 0)),
      h('span', { class: 'num' }, String(p.failures ?? 0)),
    ],
  }));
  return h(
    'div',
    { class: 'page' },
    h('h1', { tabindex: -1 }, 'Plugins and status'),
    section(
      'Daemon',
      { testid: 'daemon-section' },
      dl([
        ['Version', h('span', { testid: 'status-version' }, st.version ?? '—')],
        ['Ready', st.ready ? badge('pass', 'status-ready', 'ready') : badge('warn', 'status-ready', 'starting')],
        ['Daemon time', timeEl(st.now)],
        ['Entities', String(st.entities ?? '—')],
        ['Scorecards', String(st.scorecards ?? '—')],
        ['Degraded', String(st.degraded ?? '—')],
        ['Open tasks', String(st.open_tasks ?? '—')],
        ['Pending exemptions', String(st.pending_exemptions ?? '—')],
        ['Pending tier requests', String(st.pending_tier_requests ?? '—')],
        st.store ? ['State file', h('span', { class: 'mono' }, `${st.store.path ?? ''}${st.store.bytes ? ` (${Math.round(st.store.bytes / 1024)} KiB)` : ''}`)] : null,
      ]),
    ),
    section(
      `Plugins (${plugins.length})`,
      { testid: 'plugins-section', class: 'card flush' },
      table(
        [{ label: 'Plugin' }, { label: 'Kind' }, { label: 'Version' }, { label: 'Loaded' }, { label: 'State' }, { label: 'Last error' }, { label: 'Calls', className: 'num' }, { label: 'Failures', className: 'num' }],
        rows,
        { testid: 'plugins-table', empty: 'No plugin is loaded.', caption: 'Plugins' },
      ),
      st.plugin_errors ? h('p', { class: 'bad', testid: 'plugin-load-error' }, `Last plugin load error: ${jsonText(st.plugin_errors)}`) : null,
    ),
    h('div', { class: 'grid-2' }, revisionBlock('Standards', st.standards, 'standards'), revisionBlock('Catalog', st.catalog, 'catalog')),
  );
}
