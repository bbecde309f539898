// #/entities/{id} — one service: its level on every scorecard and every rule behind it, its
// facts with their age and source, its level history as a step chart, exemptions, tier requests,
// tasks and gate state; with a token, the owner's and approver's actions (request an exemption or
// a tier change, lock / unlock, refresh, nudge). Failures show the server's own message.

import { get, post, withQuery } from './api.js';
import {
  h, section, table, teamLink, levelPill, badge, timeEl, tid, enc, dl, flatten, jsonText, tierLabel,
  countsAsPassed, field, formMessage, absTime, since, initiativeLink,
} from './dom.js';
import { stepChart } from './charts.js';
import { taskTable } from './lists.js';
import { runAction } from './actions.js';
import { requiredLevels } from './tier1.js';

const STATUS_ORDER = { error: 0, fail: 1, warn: 2, exempt: 3, pass: 4, not_applicable: 5 };

function header(entity, gate) {
  const bits = [
    h('span', { class: 'mono' }, entity.identifier),
    entity.kind,
    h('span', { testid: 'entity-tier' }, tierLabel(entity.tier)),
    h('span', {}, 'team ', teamLink(entity.team, 'entity-team-link')),
    entity.origin === 'api' ? 'added through the API' : null,
  ].filter(Boolean);
  const meta = [];
  bits.forEach((b, i) => {
    if (i) meta.push(' · ');
    meta.push(b);
  });
  return h(
    'header',
    { class: 'page-head' },
    h('h1', { tabindex: -1, testid: 'entity-title' }, entity.title),
    h('p', { class: 'meta' }, meta),
    h(
      'p',
      { class: 'badges' },
      entity.degraded
        ? badge('fail', 'entity-degraded', entity.degraded_since ? `degraded for ${since(entity.degraded_since)}` : 'degraded')
        : badge('pass', 'entity-degraded', 'meets its tier'),
      entity.lock ? badge('warn', 'entity-locked', 'deploys locked') : null,
      gate ? (gate.allowed ? badge('pass', 'gate-badge', 'gate open') : badge('fail', 'gate-badge', 'gate closed')) : null,
      entity.catalog_tier !== undefined ? h('span', { class: 'muted' }, ` (catalog says ${tierLabel(entity.catalog_tier)}; an approved tier change applies)`) : null,
    ),
  );
}

function gateSection(gate, gateError) {
  if (!gate) {
    return section('Deploy gate', { testid: 'gate-section' }, h('p', { class: 'muted', testid: 'gate-state', 'data-allowed': 'unknown' }, gateError ? gateError.message : 'Unknown.'));
  }
  return section(
    'Deploy gate',
    { testid: 'gate-section' },
    h(
      'p',
      { testid: 'gate-state', 'data-allowed': String(gate.allowed), class: gate.allowed ? 'good' : 'bad' },
      gate.allowed ? 'Deploys are allowed.' : 'Deploys are refused:',
    ),
    gate.reasons.length ? h('ul', { class: 'reasons', testid: 'gate-reasons' }, gate.reasons.map((r) => h('li', {}, r))) : null,
    gate.evaluated_at ? h('p', { class: 'muted' }, 'Evaluated ', timeEl(gate.evaluated_at)) : null,
  );
}

