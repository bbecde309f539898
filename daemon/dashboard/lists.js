// The list pages (#/entities, #/tasks) and the filter form the overview shares with them.
// Filters live in the URL's query (#/entities?tier=1&team=payments) so that a filtered view can
// be shared as a link.

import { get, withQuery } from './api.js';
import {
  h, table, section, entityLink, teamLink, levelPill, badge, timeEl, hashUrl, tierLabel, tid, countsAsPassed,
} from './dom.js';

/** Whether `entity` passes the tier / team / kind filters of `query` ("none" = not set). */
export function matchesFilter(entity, query) {
  if (query.tier) {
    const want = query.tier === 'none' ? null : Number(query.tier);
    if ((entity.tier ?? null) !== want) return false;
  }
  if (query.team) {
    const want = query.team === 'none' ? null : query.team;
    if ((entity.team ?? null) !== want) return false;
  }
  if (query.kind && entity.kind !== query.kind) return false;
  return true;
}

/** The part of the filters /v1/scores applies itself (kind and "none" stay client-side). */
export function scoreQuery(query) {
  return {
    team: query.team && query.team !== 'none' ? query.team : '',
    tier: /^[0-9]+$/.test(query.tier ?? '') ? query.tier : '',
  };
}

export function hasFilter(query) {
  return Boolean(query.tier || query.team || query.kind);
}

function uniqueSorted(values) {
  return [...new Set(values.filter((v) => v !== null && v !== undefined))].sort((a, b) => String(a).localeCompare(String(b)));
}

function select(name, label, options, current, testid) {
  const id = `filter-${name}`;
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id }, label),
    h(
      'select',
      { id, name, testid },
      options.map(([value, text]) => h('option', { value, selected: String(current ?? '') === String(value) }, text)),
    ),
  );
}

/**
 * The tier / team / kind filter form. Changing a value navigates to `path` with the new query,
 * which keeps the URL shareable; `keep` lists other query keys to carry along.
 */
export function filterForm(ctx, entities, path, keep = [], extra = []) {
  const q = ctx.query;
  const teams = uniqueSorted(entities.map((e) => e.team));
  const kinds = uniqueSorted(entities.map((e) => e.kind));
  const tiers = uniqueSorted(entities.map((e) => e.tier));
  const form = h(
    'form',
    { class: 'filters', 'data-live': '', testid: 'filters', role: 'search', 'aria-label': 'Filter entities' },
    select('tier', 'Tier', [['', 'All tiers'], ...tiers.map((t) => [String(t), tierLabel(t)]), ['none', 'Untiered']], q.tier, 'filter-tier'),
    select('team', 'Team', [['', 'All teams'], ...teams.map((t) => [t, t]), ['none', 'No team']], q.team, 'filter-team'),
    select('kind', 'Kind', [['', 'All kinds'], ...kinds.map((k) => [k, k])], q.kind, 'filter-kind'),
    extra,
    hasFilter(q) ? h('a', { class: 'clear-filters', href: hashUrl(path, Object.fromEntries(keep.map((k) => [k, q[k]]))), testid: 'filters-clear' }, 'Clear filters') : null,
  );
  const apply = () => {
    const data = new FormData(form);
    const next = {};
    for (const k of keep) next[k] = q[k];
    for (const [k, v] of data.entries()) next[k] = v;
    ctx.navigate(hashUrl(path, next));
  };
  form.addEventListener('change', apply);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    apply();
  });
  return form;
}

