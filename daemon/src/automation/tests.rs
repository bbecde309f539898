//! Planning tests: tasks, tier alerts, transitions, reminders, routing and idempotency, on
//! standards read from real files and a manual clock. Nothing here sleeps or touches a network.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};

use super::*;
use crate::clock::Clock;
use crate::config::{ChannelConfig, ChannelKind, Config, RouteConfig, TeamConfig};
use crate::model::{
    AuditEntry, Entity, Exemption, ExemptionStatus, RuleResult, RuleStatus, ScorecardResult, Task,
    TaskStatus, TierRequest, TierRequestStatus, Timestamp,
};
use crate::standards::{NoPlugins, Standards};
use crate::store::{Durability, Store, WriteBatch};

use RuleStatus::{Error as Err_, Exempt, Fail, NotApplicable as NA, Pass};

const PROD: &str = r#"
identifier: prod
title: Production readiness
levels: [{title: Basic}, {title: Bronze}, {title: Silver}, {title: Gold}]
rules:
  - {identifier: has-owner, title: Has an owning team, level: Bronze,
     query: {combinator: and, conditions: [{property: $team, operator: isNotEmpty}]}}
  - {identifier: has-runbook, title: Runbook published, level: Bronze, due_days: 3,
     query: {combinator: and, conditions: [{property: runbook, operator: isNotEmpty}]}}
  - {identifier: has-oncall, title: On-call rotation assigned, level: Silver, due_days: 14,
     query: {combinator: and, conditions: [{property: facts.pd.oncall, operator: ">", value: 0}]}}
  - {identifier: slo, title: SLO defined, level: Gold,
     query: {combinator: and, conditions: [{property: slo, operator: isNotEmpty}]}}
"#;

const SECURITY: &str = r#"
identifier: security
title: Security
levels: [{title: Basic}, {title: Bronze}]
rules:
  - {identifier: sast, title: Static analysis in CI, level: Bronze,
     query: {combinator: and, conditions: [{property: sast, operator: isNotEmpty}]}}
"#;

const TIERS: &str = r#"
tiers:
  1: {name: Critical, require: {prod: Gold, security: Bronze}, task_due_days: 7, alert: [sre]}
  2: {name: Major, require: {prod: Silver}, task_due_days: 14}
untiered: {require: {prod: Bronze}}
"#;

const INITIATIVE: &str = r#"
identifier: oncall
title: On-call everywhere
owner: sre
deadline: 2024-06-30
targets:
  - {scorecard: prod, rules: [has-oncall]}
  - {scorecard: security, level: Bronze}
"#;

fn standards() -> Standards {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("scorecards/prod.yaml", PROD);
    write("scorecards/security.yaml", SECURITY);
    write("tiers.yaml", TIERS);
    write("initiatives/oncall.yaml", INITIATIVE);
    crate::standards::load_dir(dir.path(), &NoPlugins).expect("the test standards are valid")
}

fn channel(kind: ChannelKind, name: &str) -> ChannelConfig {
    ChannelConfig {
        kind,
        url: format!("http://127.0.0.1:9/{name}"),
        secret: Some("s".into()),
        secret_env: None,
    }
}

fn config() -> Config {
    let mut c = Config {
        public_url: "http://readyd.test".into(),
        ..Config::default()
    };
    c.channels = BTreeMap::from([
        ("sre".to_owned(), channel(ChannelKind::Slack, "sre")),
        ("pay-chan".to_owned(), channel(ChannelKind::Teams, "pay")),
        (
            "tracker".to_owned(),
            channel(ChannelKind::Webhook, "tracker"),
        ),
    ]);
    c.teams = BTreeMap::from([(
        "payments".to_owned(),
        TeamConfig {
            channel: Some("pay-chan".into()),
        },
    )]);
    c.routes = vec![
        RouteConfig {
            events: vec!["entity.degraded".into(), "entity.recovered".into()],
            tiers: vec![1],
            team_channel: true,
            channels: vec!["sre".into()],
            ..Default::default()
        },
        RouteConfig {
            events: vec![
                "task.created".into(),
                "task.done".into(),
                "task.overdue".into(),
                "task.due_soon".into(),
                "exemption.requested".into(),
                "exemption.expiring_soon".into(),
                "exemption.expired".into(),
                "initiative.deadline_approaching".into(),
            ],
            channels: vec!["tracker".into()],
            ..Default::default()
        },
    ];
    c
}