function scorecardSection(result, card, required) {
  const levels = card ? card.levels : [result.level];
  const titles = new Map((card?.rules ?? []).map((r) => [r.identifier, r]));
  const needIndex = required ? levels.indexOf(required) : -1;
  const ladder = h(
    'ol',
    { class: 'ladder', 'aria-label': `${card ? card.title : result.scorecard} levels` },
    levels.map((l, i) =>
      h(
        'li',
        {
          class: [i <= result.level_index ? 'reached' : null, i === result.level_index ? 'current' : null, i === needIndex ? 'required' : null],
          'aria-current': i === result.level_index ? 'step' : null,
        },
        l,
        i === needIndex ? h('span', { class: 'sr-only' }, ' (required)') : null,
      ),
    ),
  );
  const rules = [...result.rules].sort((a, b) => {
    const la = levels.indexOf(a.level);
    const lb = levels.indexOf(b.level);
    return la - lb || (STATUS_ORDER[a.status] ?? 9) - (STATUS_ORDER[b.status] ?? 9);
  });
  const rows = rules.map((r) => ({
    attrs: { testid: `rule-${tid(result.scorecard)}-${tid(r.rule)}`, 'data-status': r.status, class: countsAsPassed(r.status) || r.status === 'not_applicable' ? null : 'row-bad' },
    cells: [
      h('span', {}, titles.get(r.rule)?.title ?? r.rule, h('span', { class: 'sub mono' }, r.rule)),
      r.level,
      badge(r.status, `rule-status-${tid(result.scorecard)}-${tid(r.rule)}`),
      h('span', { class: 'message' }, r.message ?? '', r.details ? h('details', { class: 'details-json' }, h('summary', {}, 'details'), h('pre', {}, JSON.stringify(r.details, null, 2))) : null),
      timeEl(r.changed_at),
    ],
  }));
  return section(
    card ? card.title : result.scorecard,
    {
      testid: `scorecard-result-${tid(result.scorecard)}`,
      class: 'card',
      actions: h(
        'span',
        { class: 'score-line' },
        levelPill(result.level, result.level_index, levels.length, `level-${tid(result.scorecard)}`),
        h('span', { class: 'muted', testid: `percent-${tid(result.scorecard)}` }, ` ${Math.round(result.percent)}% of rules`),
        required ? h('span', { class: needIndex >= 0 && result.level_index < needIndex ? 'bad' : 'good' }, ` · tier requires ${required}`) : null,
      ),
    },
    ladder,
    table([{ label: 'Rule' }, { label: 'Level' }, { label: 'Status' }, { label: 'Message' }, { label: 'Changed' }], rows, {
      testid: `rules-${tid(result.scorecard)}`,
      caption: `Rules of ${result.scorecard}`,
    }),
  );
}

function historySection(results, cards, history) {
  const charts = results.map((r) => {
    const card = cards.get(r.scorecard);
    const changes = history.filter((c) => c.scorecard === r.scorecard).sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    return h(
      'figure',
      { class: 'history-figure' },
      h('figcaption', {}, card ? card.title : r.scorecard),
      stepChart({ id: r.scorecard, title: card ? card.title : r.scorecard, levels: card ? card.levels : [r.level], changes }),
    );
  });
  return section('Level history', { testid: 'history-section' }, charts.length ? h('div', { class: 'history-grid' }, charts) : h('p', { class: 'muted' }, 'Not evaluated yet.'));
}

function factsSection(facts) {
  const sources = Object.values(facts || {}).sort((a, b) => a.source.localeCompare(b.source));
  const blocks = sources.map((rec) => {
    const pairs = flatten(rec.facts);
    return h(
      'details',
      { class: 'facts', testid: `facts-${tid(rec.source)}`, open: sources.length <= 2 ? true : null },
      h(
        'summary',
        {},
        h('strong', {}, rec.source),
        ' · collected ',
        timeEl(rec.collected_at, `facts-age-${tid(rec.source)}`),
        h('span', { class: 'muted' }, ` · plugin ${String(rec.plugin_version).slice(0, 12)} · ${pairs.length} facts`),
        rec.stale_reason ? [' ', badge('warn', `facts-stale-${tid(rec.source)}`, 'stale')] : null,
      ),
      rec.stale_reason ? h('p', { class: 'warn-text' }, `Latest collection failed: ${rec.stale_reason}`) : null,
      table(
        [{ label: 'Fact' }, { label: 'Value' }],
        pairs.map(([k, v]) => [h('span', { class: 'mono' }, k), h('span', { class: 'mono value' }, jsonText(v))]),
        { caption: `Facts from ${rec.source}`, empty: 'No facts.' },
      ),
    );
  });
  return section('Facts', { testid: 'facts-section' }, blocks.length ? blocks : h('p', { class: 'muted', testid: 'facts-empty' }, 'No data source has reported facts for this entity yet.'));
}

function exemptionSection(ctx, exemptions) {
  const rows = exemptions.map((x) => {
    const revoke =
      ctx.hasToken && x.status === 'approved'
        ? h('button', { type: 'button', class: 'btn small', testid: `exemption-revoke-${tid(x.id)}` }, 'Revoke')
        : null;
    if (revoke) {
      revoke.addEventListener('click', () =>
        runAction(ctx, { button: revoke, fn: () => post(`exemptions/${enc(x.id)}/revoke`), success: () => 'Exemption revoked.' }),
      );
    }
    return {
      attrs: { testid: `entity-exemption-${tid(x.id)}`, 'data-status': x.status },
      cells: [
        h('span', {}, x.scorecard, h('span', { class: 'sub' }, x.rule ? `rule ${x.rule}` : 'whole scorecard')),
        badge(x.status),
        h('span', {}, x.reason),
        timeEl(x.until),
        h('span', {}, x.requested_by, h('span', { class: 'sub' }, absTime(x.requested_at))),
        revoke ?? '',
      ],
    };
  });
  return section(
    'Exemptions',
    { testid: 'exemptions-section' },
    table([{ label: 'Scope' }, { label: 'Status' }, { label: 'Reason' }, { label: 'Until' }, { label: 'Requested' }, { label: '' }], rows, {
      testid: 'entity-exemptions',
      empty: 'No exemption has been requested for this entity.',
    }),
  );
}

