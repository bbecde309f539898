//! [`plan_decision`] and [`plan_nudge`]: what people's requests and decisions announce.

use super::*;

/// A person's decision (or request) that automation announces.
#[derive(Clone, Copy, Debug)]
pub enum Decision<'a> {
    /// An exemption after the transition; `kind` is one of `exemption.requested`,
    /// `exemption.approved`, `exemption.denied`, `exemption.revoked`.
    Exemption {
        exemption: &'a Exemption,
        kind: EventKind,
    },
    /// A tier request after its approval or denial.
    TierRequest { request: &'a TierRequest },
}

/// Plan the events of a request or decision about `entity` (effective tier) at `now`.
pub fn plan_decision(
    decision: Decision<'_>,
    entity: &Entity,
    ctx: &PlanContext<'_>,
    now: Timestamp,
) -> Plan {
    let mut plan = Plan::default();
    let event = match decision {
        Decision::Exemption { exemption, kind } => {
            exemption_event(ctx, kind, exemption, entity, now)
        }
        Decision::TierRequest { request } => {
            let who = EntitySummary::of(entity).describe();
            let tier = |t: Option<u8>| t.map_or("untiered".to_owned(), |t| format!("Tier {t}"));
            let last = request.history.last();
            let by = last.map(|h| h.actor.as_str()).unwrap_or("?");
            let note = last
                .and_then(|h| h.note.as_deref())
                .map(|n| format!(": {n}"))
                .unwrap_or_default();
            let verdict = match request.status {
                TierRequestStatus::Approved => "approved",
                TierRequestStatus::Denied => "denied",
                TierRequestStatus::Pending => "pending",
            };
            let message = format!(
                "{who}: tier change from {} to {} {verdict} by {by}{note} (asked by {}: {})",
                tier(request.from),
                tier(request.to),
                request.requested_by,
                request.reason
            );
            let history = request.history.len().to_string();
            let mut event = entity_event(
                ctx,
                EventKind::TierRequestDecided,
                entity,
                now,
                &[&request.id, verdict, &history],
                message,
            );
            event.data = json!({ "tier_request": request, "decision": verdict });
            event
        }
    };
    plan.emit(ctx, event, &[]);
    plan
}

/// Plan a nudge: one `entity.nudge` event summarising what `entity` misses for its tier
/// (`eval::tier_misses` of its current results) and its open tasks, sent to the owning team's channel (`teams.<team>.channel`) and to every route that
/// selects `entity.nudge`. Each nudge is a new event (its id includes `now`).
pub fn plan_nudge(
    entity: &Entity,
    misses: &[TierMiss],
    open_tasks: &[Task],
    ctx: &PlanContext<'_>,
    now: Timestamp,
) -> Plan {
    let who = EntitySummary::of(entity).describe();
    let open: Vec<&Task> = open_tasks
        .iter()
        .filter(|t| t.status != TaskStatus::Done && t.entity == entity.identifier)
        .collect();
    let overdue = open
        .iter()
        .filter(|t| t.status == TaskStatus::Overdue)
        .count();
    let mut message = if misses.is_empty() {
        format!("{who} meets its tier requirement")
    } else {
        format!("{who} is {}", describe_misses(ctx.standards, misses))
    };
    if !open.is_empty() {
        let next_due = open.iter().map(|t| t.due).min().unwrap_or(now);
        message.push_str(&format!(
            ". {} open task{} ({overdue} overdue), next due {}",
            open.len(),
            if open.len() == 1 { "" } else { "s" },
            next_due.format("%Y-%m-%d")
        ));
    }
    let mut event = entity_event(
        ctx,
        EventKind::EntityNudge,
        entity,
        now,
        &[&now.to_rfc3339()],
        message,
    );
    event.scorecard = misses.first().map(|m| m.scorecard.clone());
    event.blocking = misses
        .iter()
        .flat_map(|m| miss_blocking(ctx.standards, m))
        .collect();
    event.data = json!({ "misses": misses_data(ctx.standards, misses), "open_tasks": open });
    let mut channels: Vec<String> = routing::team_channel(ctx.config, &event)
        .map(str::to_owned)
        .into_iter()
        .collect();
    for channel in routing::channels_for(&event, ctx.config, &[]) {
        if !channels.contains(&channel) {
            channels.push(channel);
        }
    }
    let mut plan = Plan::default();
    plan.queue(ctx, &event, &channels);
    plan.events.push(event);
    plan
}