fn entity(id: &str, tier: Option<u8>) -> Entity {
    Entity {
        identifier: id.into(),
        kind: "service".into(),
        title: format!("{id} service"),
        team: Some("payments".into()),
        tier,
        properties: Default::default(),
        relations: Default::default(),
    }
}

fn start() -> Timestamp {
    Utc.with_ymd_and_hms(2024, 5, 1, 9, 0, 0).unwrap()
}

/// A result of `scorecard` with the given statuses (rules not listed pass), its level computed
/// with DESIGN.md's semantics, every rule changed at `changed_at`.
fn result(
    standards: &Standards,
    entity: &str,
    scorecard: &str,
    statuses: &[(&str, RuleStatus)],
    at: Timestamp,
    changed_at: Timestamp,
) -> ScorecardResult {
    let sc = standards.scorecard(scorecard).unwrap();
    let rules: Vec<RuleResult> = sc
        .rules
        .iter()
        .map(|r| {
            let status = statuses
                .iter()
                .find(|(id, _)| *id == &*r.identifier)
                .map_or(Pass, |(_, s)| *s);
            RuleResult {
                rule: r.identifier,
                level: r.level,
                status,
                message: (status != Pass)
                    .then(|| format!("{} is {}", r.identifier, status.as_str())),
                details: None,
                weight: 1.0,
                evaluated_at: at,
                changed_at,
            }
        })
        .collect();
    let mut level_index = 0;
    for i in 1..sc.levels.len() {
        let blocked = sc.rules.iter().zip(&rules).any(|(def, r)| {
            def.level_index <= i && r.status.is_applicable() && !r.status.counts_as_passed()
        });
        if blocked {
            break;
        }
        level_index = i;
    }
    ScorecardResult {
        entity: entity.into(),
        scorecard: scorecard.into(),
        level: sc.levels[level_index].title,
        level_index,
        percent: 0.0,
        score: 0.0,
        rules,
        evaluated_at: at,
    }
}

fn kinds(plan: &Plan) -> Vec<&'static str> {
    plan.events.iter().map(|e| e.kind.as_str()).collect()
}

fn channels_of(plan: &Plan, kind: EventKind) -> Vec<&str> {
    let id = &plan.events.iter().find(|e| e.kind == kind).unwrap().id;
    plan.notifications
        .iter()
        .filter(|n| &n.id == id)
        .map(|n| n.channel.as_str())
        .collect()
}

/// Evaluate and plan, the way the engine does.
struct Harness {
    standards: Standards,
    config: Config,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            standards: standards(),
            config: config(),
        }
    }

    fn ctx(&self) -> PlanContext<'_> {
        PlanContext {
            config: &self.config,
            standards: &self.standards,
        }
    }

    #[allow(clippy::too_many_arguments)] // reason: mirrors EvaluationChange field by field
    fn plan(
        &self,
        e: &Entity,
        previous: &[ScorecardResult],
        current: &[ScorecardResult],
        open: &[Task],
        degraded: Option<&DegradedAlert>,
        now: Timestamp,
    ) -> Plan {
        plan_evaluation(
            &EvaluationChange {
                entity: e,
                previous,
                current,
                open_tasks: &open.iter().collect::<Vec<_>>(),
                degraded,
                now,
            },
            &self.ctx(),
        )
    }

    fn results(
        &self,
        id: &str,
        prod: &[(&str, RuleStatus)],
        at: Timestamp,
    ) -> Vec<ScorecardResult> {
        vec![
            result(&self.standards, id, "prod", prod, at, at),
            result(&self.standards, id, "security", &[], at, at),
        ]
    }
}

fn task<'p>(plan: &'p Plan, rule: &str) -> &'p Task {
    plan.tasks.iter().find(|t| t.rule == rule).unwrap()
}