function tierRequestSection(requests) {
  if (!requests.length) return null;
  return section(
    'Tier change requests',
    { testid: 'tier-requests-section' },
    table(
      [{ label: 'Change' }, { label: 'Status' }, { label: 'Reason' }, { label: 'Requested' }],
      requests.map((r) => ({
        attrs: { testid: `entity-tier-request-${tid(r.id)}` },
        cells: [`${tierLabel(r.from)} → ${tierLabel(r.to)}`, badge(r.status), r.reason, h('span', {}, r.requested_by, h('span', { class: 'sub' }, absTime(r.requested_at)))],
      })),
    ),
  );
}

function isoDate(daysAhead) {
  const d = new Date(Date.now() + daysAhead * 86400e3);
  return d.toISOString().slice(0, 10);
}

function exemptionForm(ctx, entity, results, cards) {
  const scorecardSel = h(
    'select',
    { name: 'scorecard', required: true, testid: 'exemption-scorecard' },
    results.map((r) => h('option', { value: r.scorecard }, cards.get(r.scorecard)?.title ?? r.scorecard)),
  );
  const ruleSel = h('select', { name: 'rule', testid: 'exemption-rule' });
  const fillRules = () => {
    const r = results.find((x) => x.scorecard === scorecardSel.value);
    const titles = new Map((cards.get(scorecardSel.value)?.rules ?? []).map((x) => [x.identifier, x.title]));
    const failing = (r?.rules ?? []).filter((x) => x.status !== 'not_applicable' && !countsAsPassed(x.status));
    const others = (r?.rules ?? []).filter((x) => !failing.includes(x));
    ruleSel.replaceChildren(
      h('option', { value: '' }, 'The whole scorecard'),
      failing.length ? h('optgroup', { label: 'Not passing' }, failing.map((x) => h('option', { value: x.rule }, `${titles.get(x.rule) ?? x.rule} (${x.status})`))) : null,
      others.length ? h('optgroup', { label: 'Other rules' }, others.map((x) => h('option', { value: x.rule }, `${titles.get(x.rule) ?? x.rule} (${x.status})`))) : null,
    );
    if (failing.length) ruleSel.value = failing[0].rule;
  };
  scorecardSel.addEventListener('change', fillRules);
  fillRules();
  const reason = h('textarea', { name: 'reason', rows: 3, required: true, testid: 'exemption-reason', maxlength: 2000 });
  const until = h('input', { type: 'date', name: 'until', required: true, min: isoDate(1), value: isoDate(30), testid: 'exemption-until' });
  const message = formMessage('exemption-message');
  const submit = h('button', { type: 'submit', class: 'btn primary', testid: 'exemption-submit' }, 'Request exemption');
  const form = h(
    'form',
    { class: 'action-form', testid: 'exemption-form' },
    field('Scorecard', scorecardSel)[0],
    field('Rule', ruleSel, 'Exempt one rule, or every rule of the scorecard.')[0],
    field('Reason', reason, 'Why the rule should not count for now; approvers read this.')[0],
    field('Until', until, 'The exemption ends at the end of this day (UTC).')[0],
    h('div', { class: 'row' }, submit),
    message,
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const body = {
      entity: entity.identifier,
      scorecard: scorecardSel.value,
      reason: reason.value.trim(),
      until: `${until.value}T23:59:59Z`,
    };
    if (ruleSel.value) body.rule = ruleSel.value;
    runAction(ctx, {
      button: submit,
      form,
      messageEl: message,
      fn: () => post('exemptions', body),
      success: (x) => `Exemption ${x?.id ?? ''} requested for ${body.scorecard}${body.rule ? ` / ${body.rule}` : ''}; it takes effect once an approver approves it.`,
    });
  });
  return form;
}

