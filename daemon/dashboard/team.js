// #/teams and #/teams/{team} — a team's entities and their levels, its open tasks, and how far it
// is on each initiative (linking on to the initiative page).

import { get, withQuery } from './api.js';
import { h, section, table, entityLink, levelPill, badge, tid, enc, tierLabel, absDate, initiativeLink, relTime } from './dom.js';
import { progressBars } from './charts.js';
import { taskTable } from './lists.js';

export async function renderList() {
  const [entities, tasks] = await Promise.all([get('entities'), get('tasks')]);
  const teams = new Map();
  for (const e of entities) {
    const key = e.team ?? '';
    if (!teams.has(key)) teams.set(key, { team: e.team, entities: 0, tier1: 0, degraded: 0, tasks: 0 });
    const t = teams.get(key);
    t.entities += 1;
    if (e.tier === 1) t.tier1 += 1;
    if (e.degraded) t.degraded += 1;
  }
  for (const task of tasks) {
    if (task.status !== 'done' && teams.has(task.team ?? '')) teams.get(task.team ?? '').tasks += 1;
  }
  const rows = [...teams.values()]
    .sort((a, b) => String(a.team ?? '~').localeCompare(String(b.team ?? '~')))
    .map((t) => ({
      attrs: { testid: `team-row-${tid(t.team ?? 'none')}` },
      cells: [
        t.team ? h('a', { href: `#/teams/${enc(t.team)}` }, t.team) : h('a', { href: '#/entities?team=none' }, 'No team'),
        h('span', { class: 'num' }, String(t.entities)),
        h('span', { class: 'num' }, String(t.tier1)),
        t.degraded ? badge('fail', null, String(t.degraded)) : h('span', { class: 'num' }, '0'),
        h('span', { class: 'num' }, String(t.tasks)),
      ],
    }));
  return h(
    'div',
    { class: 'page' },
    h('h1', { tabindex: -1 }, 'Teams'),
    section(
      'Teams',
      { class: 'card flush' },
      table(
        [{ label: 'Team' }, { label: 'Entities', className: 'num' }, { label: 'Tier 1', className: 'num' }, { label: 'Degraded', className: 'num' }, { label: 'Open tasks', className: 'num' }],
        rows,
        { testid: 'teams-table', empty: 'The catalog is empty.' },
      ),
    ),
  );
}

export async function render(ctx) {
  const team = ctx.params[0];
  const [entities, scores, tasks, scorecards, initiatives] = await Promise.all([
    get(withQuery('entities', { team })),
    get(withQuery('scores', { team })),
    get(withQuery('tasks', { team })),
    get('scorecards'),
    get('initiatives'),
  ]);
  const details = await Promise.all(
    initiatives.map((i) => (Array.isArray(i.teams) ? Promise.resolve(i) : get(`initiatives/${enc(i.identifier)}`).catch(() => i))),
  );
  const byEntity = new Map();
  for (const r of scores) {
    if (!byEntity.has(r.entity)) byEntity.set(r.entity, new Map());
    byEntity.get(r.entity).set(r.scorecard, r);
  }
  entities.sort((a, b) => (a.tier ?? 9) - (b.tier ?? 9) || a.identifier.localeCompare(b.identifier));
  const open = tasks.filter((t) => t.status !== 'done');
  const overdue = open.filter((t) => t.status === 'overdue').length;
  const degraded = entities.filter((e) => e.degraded).length;

  const entityTable = table(
    [{ label: 'Entity' }, { label: 'Tier' }, { label: 'Kind' }, ...scorecards.map((c) => ({ label: c.title })), { label: 'State' }],
    entities.map((e) => ({
      attrs: { testid: `team-entity-${tid(e.identifier)}` },
      cells: [
        entityLink(e.identifier, e.title),
        tierLabel(e.tier),
        e.kind,
        ...scorecards.map((c) => {
          const r = byEntity.get(e.identifier)?.get(c.identifier);
          return r ? levelPill(r.level, r.level_index, c.levels.length, `team-level-${tid(e.identifier)}-${tid(c.identifier)}`) : h('span', { class: 'muted' }, '—');
        }),
        h('span', {}, e.degraded ? badge('fail', null, 'degraded') : badge('pass', null, 'ok'), e.lock ? badge('warn', null, 'locked') : null),
      ],
    })),
    { testid: 'team-entities', empty: `No entity belongs to ${team}.`, caption: `Entities of ${team}` },
  );

  const rows = details
    .map((d) => {
      const mine = (d.teams ?? []).find((t) => t.team === team);
      if (!mine) return null;
      return {
        key: d.identifier,
        label: d.title ?? d.identifier,
        percent: mine.percent,
        text: `${mine.meeting}/${mine.total} (${Math.round(mine.percent)}%)`,
        href: `#/initiatives/${enc(d.identifier)}`,
        deadline: d.deadline,
      };
    })
    .filter(Boolean);
  const initiativeBlock = rows.length
    ? [
        progressBars({ id: 'team-initiatives', title: `${team}: progress on initiatives`, rows }),
        h(
          'ul',
          { class: 'plain', testid: 'team-initiative-links' },
          rows.map((r) => h('li', {}, initiativeLink(r.key, r.label, `team-initiative-${tid(r.key)}`), r.deadline ? h('span', { class: 'muted' }, ` — deadline ${absDate(r.deadline)} (${relTime(r.deadline)})`) : null)),
        ),
      ]
    : h(
        'p',
        { class: 'muted' },
        'No initiative targets this team’s entities. ',
        initiatives.length ? h('a', { href: '#/initiatives' }, 'See all initiatives') : null,
      );

  return h(
    'div',
    { class: 'page' },
    h('p', { class: 'crumbs' }, h('a', { href: '#/teams' }, 'All teams')),
    h('h1', { tabindex: -1, testid: 'team-title' }, `Team ${team}`),
    h(
      'p',
      { class: 'lead', testid: 'team-summary' },
      `${entities.length} entities, ${degraded} degraded, ${open.length} open tasks${overdue ? ` (${overdue} overdue)` : ''}.`,
    ),
    section('Entities', { class: 'card flush', testid: 'team-entities-section' }, entityTable),
    section('Open tasks', { testid: 'team-tasks' }, taskTable(open, { showEntity: true })),
    section('Initiatives', { testid: 'team-initiatives' }, initiativeBlock),
  );
}

export async function watch(ctx) {
  const scores = await get(withQuery('scores', { team: ctx.params[0] }));
  return JSON.stringify(scores.map((r) => [r.entity, r.scorecard, r.level_index]));
}
