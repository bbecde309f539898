// #/tier1 — the SRE view: every Tier-1 service, the level its tier requires on each scorecard,
// the level it reaches, the rules that block it, its lock, its open exemptions and how long it
// has been degraded. Required levels come from the deploy gate's reasons (the only place the API
// states them); blocking rules are recomputed from the scores so that messages stay intact.

import { get, withQuery } from './api.js';
import { h, section, entityLink, teamLink, levelPill, badge, since, timeEl, tid, countsAsPassed, enc, absTime } from './dom.js';

const REASON = /^(\S+) is at (.+?), tier (\S+) requires (.+?); blocking:/;

/** {scorecard: required level title} for a tier, from gate answers (and the status if it says). */
export function requiredLevels(gates, status, tier) {
  const required = {};
  const policy = status?.standards?.tiers?.[String(tier)]?.require;
  if (policy && typeof policy === 'object') Object.assign(required, policy);
  for (const gate of gates) {
    for (const reason of gate?.reasons ?? []) {
      const m = REASON.exec(reason);
      if (m && m[3] === String(tier)) required[m[1]] = m[4];
    }
  }
  return required;
}

/** Rules at or below `requiredIndex` that do not count as passed: what stands in the way. */
export function blockingRules(result, card, requiredIndex) {
  if (!result || !card) return [];
  return result.rules.filter((r) => {
    const idx = card.levels.indexOf(r.level);
    return idx >= 0 && idx <= requiredIndex && r.status !== 'not_applicable' && !countsAsPassed(r.status);
  });
}

export function isOpenExemption(x, now) {
  return x.status === 'pending' || (x.status === 'approved' && Date.parse(x.until) > now);
}

export async function render(ctx) {
  const [entities, scorecards, scores, exemptions, status] = await Promise.all([
    get(withQuery('entities', { tier: 1 })),
    get('scorecards'),
    get(withQuery('scores', { tier: 1 })),
    get('exemptions'),
    get('status'),
  ]);
  const gates = await Promise.all(
    entities.map((e) => get(`gate/${enc(e.identifier)}`).catch((err) => ({ entity: e.identifier, allowed: null, reasons: [], error: err }))),
  );
  const gateOf = new Map(gates.map((g) => [g.entity, g]));
  const required = requiredLevels(gates, status, 1);
  const cards = new Map(scorecards.map((c) => [c.identifier, c]));
  const now = Date.now();

  entities.sort((a, b) => {
    if (a.degraded !== b.degraded) return a.degraded ? -1 : 1;
    const da = a.degraded_since ? Date.parse(a.degraded_since) : 0;
    const db = b.degraded_since ? Date.parse(b.degraded_since) : 0;
    return da - db || a.identifier.localeCompare(b.identifier);
  });

  const items = entities.map((e) => {
    const id = e.identifier;
    const gate = gateOf.get(id);
    const results = scores.filter((r) => r.entity === id);
    const levelRows = results.map((r) => {
      const card = cards.get(r.scorecard);
      const need = required[r.scorecard];
      const needIndex = card && need ? card.levels.indexOf(need) : -1;
      const meets = needIndex < 0 || r.level_index >= needIndex;
      const blocking = needIndex >= 0 && !meets ? blockingRules(r, card, needIndex) : [];
      return h(
        'li',
        { class: ['level-row', meets ? 'meets' : 'misses'], testid: `tier1-level-${tid(id)}-${tid(r.scorecard)}`, 'data-meets': meets },
        h('span', { class: 'level-row-name' }, card ? card.title : r.scorecard),
        levelPill(r.level, r.level_index, card ? card.levels.length : 1),
        need ? h('span', { class: 'muted' }, meets ? `requires ${need} ✓` : `requires ${need}`) : h('span', { class: 'muted' }, 'no requirement known'),
        blocking.length
          ? h(
              'ul',
              { class: 'blocking', testid: `tier1-blocking-${tid(id)}-${tid(r.scorecard)}` },
              blocking.map((b) => h('li', {}, badge(b.status), ' ', h('strong', {}, b.rule), b.message ? h('span', { class: 'sub' }, b.message) : null)),
            )
          : null,
      );
    });
    const openEx = exemptions.filter((x) => x.entity === id && isOpenExemption(x, now));
    const gateBadge =
      gate?.allowed === true
        ? badge('pass', `tier1-gate-${tid(id)}`, 'may deploy')
        : gate?.allowed === false
          ? badge('fail', `tier1-gate-${tid(id)}`, 'gate closed')
          : badge('error', `tier1-gate-${tid(id)}`, 'gate unknown');
    return h(
      'article',
      { class: ['card', 'tier1-card', e.degraded ? 'is-degraded' : null], testid: `tier1-card-${tid(id)}`, 'data-entity': id, 'aria-labelledby': `t1-${tid(id)}` },
      h(
        'div',
        { class: 'card-head' },
        h('h2', { id: `t1-${tid(id)}` }, entityLink(id, e.title, `tier1-link-${tid(id)}`)),
        gateBadge,
      ),
      h(
        'p',
        { class: 'meta' },
        'Team ',
        teamLink(e.team),
        ' · ',
        e.degraded
          ? h('span', { class: 'bad', testid: `tier1-degraded-${tid(id)}` }, 'degraded for ', e.degraded_since ? h('time', { datetime: e.degraded_since, title: absTime(e.degraded_since) }, since(e.degraded_since)) : 'an unknown time')
          : h('span', { class: 'good', testid: `tier1-degraded-${tid(id)}` }, 'meets its tier'),
      ),
      results.length ? h('ul', { class: 'level-rows' }, levelRows) : h('p', { class: 'muted' }, 'Not evaluated yet.'),
      e.lock
        ? h('p', { class: 'lock', testid: `tier1-lock-${tid(id)}` }, badge('warn', null, 'locked'), ` ${e.lock.reason} — ${e.lock.locked_by}, `, timeEl(e.lock.locked_at))
        : null,
      openEx.length
        ? h(
            'div',
            { class: 'exemptions-mini', testid: `tier1-exemptions-${tid(id)}` },
            h('span', { class: 'muted' }, `${openEx.length} open exemption${openEx.length === 1 ? '' : 's'}: `),
            openEx.map((x) => h('span', { class: 'chip' }, badge(x.status), ` ${x.scorecard}${x.rule ? ` / ${x.rule}` : ''}`)),
          )
        : null,
      gate?.error ? h('p', { class: 'muted' }, `Gate: ${gate.error.message}`) : null,
    );
  });

  const degraded = entities.filter((e) => e.degraded).length;
  const locked = entities.filter((e) => e.lock).length;
  const reqText = Object.entries(required).map(([k, v]) => `${cards.get(k)?.title ?? k}: ${v}`).join(', ');
  return h(
    'div',
    { class: 'page' },
    h('h1', { tabindex: -1 }, 'Tier 1 services'),
    h(
      'p',
      { class: 'lead', testid: 'tier1-summary' },
      `${entities.length} Tier-1 services, ${degraded} degraded, ${locked} locked.`,
      reqText ? ` Tier 1 requires ${reqText}.` : '',
    ),
    entities.length ? h('div', { class: 'grid-cards', testid: 'tier1-list' }, items) : section('Nothing here', {}, h('p', { class: 'muted' }, 'No Tier-1 service in the catalog.')),
  );
}

export async function watch() {
  const scores = await get(withQuery('scores', { tier: 1 }));
  return JSON.stringify(scores.map((r) => [r.entity, r.scorecard, r.level_index, r.rules.map((x) => x.status)]));
}