function tierForm(ctx, entity) {
  const to = h(
    'select',
    { name: 'to', testid: 'tier-to' },
    ['1', '2', '3', 'none'].map((t) => h('option', { value: t, selected: String(entity.tier ?? 'none') === t }, t === 'none' ? 'Untiered' : `Tier ${t}`)),
  );
  const reason = h('textarea', { name: 'reason', rows: 2, required: true, testid: 'tier-reason', maxlength: 2000 });
  const message = formMessage('tier-message');
  const submit = h('button', { type: 'submit', class: 'btn primary', testid: 'tier-submit' }, 'Request tier change');
  const form = h('form', { class: 'action-form', testid: 'tier-form' }, field('New tier', to)[0], field('Reason', reason)[0], h('div', { class: 'row' }, submit), message);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const body = { entity: entity.identifier, to: to.value === 'none' ? null : Number(to.value), reason: reason.value.trim() };
    runAction(ctx, {
      button: submit,
      form,
      messageEl: message,
      fn: () => post('tier-requests', body),
      success: () => `Tier change to ${tierLabel(body.to)} requested; it applies once an approver approves it.`,
    });
  });
  return form;
}

function lockForm(ctx, entity) {
  const id = enc(entity.identifier);
  const message = formMessage('lock-message');
  if (entity.lock) {
    const note = h('input', { type: 'text', name: 'note', testid: 'unlock-note', maxlength: 500 });
    const submit = h('button', { type: 'submit', class: 'btn', testid: 'unlock-submit' }, 'Unlock deploys');
    const form = h(
      'form',
      { class: 'action-form', testid: 'unlock-form' },
      h('p', { testid: 'lock-info' }, `Locked by ${entity.lock.locked_by} `, timeEl(entity.lock.locked_at), `: ${entity.lock.reason}`),
      field('Note (optional)', note)[0],
      h('div', { class: 'row' }, submit),
      message,
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const body = note.value.trim() ? { note: note.value.trim() } : undefined;
      runAction(ctx, { button: submit, form, messageEl: message, fn: () => post(`entities/${id}/unlock`, body), success: () => 'Deploys unlocked.' });
    });
    return form;
  }
  const reason = h('input', { type: 'text', name: 'reason', required: true, testid: 'lock-reason', maxlength: 500 });
  const submit = h('button', { type: 'submit', class: 'btn', testid: 'lock-submit' }, 'Lock deploys');
  const form = h('form', { class: 'action-form', testid: 'lock-form' }, field('Reason', reason, 'The deploy gate refuses while the lock holds.')[0], h('div', { class: 'row' }, submit), message);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    runAction(ctx, { button: submit, form, messageEl: message, fn: () => post(`entities/${id}/lock`, { reason: reason.value.trim() }), success: () => 'Deploys locked.' });
  });
  return form;
}

function actionsSection(ctx, entity, results, cards) {
  if (!ctx.hasToken) {
    const open = h('button', { type: 'button', class: 'btn', testid: 'actions-sign-in' }, 'Enter a token');
    open.addEventListener('click', () => ctx.openTokenPanel());
    return section(
      'Actions',
      { testid: 'actions-section' },
      h('p', { class: 'muted', testid: 'actions-locked' }, 'Requesting exemptions or tier changes, locking, refreshing and nudging need an API token. '),
      open,
    );
  }
  const id = enc(entity.identifier);
  const message = formMessage('action-message');
  const refresh = h('button', { type: 'button', class: 'btn', testid: 'action-refresh' }, 'Refresh facts now');
  refresh.addEventListener('click', () =>
    runAction(ctx, {
      button: refresh,
      messageEl: message,
      fn: () => post(`entities/${id}/refresh`),
      success: (res) => {
        const parts = (res?.sources ?? []).map((s) => (s.ok ? `${s.source} ok` : `${s.source} failed${s.error ? `: ${s.error}` : ''}`));
        return `Refreshed and re-evaluated${parts.length ? ` (${parts.join('; ')})` : ''}.`;
      },
    }),
  );
  const nudge = h('button', { type: 'button', class: 'btn', testid: 'action-nudge' }, 'Nudge the team');
  nudge.addEventListener('click', () =>
    runAction(ctx, { button: nudge, messageEl: message, fn: () => post(`entities/${id}/nudge`), success: () => `Nudge sent to ${entity.team ?? 'the owners'}.` }),
  );
  return section(
    'Actions',
    { testid: 'actions-section' },
    h('p', { class: 'muted' }, 'The daemon decides what your token may do; a refusal shows its reason here.'),
    h('div', { class: 'row' }, refresh, nudge),
    message,
    h('details', { class: 'action', testid: 'exemption-details' }, h('summary', { testid: 'exemption-toggle' }, 'Request an exemption'), exemptionForm(ctx, entity, results, cards)),
    h('details', { class: 'action', testid: 'tier-details' }, h('summary', { testid: 'tier-toggle' }, 'Request a tier change'), tierForm(ctx, entity)),
    h('details', { class: 'action', testid: 'lock-details' }, h('summary', { testid: 'lock-toggle' }, entity.lock ? 'Unlock deploys' : 'Lock deploys'), lockForm(ctx, entity)),
  );
}

