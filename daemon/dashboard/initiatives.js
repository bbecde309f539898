// #/initiatives and #/initiatives/{id} — campaigns: progress overall and per team as bars, the
// deadline and state, and the entities that do not meet the targets yet with their owning teams.

import { get } from './api.js';
import { h, section, table, entityLink, teamLink, badge, tid, enc, absDate, relTime, pct } from './dom.js';
import { progressBars } from './charts.js';

function stateBadge(state, testid) {
  const word = String(state ?? 'unknown');
  const tone = /done|met|complete/.test(word) ? 'pass' : /overdue|missed|failed/.test(word) ? 'fail' : /risk|behind/.test(word) ? 'warn' : 'exempt';
  return h('span', { class: ['badge', `st-${tone}`], testid, 'data-state': word }, word.replace(/_/g, ' '));
}

function deadlineText(deadline) {
  if (!deadline) return 'no deadline';
  return `${absDate(deadline)} (${relTime(deadline)})`;
}

/** A count with the items on hover and for screen readers; the API gives lists (or counts). */
function refList(items, describe) {
  if (typeof items === 'number') return h('span', { class: 'num' }, String(items));
  const list = items ?? [];
  if (!list.length) return h('span', { class: 'num muted' }, '0');
  const text = list.map(describe);
  return h('span', { class: 'num', title: text.join('\n') }, String(list.length), h('span', { class: 'sr-only' }, `: ${text.join('; ')}`));
}

async function detailed(list) {
  return Promise.all(list.map((i) => (i.overall ? Promise.resolve(i) : get(`initiatives/${enc(i.identifier)}`).catch(() => i))));
}

export async function renderList() {
  const initiatives = await detailed(await get('initiatives'));
  const cards = initiatives.map((i) =>
    h(
      'article',
      { class: 'card', testid: `initiative-card-${tid(i.identifier)}` },
      h('div', { class: 'card-head' }, h('h2', {}, h('a', { href: `#/initiatives/${enc(i.identifier)}`, testid: `initiative-link-${tid(i.identifier)}` }, i.title ?? i.identifier)), stateBadge(i.state)),
      i.description ? h('p', { class: 'muted' }, i.description) : null,
      h('p', { class: 'meta' }, `Owner ${i.owner ?? '—'} · deadline ${deadlineText(i.deadline)}`),
      i.overall
        ? progressBars({
            id: `initiative-${i.identifier}-overall`,
            title: `${i.title}: overall progress`,
            rows: [{ key: 'overall', label: 'Overall', percent: i.overall.percent, text: `${i.overall.meeting}/${i.overall.total} (${pct(i.overall.percent)})` }],
          })
        : null,
    ),
  );
  return h(
    'div',
    { class: 'page' },
    h('h1', { tabindex: -1 }, 'Initiatives'),
    initiatives.length ? h('div', { class: 'grid-cards' }, cards) : h('p', { class: 'muted', testid: 'initiatives-empty' }, 'No initiative is defined.'),
  );
}

export async function render(ctx) {
  const id = ctx.params[0];
  const i = await get(`initiatives/${enc(id)}`);
  const teams = [...(i.teams ?? [])].sort((a, b) => a.percent - b.percent || String(a.team).localeCompare(String(b.team)));
  const nonCompliant = i.non_compliant ?? [];
  const overall = i.overall ?? { meeting: 0, total: 0, percent: 0 };

  const rows = nonCompliant.map((n) => ({
    attrs: { testid: `noncompliant-${tid(n.entity)}`, 'data-entity': n.entity },
    cells: [
      entityLink(n.entity, n.title ?? n.entity),
      teamLink(n.team),
      h(
        'ul',
        { class: 'plain failing' },
        (n.failing ?? []).map((f) => h('li', {}, badge(f.status), ` ${f.scorecard} / `, h('strong', {}, f.rule), f.message ? h('span', { class: 'sub' }, f.message) : null)),
      ),
      refList(n.open_exemptions, (x) => `${x.scorecard}${x.rule ? ` / ${x.rule}` : ''} (${x.status}, until ${absDate(x.until)})`),
      refList(n.open_tasks, (t) => `${t.rule} (${t.status}, due ${absDate(t.due)})`),
    ],
  }));

  return h(
    'div',
    { class: 'page' },
    h('p', { class: 'crumbs' }, h('a', { href: '#/initiatives' }, 'All initiatives')),
    h('h1', { tabindex: -1, testid: 'initiative-title' }, i.title ?? i.identifier),
    i.description ? h('p', { class: 'lead' }, i.description) : null,
    h(
      'div',
      { class: 'counters' },
      h('div', { class: 'counter' }, h('span', { class: 'counter-value', testid: 'initiative-overall', 'data-percent': Math.round(overall.percent) }, pct(overall.percent)), h('span', { class: 'counter-label' }, `${overall.meeting} of ${overall.total} entities meet the targets`)),
      h('div', { class: 'counter' }, h('span', { class: 'counter-value small' }, stateBadge(i.state, 'initiative-state')), h('span', { class: 'counter-label' }, 'state')),
      h('div', { class: 'counter' }, h('span', { class: 'counter-value small', testid: 'initiative-deadline' }, i.deadline ? absDate(i.deadline) : '—'), h('span', { class: 'counter-label' }, i.deadline ? `deadline, ${relTime(i.deadline)}` : 'no deadline')),
      h('div', { class: 'counter' }, h('span', { class: 'counter-value small' }, i.owner ?? '—'), h('span', { class: 'counter-label' }, 'owner')),
    ),
    section(
      'Progress per team',
      { testid: 'initiative-teams' },
      teams.length
        ? progressBars({
            id: 'initiative',
            title: `${i.title}: progress per team`,
            rows: teams.map((t) => ({
              key: t.team ?? 'none',
              label: t.team ?? 'no team',
              percent: t.percent,
              text: `${t.meeting}/${t.total} (${pct(t.percent)})`,
              href: t.team ? `#/teams/${enc(t.team)}` : null,
            })),
          })
        : h('p', { class: 'muted' }, 'No entity is targeted.'),
    ),
    section(
      `Not meeting the targets yet (${nonCompliant.length})`,
      { testid: 'initiative-noncompliant', class: 'card flush' },
      table([{ label: 'Entity' }, { label: 'Owner' }, { label: 'Failing' }, { label: 'Exemptions', className: 'num' }, { label: 'Tasks', className: 'num' }], rows, {
        empty: 'Every targeted entity meets the targets.',
        caption: 'Entities not meeting the targets',
      }),
    ),
  );
}