/** #/entities: every entity with its level per scorecard. */
export async function renderEntities(ctx) {
  const q = ctx.query;
  const [entities, scorecards, scores] = await Promise.all([get('entities'), get('scorecards'), get(withQuery('scores', scoreQuery(q)))]);
  const byEntity = new Map();
  for (const r of scores) {
    if (!byEntity.has(r.entity)) byEntity.set(r.entity, new Map());
    byEntity.get(r.entity).set(r.scorecard, r);
  }
  let rows = entities.filter((e) => matchesFilter(e, q));
  if (q.degraded) rows = rows.filter((e) => e.degraded);
  let heading = 'Entities';
  if (q.scorecard && q.level) {
    rows = rows.filter((e) => byEntity.get(e.identifier)?.get(q.scorecard)?.level === q.level);
    const card = scorecards.find((c) => c.identifier === q.scorecard);
    heading = `Entities at ${q.level} on ${card ? card.title : q.scorecard}`;
  }
  rows.sort((a, b) => (a.tier ?? 9) - (b.tier ?? 9) || a.identifier.localeCompare(b.identifier));

  const degradedBox = h(
    'div',
    { class: 'field checkbox' },
    h('input', { type: 'checkbox', id: 'filter-degraded', name: 'degraded', value: '1', checked: Boolean(q.degraded), testid: 'filter-degraded' }),
    h('label', { for: 'filter-degraded' }, 'Degraded only'),
  );
  const columns = [
    { label: 'Entity' },
    { label: 'Team' },
    { label: 'Tier' },
    { label: 'Kind' },
    ...scorecards.map((c) => ({ label: c.title })),
    { label: 'State' },
  ];
  const body = table(
    columns,
    rows.map((e) => ({
      attrs: { testid: `entity-row-${tid(e.identifier)}`, 'data-entity': e.identifier },
      cells: [
        entityLink(e.identifier, e.title),
        teamLink(e.team),
        tierLabel(e.tier),
        e.kind,
        ...scorecards.map((c) => {
          const r = byEntity.get(e.identifier)?.get(c.identifier);
          return r ? levelPill(r.level, r.level_index, c.levels.length) : h('span', { class: 'muted' }, '—');
        }),
        h(
          'span',
          { class: 'state-cell' },
          e.degraded ? badge('fail', null, 'degraded') : badge('pass', null, 'ok'),
          e.lock ? badge('warn', null, 'locked') : null,
        ),
      ],
    })),
    { testid: 'entities-table', caption: heading, empty: 'No entity matches these filters.' },
  );
  return h(
    'div',
    { class: 'page' },
    h('h1', { tabindex: -1 }, heading),
    h('p', { class: 'lead' }, `${rows.length} of ${entities.length} entities.`),
    filterForm(ctx, entities, '/entities', ['scorecard', 'level'], [degradedBox]),
    section('List', { level: 'h2', class: 'card flush' }, body),
  );
}

/** #/tasks: work items from failing required rules. */
export async function renderTasks(ctx) {
  const q = ctx.query;
  const status = q.status || '';
  const [tasks, entities] = await Promise.all([get(withQuery('tasks', { team: q.team, status: status === 'all' || status === 'active' ? '' : status })), get('entities')]);
  let shown = tasks;
  if (!status || status === 'active') shown = tasks.filter((t) => t.status !== 'done');
  const teams = uniqueSorted(entities.map((e) => e.team));
  const form = h(
    'form',
    { class: 'filters', 'data-live': '', testid: 'task-filters', 'aria-label': 'Filter tasks' },
    select('status', 'Status', [['', 'Open and overdue'], ['open', 'Open'], ['overdue', 'Overdue'], ['done', 'Done'], ['all', 'All']], status, 'filter-task-status'),
    select('team', 'Team', [['', 'All teams'], ...teams.map((t) => [t, t])], q.team, 'filter-task-team'),
  );
  form.addEventListener('change', () => ctx.navigate(hashUrl('/tasks', Object.fromEntries(new FormData(form).entries()))));
  form.addEventListener('submit', (e) => e.preventDefault());
  return h(
    'div',
    { class: 'page' },
    h('h1', { tabindex: -1 }, 'Tasks'),
    h('p', { class: 'lead' }, 'A task opens when a rule that an entity’s tier requires starts failing, and closes when it passes again or is exempted.'),
    form,
    section('Tasks', { class: 'card flush' }, taskTable(shown, { showTeam: true })),
  );
}

/** A table of tasks; shared by the entity, team and task pages. */
export function taskTable(tasks, { showTeam = false, showEntity = true } = {}) {
  const columns = [
    showEntity ? { label: 'Entity' } : null,
    showTeam ? { label: 'Team' } : null,
    { label: 'Rule' },
    { label: 'What to do' },
    { label: 'Due' },
    { label: 'Status' },
  ].filter(Boolean);
  return table(
    columns,
    tasks.map((t) => ({
      attrs: { testid: `task-row-${tid(t.id)}`, 'data-status': t.status },
      cells: [
        showEntity ? entityLink(t.entity) : null,
        showTeam ? teamLink(t.team) : null,
        h('span', {}, h('span', { class: 'muted' }, `${t.scorecard} / `), t.rule),
        h('span', {}, t.title, t.message ? h('span', { class: 'sub' }, t.message) : null),
        timeEl(t.due),
        badge(t.status),
      ].filter((c) => c !== null),
    })),
    { testid: 'tasks-table', empty: 'No tasks.' },
  );
}

/** Rule pass rates computed from ScorecardResults (for filtered views). */
export function rulePassRates(card, results) {
  return card.rules.map((rule) => {
    let passing = 0;
    let applicable = 0;
    for (const r of results) {
      const rr = r.rules.find((x) => x.rule === rule.identifier);
      if (!rr || rr.status === 'not_applicable') continue;
      applicable += 1;
      if (countsAsPassed(rr.status)) passing += 1;
    }
    return { ...rule, passing, applicable };
  });
}