/** The initiatives whose non-compliant list names this entity. */
async function initiativesShortOf(id, initiatives) {
  const details = await Promise.all(
    initiatives.map((i) => (Array.isArray(i.non_compliant) ? Promise.resolve(i) : get(`initiatives/${enc(i.identifier)}`).catch(() => null))),
  );
  return details.filter((d) => d && (d.non_compliant ?? []).some((n) => n.entity === id));
}

export async function render(ctx) {
  const id = ctx.params[0];
  const base = `entities/${enc(id)}`;
  // The entity first: a 404 then ends the page with one clear message.
  const entity = await get(base);
  let gateError = null;
  const [scores, facts, history, gate, exemptions, tasks, tierRequests, scorecards, initiatives] = await Promise.all([
    get(`${base}/scores`),
    get(`${base}/facts`),
    get(`${base}/history`),
    get(`gate/${enc(id)}`).catch((err) => {
      gateError = err;
      return null;
    }),
    get('exemptions'),
    get(withQuery('tasks', { entity: id })),
    get('tier-requests'),
    get('scorecards'),
    get('initiatives').catch(() => []),
  ]);
  const cards = new Map(scorecards.map((c) => [c.identifier, c]));
  const required = gate ? requiredLevels([gate], null, entity.tier ?? 'none') : {};
  const mine = exemptions.filter((x) => x.entity === id).sort((a, b) => Date.parse(b.requested_at) - Date.parse(a.requested_at));
  const requests = tierRequests.filter((r) => r.entity === id);
  const openTasks = tasks.filter((t) => t.status !== 'done');

  const links = h(
    'p',
    { class: 'crumbs' },
    h('a', { href: '#/entities' }, 'All entities'),
    entity.team ? [' · ', h('a', { href: `#/teams/${enc(entity.team)}` }, `Team ${entity.team}`)] : null,
    entity.tier === 1 ? [' · ', h('a', { href: '#/tier1' }, 'Tier 1 view')] : null,
  );
  const shortOf = await initiativesShortOf(id, initiatives);
  if (shortOf.length) {
    links.append(' · Falls short of ', ...shortOf.flatMap((i, k) => [k ? ', ' : '', initiativeLink(i.identifier, i.title, `entity-initiative-${tid(i.identifier)}`)]));
  }

  const properties = Object.entries(entity.properties || {});
  const relations = Object.entries(entity.relations || {});
  const about = section(
    'About',
    { testid: 'about-section' },
    dl([
      ...properties.map(([k, v]) => [k, typeof v === 'string' && /^https:\/\//.test(v) ? h('a', { href: v, rel: 'noopener noreferrer', target: '_blank' }, v) : jsonText(v)]),
      ...relations.map(([k, ids]) => [k, ids.map((x, i) => [i ? ', ' : '', h('a', { href: `#/entities/${enc(x)}` }, x)])]),
    ]),
  );

  return h(
    'div',
    { class: 'page entity-page', 'data-entity': id },
    links,
    header(entity, gate),
    h(
      'div',
      { class: 'grid-2' },
      gateSection(gate, gateError),
      actionsSection(ctx, entity, scores, cards),
    ),
    scores.length
      ? scores.map((r) => scorecardSection(r, cards.get(r.scorecard), required[r.scorecard]))
      : section('Scorecards', {}, h('p', { class: 'muted' }, 'No scorecard applies to this entity, or it has not been evaluated yet.')),
    historySection(scores, cards, history),
    exemptionSection(ctx, mine),
    tierRequestSection(requests),
    section('Open tasks', { testid: 'entity-tasks' }, taskTable(openTasks, { showEntity: false })),
    factsSection(facts),
    properties.length || relations.length ? about : null,
  );
}

export async function watch(ctx) {
  const id = enc(ctx.params[0]);
  const [entity, scores] = await Promise.all([get(`entities/${id}`), get(`entities/${id}/scores`)]);
  return JSON.stringify([
    entity.tier,
    entity.degraded,
    entity.lock?.locked_at ?? null,
    scores.map((r) => [r.scorecard, r.level_index, r.rules.map((x) => [x.rule, x.status])]),
  ]);
}
