// #/approvals — what waits for an approver: pending exemptions and tier change requests, each with
// approve / deny (and an optional note) when a token is set, plus the exemptions in force (which
// an approver may revoke) and the latest decisions.

import { get, post } from './api.js';
import { h, section, table, entityLink, teamLink, badge, timeEl, tid, enc, tierLabel, absTime, formMessage } from './dom.js';
import { runAction } from './actions.js';

function decisionCell(ctx, kind, item, pathBase, decisions) {
  if (!ctx.hasToken) return h('span', { class: 'muted' }, 'token needed');
  const note = h('input', { type: 'text', class: 'note', name: 'note', maxlength: 500, testid: `${kind}-note-${tid(item.id)}`, 'aria-label': `Note for ${item.entity} (optional)`, placeholder: 'Note (optional)' });
  const message = formMessage(`${kind}-message-${tid(item.id)}`);
  const form = h('form', { class: 'decision', testid: `${kind}-decision-${tid(item.id)}` }, note);
  for (const [verb, label, cls] of decisions) {
    const button = h('button', { type: 'button', class: ['btn', 'small', cls], testid: `${kind}-${verb}-${tid(item.id)}` }, label);
    button.addEventListener('click', () => {
      const body = note.value.trim() ? { note: note.value.trim() } : undefined;
      runAction(ctx, {
        button,
        form,
        messageEl: message,
        fn: () => post(`${pathBase}/${enc(item.id)}/${verb}`, body),
        success: () => `${kind === 'exemption' ? 'Exemption' : 'Tier request'} ${item.id} for ${item.entity}: ${verb === 'approve' ? 'approved' : verb === 'deny' ? 'denied' : 'revoked'}.`,
      });
    });
    form.appendChild(button);
  }
  form.addEventListener('submit', (e) => e.preventDefault());
  return h('div', {}, form, message);
}