#[test]
fn tasks_take_the_rule_due_days_else_the_tier_default() {
    let h = Harness::new();
    let now = start();
    let pay = entity("pay", Some(1));
    let current = h.results(
        "pay",
        &[("has-owner", Fail), ("has-runbook", Fail), ("slo", Err_)],
        now,
    );
    let plan = h.plan(&pay, &[], &current, &[], None, now);
    assert_eq!(plan.tasks.len(), 3);
    assert_eq!(
        task(&plan, "has-runbook").due,
        now + Duration::days(3),
        "rule due_days"
    );
    assert_eq!(
        task(&plan, "has-owner").due,
        now + Duration::days(7),
        "tier 1 default"
    );
    // A check error is work too (the message says it is the check that failed).
    assert_eq!(task(&plan, "slo").due, now + Duration::days(7));
    let t = task(&plan, "has-owner");
    assert_eq!(t.status, TaskStatus::Open);
    assert_eq!(t.team.as_deref(), Some("payments"));
    assert_eq!(t.title, "Has an owning team");
    assert_eq!(t.message.as_deref(), Some("has-owner is fail"));
    assert_eq!(
        kinds(&plan)
            .iter()
            .filter(|k| **k == "task.created")
            .count(),
        3
    );

    // Untiered: only prod Bronze is required; the untiered policy sets no task_due_days → 30.
    let lib = entity("lib", None);
    let current = h.results(
        "lib",
        &[("has-runbook", Fail), ("has-owner", Fail), ("slo", Fail)],
        now,
    );
    let plan = h.plan(&lib, &[], &current, &[], None, now);
    let rules: Vec<&str> = plan.tasks.iter().map(|t| t.rule.as_str()).collect();
    assert_eq!(
        rules,
        ["has-owner", "has-runbook"],
        "slo (Gold) is not required"
    );
    assert_eq!(task(&plan, "has-owner").due, now + Duration::days(30));
    assert_eq!(task(&plan, "has-runbook").due, now + Duration::days(3));
}

#[test]
fn only_rules_the_tier_requires_get_tasks() {
    let h = Harness::new();
    let now = start();
    // Tier 2 requires prod Silver: has-oncall (Silver) gets a task, slo (Gold) does not.
    let e = entity("svc", Some(2));
    let current = h.results("svc", &[("has-oncall", Fail), ("slo", Fail)], now);
    let plan = h.plan(&e, &[], &current, &[], None, now);
    let rules: Vec<&str> = plan.tasks.iter().map(|t| t.rule.as_str()).collect();
    assert_eq!(rules, ["has-oncall"]);
    assert_eq!(task(&plan, "has-oncall").due, now + Duration::days(14));
    // Not applicable and warn are not failures.
    let current = h.results(
        "svc",
        &[("has-oncall", NA), ("has-owner", RuleStatus::Warn)],
        now,
    );
    assert!(h.plan(&e, &[], &current, &[], None, now).tasks.is_empty());
}

#[test]
fn one_open_task_per_rule_and_its_message_follows_the_evaluation() {
    let h = Harness::new();
    let t0 = start();
    let e = entity("pay", Some(1));
    let first = h.results("pay", &[("has-owner", Fail)], t0);
    let plan = h.plan(&e, &[], &first, &[], None, t0);
    let open = plan.tasks.clone();
    assert_eq!(open.len(), 1);

    // Still failing, same message: nothing at all.
    let t1 = t0 + Duration::hours(1);
    let again = h.results("pay", &[("has-owner", Fail)], t1);
    let plan = h.plan(&e, &first, &again, &open, None, t1);
    assert!(plan.tasks.is_empty(), "{:?}", plan.tasks);
    assert!(!kinds(&plan).contains(&"task.created"));

    // Still failing, another message: the same task is updated, silently.
    let mut changed = again.clone();
    changed[0].rules[0].message = Some("team was removed".into());
    let plan = h.plan(&e, &again, &changed, &open, None, t1);
    assert_eq!(plan.tasks.len(), 1);
    assert_eq!(plan.tasks[0].id, open[0].id);
    assert_eq!(plan.tasks[0].message.as_deref(), Some("team was removed"));
    assert_eq!(plan.tasks[0].due, open[0].due, "the deadline does not move");
    assert!(
        plan.events
            .iter()
            .all(|e| !e.kind.as_str().starts_with("task."))
    );

    // An overdue task stays the one task for its rule.
    let mut overdue = open.clone();
    overdue[0].status = TaskStatus::Overdue;
    let plan = h.plan(&e, &again, &again, &overdue, None, t1);
    assert!(plan.tasks.is_empty());
}

