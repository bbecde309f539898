//! [`plan_tick`]: what time alone changes — overdue tasks and reminders, exemption expiry,
//! initiative deadlines.

use super::*;

/// What [`plan_tick`] reads.
pub struct TickInput<'a> {
    pub now: Timestamp,
    /// Tasks that are not done.
    pub tasks: &'a [Task],
    /// Exemptions; only approved ones matter.
    pub exemptions: &'a [Exemption],
    /// Progress of every initiative at `now`.
    pub initiatives: &'a [InitiativeProgress],
    /// The entity with this id (effective tier), if it exists.
    pub entity: &'a dyn Fn(&str) -> Option<Entity>,
    /// Whether the alert-state marker at this key exists (`store.alert_state::<Reminder>`).
    pub reminded: &'a dyn Fn(&[&str]) -> bool,
}

impl std::fmt::Debug for TickInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TickInput")
            .field("now", &self.now)
            .field("tasks", &self.tasks.len())
            .field("exemptions", &self.exemptions.len())
            .field("initiatives", &self.initiatives.len())
            .finish_non_exhaustive()
    }
}

/// Plan the time-based transitions at `input.now`: overdue tasks and due-soon reminders,
/// exemption reminders and expiry, initiative deadline reminders. Expired exemptions come back
/// in `plan.exemptions` (status `expired`, audit line appended): the engine commits them and
/// re-evaluates their entities.
pub fn plan_tick(input: &TickInput<'_>, ctx: &PlanContext<'_>) -> Plan {
    let now = input.now;
    let mut plan = Plan::default();
    let unknown = |id: &str| Entity {
        identifier: id.to_owned(),
        kind: "unknown".into(),
        title: id.to_owned(),
        team: None,
        tier: None,
        properties: Default::default(),
        relations: Default::default(),
    };

    for task in input.tasks {
        let entity = (input.entity)(&task.entity).unwrap_or_else(|| unknown(&task.entity));
        let who = EntitySummary::of(&entity).describe();
        let (kind, step) = match task.status {
            TaskStatus::Open if now >= task.due => (EventKind::TaskOverdue, "overdue"),
            TaskStatus::Open if !task.reminded && task.due - now <= DUE_SOON => {
                (EventKind::TaskDueSoon, "due_soon")
            }
            _ => continue,
        };
        let mut updated = task.clone();
        // A task that turns overdue without a reminder needs none any more.
        updated.reminded = true;
        let message = if kind == EventKind::TaskOverdue {
            updated.status = TaskStatus::Overdue;
            format!(
                "{who}: task {} is overdue (due {}){}",
                task_subject(task),
                task.due.format("%Y-%m-%d"),
                task.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            )
        } else {
            format!(
                "{who}: task {} is due {}{}",
                task_subject(task),
                task.due.format("%Y-%m-%d %H:%M UTC"),
                task.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            )
        };
        let mut event = entity_event(ctx, kind, &entity, now, &[&task.id, step], message);
        event.team = task.team.clone().or(entity.team.clone());
        event.scorecard = Some(task.scorecard.clone());
        event.rule = Some(task.rule.clone());
        event.data = task_data(&updated);
        plan.tasks.push(updated);
        plan.emit(ctx, event, &[]);
    }

    for exemption in input
        .exemptions
        .iter()
        .filter(|e| e.status == ExemptionStatus::Approved)
    {
        let entity =
            (input.entity)(&exemption.entity).unwrap_or_else(|| unknown(&exemption.entity));
        let marker = exemption_reminder_key(&exemption.id);
        if now >= exemption.until {
            let mut expired = exemption.clone();
            expired.status = ExemptionStatus::Expired;
            let entry = AuditEntry {
                actor: SYSTEM_ACTOR.to_owned(),
                action: "expired".to_owned(),
                at: now,
                note: None,
            };
            expired.history.push(entry.clone());
            plan.audit
                .push(("exemption".to_owned(), exemption.id.clone(), entry));
            plan.alert_changes.push(AlertChange::Forget {
                key: marker.iter().map(|s| (*s).to_owned()).collect(),
            });
            let event = exemption_event(ctx, EventKind::ExemptionExpired, &expired, &entity, now);
            plan.exemptions.push(expired);
            plan.emit(ctx, event, &[]);
        } else if exemption.until - now <= EXPIRING_SOON && !(input.reminded)(&marker) {
            let event = exemption_event(
                ctx,
                EventKind::ExemptionExpiringSoon,
                exemption,
                &entity,
                now,
            );
            plan.alert_changes.push(AlertChange::Reminded {
                key: marker.iter().map(|s| (*s).to_owned()).collect(),
                reminder: Reminder {
                    at: now,
                    event_id: event.id.clone(),
                },
            });
            plan.emit(ctx, event, &[]);
        }
    }

    for progress in input.initiatives {
        if progress.state == InitiativeState::Done {
            continue;
        }
        let deadline = progress.deadline_at();
        let date = progress.deadline.to_string();
        let marker = initiative_reminder_key(&progress.identifier, &date);
        if now >= deadline || deadline - now > DEADLINE_APPROACHING || (input.reminded)(&marker) {
            continue;
        }
        let days = (deadline - now).num_days();
        let message = format!(
            "Initiative \"{}\" ({}) is due {date} ({days} days left): {} of {} entities meet its \
             targets ({:.0}%), {}",
            progress.title,
            progress.identifier,
            progress.overall.meeting,
            progress.overall.total,
            progress.overall.percent,
            progress.state.as_str().replace('_', " ")
        );
        let event = Event {
            id: event_id(
                EventKind::InitiativeDeadlineApproaching,
                &[&progress.identifier, &date],
            ),
            kind: EventKind::InitiativeDeadlineApproaching,
            at: now,
            entity: None,
            team: Some(progress.owner.clone()),
            scorecard: None,
            rule: None,
            from_level: None,
            to_level: None,
            blocking: Vec::new(),
            message,
            link: initiative_link(ctx.public_url(), &progress.identifier),
            data: json!({
                "initiative": {
                    "identifier": progress.identifier,
                    "title": progress.title,
                    "owner": progress.owner,
                    "deadline": progress.deadline,
                    "state": progress.state,
                    "overall": progress.overall,
                    "teams": progress.teams,
                }
            }),
        };
        plan.alert_changes.push(AlertChange::Reminded {
            key: marker.iter().map(|s| (*s).to_owned()).collect(),
            reminder: Reminder {
                at: now,
                event_id: event.id.clone(),
            },
        });
        plan.emit(ctx, event, &[]);
    }
    plan
}
