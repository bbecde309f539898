// #/ — the overview for leadership: per scorecard, how entities spread over its levels (a bar
// chart), with tier / team / kind filters, and the organisation-wide counts that need attention.
// Unfiltered charts use the daemon's own distribution (/v1/scorecards); filtered ones are counted
// here from /v1/scores and /v1/entities.

import { get, withQuery } from './api.js';
import { h, section, table, hashUrl, pct, tid, badge } from './dom.js';
import { barChart } from './charts.js';
import { filterForm, hasFilter, matchesFilter, rulePassRates, scoreQuery } from './lists.js';

function counter(label, value, href, testid, tone) {
  return h(
    'a',
    { class: ['counter', tone && value > 0 ? `tone-${tone}` : null], href, testid: `${testid}-link` },
    h('span', { class: 'counter-value', testid }, String(value ?? '—')),
    h('span', { class: 'counter-label' }, label),
  );
}

export async function render(ctx) {
  const q = ctx.query;
  const filtered = hasFilter(q);
  const [status, scorecards, entities, scores] = await Promise.all([
    get('status'),
    get('scorecards'),
    get('entities'),
    filtered ? get(withQuery('scores', scoreQuery(q))) : Promise.resolve(null),
  ]);

  const counters = h(
    'div',
    { class: 'counters', testid: 'counters' },
    counter('degraded services', status.degraded, '#/entities?degraded=1', 'count-degraded', 'bad'),
    counter('open tasks', status.open_tasks, '#/tasks', 'count-open-tasks', 'warn'),
    counter('pending exemptions', status.pending_exemptions, '#/approvals', 'count-pending-exemptions', 'warn'),
    counter('pending tier requests', status.pending_tier_requests, '#/approvals', 'count-pending-tier-requests', 'warn'),
    counter('entities', status.entities, '#/entities', 'count-entities'),
  );

  const keep = new Set(entities.filter((e) => matchesFilter(e, q)).map((e) => e.identifier));
  const cards = scorecards.map((card) => {
    let counts;
    let rules;
    let total;
    if (filtered) {
      const results = scores.filter((r) => r.scorecard === card.identifier && keep.has(r.entity));
      counts = card.levels.map(() => 0);
      for (const r of results) if (r.level_index < counts.length) counts[r.level_index] += 1;
      rules = rulePassRates(card, results);
      total = results.length;
    } else {
      counts = card.levels.map((level) => card.distribution.find((d) => d.level === level)?.count ?? 0);
      rules = card.rules;
      total = card.entities;
    }
    const chart = barChart({
      id: card.identifier,
      title: card.title,
      levels: card.levels,
      counts,
      hrefFor: (i) => hashUrl('/entities', { scorecard: card.identifier, level: card.levels[i], tier: q.tier, team: q.team, kind: q.kind }),
    });
    const ruleRows = rules.map((r) => ({
      attrs: { testid: `rule-rate-${tid(card.identifier)}-${tid(r.identifier)}` },
      cells: [
        h('span', {}, r.title, h('span', { class: 'sub' }, r.identifier)),
        r.level,
        r.kind ?? '',
        h('span', { class: 'num' }, `${r.passing} / ${r.applicable}`),
        r.applicable ? h('span', { class: 'num' }, pct((100 * r.passing) / r.applicable)) : h('span', { class: 'muted' }, 'n/a'),
      ],
    }));
    return section(
      card.title,
      { testid: `scorecard-${tid(card.identifier)}`, class: 'card scorecard-card', actions: h('span', { class: 'muted', testid: `scorecard-total-${tid(card.identifier)}` }, `${total} entities`) },
      card.description ? h('p', { class: 'muted' }, card.description) : null,
      chart,
      h(
        'details',
        { class: 'rule-rates', testid: `rule-rates-${tid(card.identifier)}` },
        h('summary', {}, `Rule pass rates (${rules.length} rules)`),
        table(
          [{ label: 'Rule' }, { label: 'Level' }, { label: 'Kind' }, { label: 'Passing', className: 'num' }, { label: 'Rate', className: 'num' }],
          ruleRows,
          { caption: `${card.title} rule pass rates` },
        ),
      ),
    );
  });

  const readiness = status.ready === false ? h('p', { class: 'notice', testid: 'not-ready' }, badge('warn', null, 'starting'), ' The daemon is still evaluating; numbers may change.') : null;

  return h(
    'div',
    { class: 'page' },
    h('h1', { tabindex: -1 }, 'Readiness overview'),
    readiness,
    counters,
    filterForm(ctx, entities, '/'),
    filtered ? h('p', { class: 'muted', testid: 'filter-summary' }, `Showing ${keep.size} of ${entities.length} entities.`) : null,
    scorecards.length ? h('div', { class: 'grid-2' }, cards) : h('p', { class: 'muted' }, 'No scorecard is defined yet.'),
  );
}

/** What the live updates compare: the distributions. */
export async function watch() {
  const cards = await get('scorecards');
  return JSON.stringify(cards.map((c) => [c.identifier, c.distribution, c.rules.map((r) => r.passing)]));
}