#[test]
fn tasks_are_done_when_the_rule_passes_is_exempt_or_is_no_longer_required() {
    let h = Harness::new();
    let t0 = start();
    let e = entity("pay", Some(1));
    let failing = h.results(
        "pay",
        &[("has-owner", Fail), ("has-runbook", Fail), ("slo", Fail)],
        t0,
    );
    let open = h.plan(&e, &[], &failing, &[], None, t0).tasks;
    assert_eq!(open.len(), 3);

    let t1 = t0 + Duration::days(1);
    let fixed = h.results("pay", &[("has-runbook", Exempt), ("slo", Fail)], t1);
    let plan = h.plan(&e, &failing, &fixed, &open, None, t1);
    let done: BTreeMap<&str, &Task> = plan
        .tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Done)
        .map(|t| (t.rule.as_str(), t))
        .collect();
    assert_eq!(
        done.keys().copied().collect::<Vec<_>>(),
        ["has-owner", "has-runbook"]
    );
    assert_eq!(done["has-owner"].closed_at, Some(t1));
    let reasons: Vec<String> = plan
        .events
        .iter()
        .filter(|e| e.kind == EventKind::TaskDone)
        .map(|e| e.data["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasons, ["the rule passes", "the rule is exempt"]);
    assert_eq!(channels_of(&plan, EventKind::TaskDone), ["tracker"]);

    // The tier is lowered to 2: slo (Gold) is no longer required.
    let still_open: Vec<Task> = open.iter().filter(|t| t.rule == "slo").cloned().collect();
    let lowered = entity("pay", Some(2));
    let plan = h.plan(&lowered, &fixed, &fixed, &still_open, None, t1);
    assert_eq!(plan.tasks.len(), 1);
    assert_eq!(plan.tasks[0].status, TaskStatus::Done);
    let done = plan
        .events
        .iter()
        .find(|e| e.kind == EventKind::TaskDone)
        .unwrap();
    assert_eq!(
        done.data["reason"],
        "the tier no longer requires this rule's level"
    );
}

#[test]
fn tasks_turn_overdue_under_a_manual_clock_with_one_reminder_before() {
    let h = Harness::new();
    let clock = Clock::manual(start());
    let e = entity("pay", Some(1));
    let current = h.results("pay", &[("has-runbook", Fail)], clock.now());
    let mut tasks = h.plan(&e, &[], &current, &[], None, clock.now()).tasks;
    assert_eq!(tasks[0].due, start() + Duration::days(3));
    let lookup = |id: &str| (id == "pay").then(|| entity("pay", Some(1)));
    let never = |_: &[&str]| false;
    let tick = |tasks: &[Task], now: Timestamp| {
        plan_tick(
            &TickInput {
                now,
                tasks,
                exemptions: &[],
                initiatives: &[],
                entity: &lookup,
                reminded: &never,
            },
            &h.ctx(),
        )
    };

    assert!(
        tick(&tasks, clock.now()).is_empty(),
        "three days left: nothing yet"
    );
    clock.advance(Duration::days(1) + Duration::hours(1));
    let plan = tick(&tasks, clock.now());
    assert_eq!(kinds(&plan), ["task.due_soon"]);
    assert!(plan.tasks[0].reminded);
    assert_eq!(plan.tasks[0].status, TaskStatus::Open);
    assert_eq!(channels_of(&plan, EventKind::TaskDueSoon), ["tracker"]);
    tasks = plan.tasks;
    assert!(
        tick(&tasks, clock.now()).is_empty(),
        "the reminder is sent once"
    );

    clock.advance(Duration::days(2));
    let plan = tick(&tasks, clock.now());
    assert_eq!(kinds(&plan), ["task.overdue"]);
    assert_eq!(plan.tasks[0].status, TaskStatus::Overdue);
    assert!(
        plan.events[0]
            .message
            .contains("is overdue (due 2024-05-04)"),
        "{}",
        plan.events[0].message
    );
    tasks = plan.tasks;
    assert!(
        tick(&tasks, clock.now()).is_empty(),
        "overdue is announced once"
    );

    // The rule passes later: an overdue task is done like an open one.
    let fixed = h.results("pay", &[], clock.now());
    let plan = h.plan(&e, &current, &fixed, &tasks, None, clock.now());
    assert_eq!(plan.tasks[0].status, TaskStatus::Done);
}

#[test]
fn a_degraded_service_is_alerted_once_and_its_recovery_once() {
    let h = Harness::new();
    let t0 = start();
    let e = entity("payments-api", Some(1));
    let healthy = h.results("payments-api", &[], t0);
    assert!(h.plan(&e, &[], &healthy, &[], None, t0).events.is_empty());

    let t1 = t0 + Duration::minutes(5);
    let mut broken = h.results("payments-api", &[("has-oncall", Fail)], t1);
    broken[0].rules[2].message = Some("facts.pd.oncall is 0, required > 0".into());
    let plan = h.plan(&e, &healthy, &broken, &[], None, t1);
    let degraded = plan
        .events
        .iter()
        .find(|e| e.kind == EventKind::EntityDegraded)
        .expect("degraded");
    assert_eq!(
        degraded.message,
        "payments-api (Tier 1, team payments) fell below Gold on prod: blocking has-oncall \
         (facts.pd.oncall is 0, required > 0)"
    );
    assert_eq!(degraded.blocking.len(), 1);
    assert_eq!(degraded.link, "http://readyd.test/#/entities/payments-api");
    // Route (sre + the team's channel) and the tier's alert list (sre again), deduplicated.
    assert_eq!(
        channels_of(&plan, EventKind::EntityDegraded),
        ["sre", "pay-chan"]
    );
    let alert = match &plan.alert_changes[..] {
        [AlertChange::Degraded { entity, alert }] if entity == "payments-api" => alert.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(alert.scorecards, ["prod"]);

    // It stays degraded, even with another rule failing too: no new alert.
    let t2 = t1 + Duration::minutes(5);
    let worse = h.results("payments-api", &[("has-oncall", Fail), ("slo", Fail)], t2);
    let plan = h.plan(&e, &broken, &worse, &[], Some(&alert), t2);
    assert!(!kinds(&plan).contains(&"entity.degraded"));
    assert!(plan.alert_changes.is_empty());

    // Recovery: once, then silence.
    let t3 = t2 + Duration::minutes(5);
    let fixed = h.results("payments-api", &[], t3);
    let plan = h.plan(&e, &worse, &fixed, &[], Some(&alert), t3);
    assert_eq!(
        kinds(&plan)
            .iter()
            .filter(|k| **k == "entity.recovered")
            .count(),
        1
    );
    assert_eq!(
        channels_of(&plan, EventKind::EntityRecovered),
        ["sre", "pay-chan"]
    );
    assert!(matches!(
        &plan.alert_changes[..],
        [AlertChange::Recovered { .. }]
    ));
    let plan = h.plan(&e, &fixed, &fixed, &[], None, t3 + Duration::minutes(5));
    assert!(plan.events.is_empty());
}

#[test]
fn rule_and_level_transitions_are_events_but_a_baseline_is_not() {
    let h = Harness::new();
    let t0 = start();
    let e = entity("svc", Some(3)); // tier 3 has no entry: the untiered policy applies
    let first = h.results("svc", &[("slo", Fail)], t0);
    let plan = h.plan(&e, &[], &first, &[], None, t0);
    assert!(plan.events.is_empty(), "a baseline: {:?}", kinds(&plan));

    let t1 = t0 + Duration::hours(1);
    let mut second = h.results("svc", &[("has-oncall", Fail)], t1);
    // slo passes again (it changed now); has-oncall fails (it changed now).
    for r in &mut second[0].rules {
        r.changed_at = t1;
    }
    let plan = h.plan(&e, &first, &second, &[], None, t1);
    assert_eq!(
        kinds(&plan),
        ["rule.failed", "rule.passed", "level.degraded"]
    );
    let level = &plan.events[2];
    assert_eq!(level.from_level.as_deref(), Some("Silver"));
    assert_eq!(level.to_level.as_deref(), Some("Bronze"));
    assert_eq!(level.blocking[0].rule, "has-oncall");
    assert!(
        level
            .message
            .contains("dropped from Silver to Bronze on prod")
    );
    // Nothing routes rule or level events in this configuration.
    assert!(plan.notifications.is_empty());

    let t2 = t1 + Duration::hours(1);
    let third = h.results("svc", &[], t2);
    let plan = h.plan(&e, &second, &third, &[], None, t2);
    assert_eq!(kinds(&plan), ["rule.passed", "level.improved"]);
    assert_eq!(plan.events[1].to_level.as_deref(), Some("Gold"));
}

#[test]
fn replaying_an_evaluation_yields_the_same_ids_and_idempotency_keys() {
    let h = Harness::new();
    let t0 = start();
    let e = entity("pay", Some(1));
    let healthy = h.results("pay", &[], t0);
    let broken = h.results("pay", &[("has-owner", Fail)], t0 + Duration::minutes(1));
    let a = h.plan(&e, &healthy, &broken, &[], None, t0 + Duration::minutes(1));
    let b = h.plan(&e, &healthy, &broken, &[], None, t0 + Duration::minutes(1));
    assert!(!a.notifications.is_empty());
    assert_eq!(a, b);
    let keys: std::collections::BTreeSet<&str> = a
        .notifications
        .iter()
        .map(|n| n.idempotency_key.as_str())
        .collect();
    assert_eq!(
        keys.len(),
        a.notifications.len(),
        "one key per (event, channel)"
    );
    for n in &a.notifications {
        assert_eq!(
            n.idempotency_key,
            events::idempotency_key(&n.id, &n.channel)
        );
    }
    // The webhook channel gets the event itself, the chat channels their own shapes.
    let hook = a
        .notifications
        .iter()
        .find(|n| n.channel == "tracker")
        .unwrap();
    assert_eq!(hook.payload["event"]["kind"], "task.created");
    let slack = a.notifications.iter().find(|n| n.channel == "sre").unwrap();
    assert!(slack.payload["blocks"].is_array());
    let teams = a
        .notifications
        .iter()
        .find(|n| n.channel == "pay-chan")
        .unwrap();
    assert_eq!(teams.payload["type"], "message");
}

fn exemption(id: &str, until: Timestamp, status: ExemptionStatus) -> Exemption {
    Exemption {
        id: id.into(),
        entity: "pay".into(),
        scorecard: "prod".into(),
        rule: Some("has-oncall".into()),
        reason: "rotation starts in June".into(),
        until,
        requested_by: "pat".into(),
        requested_at: start(),
        status,
        history: vec![AuditEntry {
            actor: "pat".into(),
            action: "requested".into(),
            at: start(),
            note: None,
        }],
    }
}

#[test]
fn exemptions_are_reminded_once_then_expire() {
    let h = Harness::new();
    let until = start() + Duration::days(10);
    let approved = [
        exemption("ex-1", until, ExemptionStatus::Approved),
        exemption("ex-2", until, ExemptionStatus::Denied),
    ];
    let lookup = |id: &str| (id == "pay").then(|| entity("pay", Some(1)));
    let mut markers: Vec<Vec<String>> = Vec::new();
    let tick = |now: Timestamp, markers: &mut Vec<Vec<String>>| {
        let known = markers.clone();
        let reminded = move |key: &[&str]| known.iter().any(|k| k == key);
        let plan = plan_tick(
            &TickInput {
                now,
                tasks: &[],
                exemptions: &approved,
                initiatives: &[],
                entity: &lookup,
                reminded: &reminded,
            },
            &h.ctx(),
        );
        for change in &plan.alert_changes {
            match change {
                AlertChange::Reminded { key, .. } => markers.push(key.clone()),
                AlertChange::Forget { key } => markers.retain(|k| k != key),
                other => panic!("{other:?}"),
            }
        }
        plan
    };
    assert!(tick(start() + Duration::days(6), &mut markers).is_empty());
    let plan = tick(start() + Duration::days(8), &mut markers);
    assert_eq!(kinds(&plan), ["exemption.expiring_soon"]);
    assert_eq!(
        channels_of(&plan, EventKind::ExemptionExpiringSoon),
        ["tracker"]
    );
    assert!(
        tick(start() + Duration::days(9), &mut markers).is_empty(),
        "once"
    );

    let plan = tick(until, &mut markers);
    assert_eq!(kinds(&plan), ["exemption.expired"]);
    let expired: Vec<&Exemption> = plan.expired_exemptions().collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].id, "ex-1");
    assert_eq!(expired[0].history.last().unwrap().action, "expired");
    assert_eq!(plan.audit[0].0, "exemption");
    assert!(markers.is_empty(), "the reminder marker is forgotten");
}