export async function render(ctx) {
  const [exemptions, tierRequests, entities] = await Promise.all([get('exemptions'), get('tier-requests'), get('entities')]);
  const teamOf = new Map(entities.map((e) => [e.identifier, e.team]));
  const now = Date.now();
  const pending = exemptions.filter((x) => x.status === 'pending').sort((a, b) => Date.parse(a.requested_at) - Date.parse(b.requested_at));
  const inForce = exemptions.filter((x) => x.status === 'approved' && Date.parse(x.until) > now).sort((a, b) => Date.parse(a.until) - Date.parse(b.until));
  const pendingTier = tierRequests.filter((r) => r.status === 'pending');
  const lastAt = (x) => Math.max(...(x.history ?? []).map((e) => Date.parse(e.at)).filter((t) => !Number.isNaN(t)), Date.parse(x.requested_at));
  const decided = [
    ...exemptions.filter((x) => x.status !== 'pending').map((x) => ({ ...x, kind: 'exemption' })),
    ...tierRequests.filter((r) => r.status !== 'pending').map((r) => ({ ...r, kind: 'tier' })),
  ]
    .sort((a, b) => lastAt(b) - lastAt(a))
    .slice(0, 15);

  const exRows = pending.map((x) => ({
    attrs: { testid: `exemption-row-${tid(x.id)}`, 'data-entity': x.entity, 'data-id': x.id },
    cells: [
      entityLink(x.entity),
      teamLink(teamOf.get(x.entity)),
      h('span', {}, x.scorecard, h('span', { class: 'sub' }, x.rule ? `rule ${x.rule}` : 'whole scorecard')),
      x.reason,
      timeEl(x.until),
      h('span', {}, x.requested_by, h('span', { class: 'sub' }, absTime(x.requested_at))),
      decisionCell(ctx, 'exemption', x, 'exemptions', [
        ['approve', 'Approve', 'primary'],
        ['deny', 'Deny', 'danger'],
      ]),
    ],
  }));
  const tierRows = pendingTier.map((r) => ({
    attrs: { testid: `tier-request-row-${tid(r.id)}`, 'data-entity': r.entity, 'data-id': r.id },
    cells: [
      entityLink(r.entity),
      teamLink(teamOf.get(r.entity)),
      `${tierLabel(r.from)} → ${tierLabel(r.to)}`,
      r.reason,
      h('span', {}, r.requested_by, h('span', { class: 'sub' }, absTime(r.requested_at))),
      decisionCell(ctx, 'tier-request', r, 'tier-requests', [
        ['approve', 'Approve', 'primary'],
        ['deny', 'Deny', 'danger'],
      ]),
    ],
  }));
  const forceRows = inForce.map((x) => ({
    attrs: { testid: `active-exemption-${tid(x.id)}`, 'data-entity': x.entity },
    cells: [
      entityLink(x.entity),
      h('span', {}, x.scorecard, h('span', { class: 'sub' }, x.rule ? `rule ${x.rule}` : 'whole scorecard')),
      x.reason,
      timeEl(x.until),
      decisionCell(ctx, 'exemption', x, 'exemptions', [['revoke', 'Revoke', 'danger']]),
    ],
  }));
  const decidedRows = decided.map((d) => {
    const last = (d.history ?? [])[d.history?.length - 1];
    return {
      attrs: { testid: `decided-${tid(d.id)}` },
      cells: [
        d.kind === 'exemption' ? 'exemption' : 'tier change',
        entityLink(d.entity),
        d.kind === 'exemption' ? `${d.scorecard}${d.rule ? ` / ${d.rule}` : ''}` : `${tierLabel(d.from)} → ${tierLabel(d.to)}`,
        badge(d.status),
        last ? h('span', {}, last.actor, last.note ? h('span', { class: 'sub' }, last.note) : null) : '—',
        last ? timeEl(last.at) : '—',
      ],
    };
  });

  const tokenNote = ctx.hasToken
    ? null
    : h(
        'p',
        { class: 'notice', testid: 'approvals-token-note' },
        'Deciding needs an approver token. ',
        (() => {
          const b = h('button', { type: 'button', class: 'btn small' }, 'Enter a token');
          b.addEventListener('click', () => ctx.openTokenPanel());
          return b;
        })(),
      );

  return h(
    'div',
    { class: 'page' },
    h('h1', { tabindex: -1 }, 'Approvals'),
    h('p', { class: 'lead' }, 'A requester can never approve their own request; the daemon refuses it and says so here.'),
    tokenNote,
    section(
      `Pending exemptions (${pending.length})`,
      { testid: 'pending-exemptions', class: 'card flush' },
      table([{ label: 'Entity' }, { label: 'Team' }, { label: 'Scope' }, { label: 'Reason' }, { label: 'Until' }, { label: 'Requested' }, { label: 'Decision' }], exRows, {
        testid: 'pending-exemptions-table',
        empty: 'No exemption waits for a decision.',
      }),
    ),
    section(
      `Pending tier changes (${pendingTier.length})`,
      { testid: 'pending-tier-requests', class: 'card flush' },
      table([{ label: 'Entity' }, { label: 'Team' }, { label: 'Change' }, { label: 'Reason' }, { label: 'Requested' }, { label: 'Decision' }], tierRows, {
        testid: 'pending-tier-requests-table',
        empty: 'No tier change waits for a decision.',
      }),
    ),
    section(
      `Exemptions in force (${inForce.length})`,
      { testid: 'active-exemptions', class: 'card flush' },
      table([{ label: 'Entity' }, { label: 'Scope' }, { label: 'Reason' }, { label: 'Until' }, { label: '' }], forceRows, { empty: 'No exemption is in force.' }),
    ),
    section(
      'Latest decisions',
      { testid: 'decisions', class: 'card flush' },
      table([{ label: 'What' }, { label: 'Entity' }, { label: 'Scope' }, { label: 'Status' }, { label: 'By' }, { label: 'When' }], decidedRows, { empty: 'No decision yet.' }),
    ),
  );
}