#[test]
fn decisions_and_nudges_are_announced() {
    let h = Harness::new();
    let now = start();
    let e = entity("pay", Some(1));
    let requested = exemption("ex-1", now + Duration::days(30), ExemptionStatus::Pending);
    let plan = plan_decision(
        Decision::Exemption {
            exemption: &requested,
            kind: EventKind::ExemptionRequested,
        },
        &e,
        &h.ctx(),
        now,
    );
    assert_eq!(kinds(&plan), ["exemption.requested"]);
    assert!(
        plan.events[0]
            .message
            .contains("pat asks for an exemption from prod/has-oncall")
    );
    assert_eq!(
        channels_of(&plan, EventKind::ExemptionRequested),
        ["tracker"]
    );
    let mut approved = requested.clone();
    approved.status = ExemptionStatus::Approved;
    approved.history.push(AuditEntry {
        actor: "sam".into(),
        action: "approved".into(),
        at: now,
        note: Some("ok for a month".into()),
    });
    let decided = plan_decision(
        Decision::Exemption {
            exemption: &approved,
            kind: EventKind::ExemptionApproved,
        },
        &e,
        &h.ctx(),
        now,
    );
    assert_ne!(decided.events[0].id, plan.events[0].id);
    assert!(
        decided.events[0]
            .message
            .contains("approved by sam until 2024-05-31: ok for a month")
    );

    let request = TierRequest {
        id: "tr-1".into(),
        entity: "pay".into(),
        from: Some(2),
        to: Some(1),
        reason: "now takes card payments".into(),
        requested_by: "pat".into(),
        requested_at: now,
        status: TierRequestStatus::Approved,
        history: vec![AuditEntry {
            actor: "sam".into(),
            action: "approved".into(),
            at: now,
            note: None,
        }],
    };
    let plan = plan_decision(
        Decision::TierRequest { request: &request },
        &e,
        &h.ctx(),
        now,
    );
    assert_eq!(kinds(&plan), ["tier_request.decided"]);
    assert!(
        plan.events[0]
            .message
            .contains("from Tier 2 to Tier 1 approved by sam")
    );

    // A nudge goes to the team's channel even though no route names entity.nudge.
    let results = h.results("pay", &[("has-oncall", Fail)], now);
    let misses = crate::eval::tier_misses(&e, &results, &h.standards);
    let open = h.plan(&e, &[], &results, &[], None, now).tasks;
    let plan = plan_nudge(&e, &misses, &open, &h.ctx(), now);
    assert_eq!(kinds(&plan), ["entity.nudge"]);
    assert_eq!(channels_of(&plan, EventKind::EntityNudge), ["pay-chan"]);
    assert!(
        plan.events[0].message.contains(
            "is below Gold on prod: blocking has-oncall (has-oncall is fail). 1 open task"
        ),
        "{}",
        plan.events[0].message
    );
}

#[test]
fn initiative_progress_and_its_deadline_reminder() {
    let h = Harness::new();
    let initiative = h.standards.initiative("oncall").unwrap();
    let now = Utc.with_ymd_and_hms(2024, 6, 20, 0, 0, 0).unwrap();
    let mut unowned = entity("c", Some(2));
    unowned.team = None;
    let entities = [entity("a", Some(1)), entity("b", Some(1)), unowned];
    let mut results = std::collections::HashMap::new();
    results.insert("a".to_owned(), Arc::new(h.results("a", &[], now)));
    results.insert(
        "b".to_owned(),
        Arc::new(h.results("b", &[("has-oncall", Fail)], now)),
    );
    let mut c = h.results("c", &[], now);
    c[1] = result(&h.standards, "c", "security", &[("sast", Fail)], now, now);
    results.insert("c".to_owned(), Arc::new(c));
    let tasks = h
        .plan(&entities[1], &[], &results["b"], &[], None, now)
        .tasks;
    let in_scope = |_: &Entity| true;
    let p = progress(
        initiative,
        &h.standards,
        &entities,
        &in_scope,
        &results,
        &[exemption(
            "ex-1",
            now + Duration::days(5),
            ExemptionStatus::Pending,
        )],
        &tasks,
        now,
    );
    assert_eq!((p.overall.meeting, p.overall.total), (1, 3));
    assert_eq!(p.overall.percent, 33.3);
    assert_eq!(p.state, InitiativeState::AtRisk, "10 days left, 33 %");
    assert_eq!(p.teams.len(), 2);
    assert_eq!(p.teams[0].team.as_deref(), Some("payments"));
    assert_eq!((p.teams[0].tally.meeting, p.teams[0].tally.total), (1, 2));
    assert_eq!(p.teams[1].team, None, "entities without a team come last");
    let b = p.non_compliant.iter().find(|n| n.entity == "b").unwrap();
    assert_eq!(b.failing[0].rule, "has-oncall");
    assert!(b.open_tasks.iter().any(|t| t.rule == "has-oncall"));
    let c = p.non_compliant.iter().find(|n| n.entity == "c").unwrap();
    assert_eq!(c.failing[0].rule, "sast");
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["state"], "at_risk");
    assert_eq!(json["teams"][0]["percent"], 50.0);

    // Past the deadline and not done: overdue. Everyone passing: done.
    let late = Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap();
    let q = progress(
        initiative,
        &h.standards,
        &entities,
        &in_scope,
        &results,
        &[],
        &[],
        late,
    );
    assert_eq!(q.state, InitiativeState::Overdue);
    let none = |_: &Entity| false;
    let r = progress(
        initiative,
        &h.standards,
        &entities,
        &none,
        &results,
        &[],
        &[],
        now,
    );
    assert_eq!((r.state, r.overall.percent), (InitiativeState::Done, 100.0));

    // The deadline reminder: 14 days before, once per deadline.
    let lookup = |_: &str| None;
    let tick = |now: Timestamp, reminded: &dyn Fn(&[&str]) -> bool| {
        plan_tick(
            &TickInput {
                now,
                tasks: &[],
                exemptions: &[],
                initiatives: std::slice::from_ref(&p),
                entity: &lookup,
                reminded,
            },
            &h.ctx(),
        )
    };
    let early = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
    assert!(tick(early, &|_| false).is_empty());
    let plan = tick(now, &|_| false);
    assert_eq!(kinds(&plan), ["initiative.deadline_approaching"]);
    assert_eq!(plan.events[0].team.as_deref(), Some("sre"));
    assert_eq!(
        plan.events[0].link,
        "http://readyd.test/#/initiatives/oncall"
    );
    assert!(
        plan.events[0].message.contains("1 of 3 entities"),
        "{}",
        plan.events[0].message
    );
    assert_eq!(
        channels_of(&plan, EventKind::InitiativeDeadlineApproaching),
        ["tracker"]
    );
    let key = plan::initiative_reminder_key("oncall", "2024-06-30");
    assert!(tick(now, &|k| k == key).is_empty(), "once per deadline");
}

#[test]
fn a_plan_commits_tasks_alert_state_and_notifications_in_one_batch() {
    let h = Harness::new();
    let store = Store::in_memory().unwrap();
    let now = start();
    let e = entity("pay", Some(1));
    let broken = h.results("pay", &[("has-oncall", Fail)], now);
    let plan = h.plan(&e, &[], &broken, &[], None, now);
    let mut batch = WriteBatch::new();
    plan.apply_to(&mut batch);
    let stats = store.commit(batch, Durability::Immediate).unwrap();
    assert_eq!(stats.outbox_enqueued.len(), plan.notifications.len());

    let alert: DegradedAlert = store
        .alert_state(&degraded_key("pay"))
        .unwrap()
        .expect("the alert state is stored");
    let task = store
        .open_task("pay", "prod", "has-oncall")
        .unwrap()
        .expect("the task");
    assert_eq!(task.due, now + Duration::days(14));
    let outbox = store.outbox().unwrap();
    assert_eq!(outbox.len(), plan.notifications.len());

    // The engine's next evaluation reads that state back: nothing new is planned.
    let later = now + Duration::minutes(1);
    let again = h.results("pay", &[("has-oncall", Fail)], later);
    let plan = h.plan(&e, &broken, &again, &[task], Some(&alert), later);
    assert!(plan.is_empty(), "{plan:?}");

    // Committing the same plan twice (a replay) queues nothing twice.
    let first = h.plan(
        &entity("other", Some(1)),
        &[],
        &h.results("other", &[("slo", Fail)], now),
        &[],
        None,
        now,
    );
    let mut batch = WriteBatch::new();
    first.apply_to(&mut batch);
    let enqueued = store
        .commit(batch, Durability::Immediate)
        .unwrap()
        .outbox_enqueued
        .len();
    assert!(enqueued > 0);
    let mut batch = WriteBatch::new();
    for n in &first.notifications {
        batch.enqueue_outbox(n);
    }
    let stats = store.commit(batch, Durability::Immediate).unwrap();
    assert_eq!(stats.outbox_duplicates, enqueued);
}
