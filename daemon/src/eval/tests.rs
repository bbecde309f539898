//! Tests of the evaluator: operators, missing data, messages, levels, percent and score,
//! exemptions, check outcomes, `changed_at`, tier misses.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{Duration, TimeZone, Utc};
use serde_json::{Value, json};

use super::*;
use crate::model::{ExemptionStatus, FactRecord, JsonObject};
use crate::standards::{AnyPlugins, Query, Standards, parse_scorecard};

pub(super) fn now() -> Timestamp {
    Utc.with_ymd_and_hms(2024, 6, 15, 12, 0, 0).unwrap()
}

pub(super) fn entity() -> Entity {
    let properties = json!({
        "language": "rust",
        "lifecycle": "production",
        "replicas": 3,
        "replicas_text": "3",
        "ratio": 0.5,
        "public": true,
        "empty_text": "",
        "empty_list": [],
        "empty_object": {},
        "nothing": null,
        "tags": ["pci", "payments", 7],
        "runbook": "https://wiki/payments",
        "version": "v1.6.2",
        "float_version": 1.4,
        "released": "2024-06-10",
        "reviewed_at": "2024-06-15T08:30:00Z",
        "annotations": {"pagerduty.com/service-id": "P123", "a": {"b": 1}},
        "owners": [{"name": "ana"}, {"name": "bo"}],
        "nested": {"deep": {"value": "x"}}
    });
    Entity {
        identifier: "payments".into(),
        kind: "service".into(),
        title: "Payments API".into(),
        team: Some("payments".into()),
        tier: Some(1),
        properties: properties.as_object().unwrap().clone(),
        relations: BTreeMap::from([(
            "dependsOn".to_owned(),
            vec!["ledger".to_owned(), "db".to_owned()],
        )]),
    }
}

pub(super) fn facts(source: &str, value: Value) -> EntityFacts {
    BTreeMap::from([(
        source.to_owned(),
        FactRecord {
            source: source.to_owned(),
            facts: value.as_object().cloned().unwrap_or_default(),
            collected_at: now(),
            plugin_version: "v1".into(),
            stale_reason: None,
        },
    )])
}

fn query(conditions: Value) -> Query {
    Query::from_value(&json!({"combinator": "and", "conditions": conditions})).unwrap()
}

/// Whether `{property, operator, value}` holds for [`entity`] with pagerduty facts.
fn holds(property: &str, operator: &str, value: Option<Value>) -> bool {
    let mut c = json!({"property": property, "operator": operator});
    if let Some(v) = value {
        c["value"] = v;
    }
    let q = query(json!([c]));
    query_holds(&q, &entity(), &pd_facts(), now())
}

fn why(property: &str, operator: &str, value: Option<Value>) -> String {
    let mut c = json!({"property": property, "operator": operator});
    if let Some(v) = value {
        c["value"] = v;
    }
    explain_query(&query(json!([c])), &entity(), &pd_facts(), now()).expect("the condition fails")
}

fn pd_facts() -> EntityFacts {
    facts(
        "pagerduty",
        json!({"oncall_count": 0, "schedules": [{"id": "S1"}], "service": {"name": "payments"}}),
    )
}

#[test]
fn operators() {
    let rows: Vec<(&str, &str, Value, bool)> = vec![
        ("$kind", "=", json!("service"), true),
        ("$kind", "!=", json!("service"), false),
        ("$tier", "=", json!(1), true),
        ("$tier", "=", json!("1"), true),
        ("$tier", "<=", json!(2), true),
        ("$tier", ">", json!(1), false),
        ("$team", "=", json!("payments"), true),
        ("$title", "beginsWith", json!("Payments"), true),
        ("$identifier", "endsWith", json!("ments"), true),
        ("replicas", "=", json!(3), true),
        ("replicas", "=", json!(3.0), true),
        ("replicas_text", "=", json!(3), true),
        ("replicas_text", ">=", json!(3), true),
        ("replicas", "!=", json!(4), true),
        ("ratio", "<", json!(1), true),
        ("ratio", ">", json!("0.25"), true),
        ("public", "=", json!(true), true),
        ("public", "=", json!("true"), true),
        ("public", "!=", json!(false), true),
        ("language", "<", json!("zig"), true),
        ("language", ">", json!("zig"), false),
        ("language", "in", json!(["go", "rust"]), true),
        ("language", "notIn", json!(["go", "rust"]), false),
        ("replicas", "in", json!([1, 3]), true),
        ("tags", "contains", json!("pci"), true),
        ("tags", "contains", json!(7), true),
        ("tags", "doesNotContains", json!("sox"), true),
        ("tags", "containsAny", json!(["sox", "payments"]), true),
        ("tags", "containsAny", json!(["sox", "hipaa"]), false),
        ("runbook", "contains", json!("wiki"), true),
        ("runbook", "doesNotContains", json!("wiki"), false),
        (
            "runbook",
            "containsAny",
            json!(["confluence", "wiki/"]),
            true,
        ),
        ("runbook", "beginsWith", json!("https://"), true),
        ("runbook", "doesNotBeginsWith", json!("http://"), true),
        ("runbook", "endsWith", json!("/payments"), true),
        ("runbook", "doesNotEndsWith", json!("/payments"), false),
        ("runbook", "matchesRegex", json!("^https://[a-z]+/"), true),
        ("runbook", "matchesRegex", json!("^http://"), false),
        ("version", "satisfiesVersion", json!(">=1.4, <2"), true),
        ("version", "satisfiesVersion", json!("^2"), false),
        ("float_version", "satisfiesVersion", json!(">=1.4"), true),
        ("released", ">", json!("2024-06-01"), true),
        ("released", "<", json!("2024-06-01T00:00:00Z"), false),
        ("reviewed_at", ">=", json!("2024-06-15"), true),
        (
            "released",
            "between",
            json!({"from": "2024-06-01", "to": "2024-06-10"}),
            true,
        ),
        (
            "released",
            "between",
            json!({"from": "2024-06-11", "to": "2024-06-30"}),
            false,
        ),
        (
            "released",
            "notBetween",
            json!({"from": "2024-06-11", "to": "2024-06-30"}),
            true,
        ),
        ("released", "between", json!("lastWeek"), true),
        ("released", "between", json!("today"), false),
        ("reviewed_at", "between", json!("today"), true),
        ("reviewed_at", "notBetween", json!("yesterday"), true),
        ("released", "between", json!("lastMonth"), true),
        ("replicas", "between", json!({"from": 1, "to": 3}), true),
        ("empty_text", "isEmpty", Value::Null, true),
        ("empty_list", "isEmpty", Value::Null, true),
        ("empty_object", "isEmpty", Value::Null, true),
        ("nothing", "isEmpty", Value::Null, true),
        ("absent", "isEmpty", Value::Null, true),
        ("replicas", "isEmpty", Value::Null, false),
        ("public", "isNotEmpty", Value::Null, true),
        ("tags", "isNotEmpty", Value::Null, true),
        ("empty_list", "isNotEmpty", Value::Null, false),
        ("relations.dependsOn", "contains", json!("ledger"), true),
        ("relations.dependsOn", "isNotEmpty", Value::Null, true),
        ("relations.dependsOn", "=", json!(["ledger", "db"]), true),
        ("relations.consumesApis", "isEmpty", Value::Null, true),
        (
            "annotations.pagerduty.com/service-id",
            "=",
            json!("P123"),
            true,
        ),
        ("annotations.a.b", "=", json!(1), true),
        ("properties.language", "=", json!("rust"), true),
        ("owners.1.name", "=", json!("bo"), true),
        ("owners.2.name", "isEmpty", Value::Null, true),
        ("nested.deep.value", "=", json!("x"), true),
        ("facts.pagerduty.oncall_count", ">", json!(0), false),
        ("facts.pagerduty.oncall_count", ">=", json!(0), true),
        ("facts.pagerduty.schedules.0.id", "=", json!("S1"), true),
        ("facts.pagerduty", "isNotEmpty", Value::Null, true),
        ("facts.github", "isEmpty", Value::Null, true),
        // Values of a kind the operator cannot compare fail, negations included.
        ("tags", "beginsWith", json!("pci"), false),
        ("tags", "doesNotBeginsWith", json!("x"), false),
        ("language", ">", json!(3), false),
        ("language", "<=", json!(3), false),
        ("language", "between", json!("lastWeek"), false),
        ("language", "notBetween", json!("lastWeek"), false),
        ("tags", "notIn", json!(["x"]), false),
        ("replicas", "doesNotContains", json!("x"), false),
        ("language", "satisfiesVersion", json!("*"), false),
    ];
    for (property, operator, value, expected) in rows {
        let value = (!value.is_null()).then_some(value);
        assert_eq!(
            holds(property, operator, value.clone()),
            expected,
            "{property} {operator} {value:?}"
        );
    }
}

#[test]
fn missing_data_is_true_only_for_is_empty() {
    let cases: Vec<(&str, Option<Value>)> = vec![
        ("=", Some(json!("x"))),
        ("!=", Some(json!("x"))),
        ("<", Some(json!(1))),
        (">", Some(json!(1))),
        ("<=", Some(json!(1))),
        (">=", Some(json!(1))),
        ("contains", Some(json!("x"))),
        ("doesNotContains", Some(json!("x"))),
        ("containsAny", Some(json!(["x"]))),
        ("beginsWith", Some(json!("x"))),
        ("doesNotBeginsWith", Some(json!("x"))),
        ("endsWith", Some(json!("x"))),
        ("doesNotEndsWith", Some(json!("x"))),
        ("isEmpty", None),
        ("isNotEmpty", None),
        ("in", Some(json!(["x"]))),
        ("notIn", Some(json!(["x"]))),
        ("between", Some(json!("lastWeek"))),
        (
            "notBetween",
            Some(json!({"from": "2020-01-01", "to": "2020-02-01"})),
        ),
        ("matchesRegex", Some(json!("x"))),
        ("satisfiesVersion", Some(json!(">=1"))),
    ];
    assert_eq!(cases.len(), crate::standards::Operator::ALL.len());
    for path in [
        "absent",
        "nothing",
        "nested.nope",
        "facts.github.stars",
        "facts.pagerduty.nope",
        "relations.nope",
        "owners.9",
    ] {
        for (operator, value) in &cases {
            let held = holds(path, operator, value.clone());
            assert_eq!(held, *operator == "isEmpty", "{path} {operator}");
            if !held {
                let message = why(path, operator, value.clone());
                assert!(
                    message.starts_with(&format!("{path} is missing, required {operator}")),
                    "{message}"
                );
            }
        }
    }
    // The built-ins that can be absent.
    let mut e = entity();
    e.team = None;
    e.tier = None;
    let q = query(json!([{"property": "$team", "operator": "isNotEmpty"}]));
    assert_eq!(
        explain_query(&q, &e, &EntityFacts::new(), now()).unwrap(),
        "$team is missing, required isNotEmpty"
    );
    let q = query(json!([{"property": "$tier", "operator": "!=", "value": 3}]));
    assert!(!query_holds(&q, &e, &EntityFacts::new(), now()));
}

#[test]
fn messages_in_plain_words() {
    assert_eq!(
        why("facts.pagerduty.oncall_count", ">", Some(json!(0))),
        "facts.pagerduty.oncall_count is 0, required > 0"
    );
    assert_eq!(
        why("$kind", "=", Some(json!("website"))),
        "$kind is \"service\", required = \"website\""
    );
    assert_eq!(
        why("language", ">", Some(json!(3))),
        "language is \"rust\" (not a number), required > 3"
    );
    assert_eq!(
        why("empty_list", "isNotEmpty", None),
        "empty_list is [], required isNotEmpty"
    );
    let q = Query::from_value(&json!({"combinator": "or", "conditions": [
        {"property": "facts.pagerduty.oncall_count", "operator": ">", "value": 0},
        {"combinator": "and", "conditions": [
            {"property": "$kind", "operator": "=", "value": "service"},
            {"property": "oncall_exempt_reason", "operator": "isNotEmpty"}
        ]}
    ]}))
    .unwrap();
    assert_eq!(
        explain_query(&q, &entity(), &pd_facts(), now()).unwrap(),
        "or: none of 2 conditions held: facts.pagerduty.oncall_count is 0, required > 0; \
         oncall_exempt_reason is missing, required isNotEmpty"
    );
    assert_eq!(
        explain_query(
            &query(json!([{"property": "$kind", "operator": "isNotEmpty"}])),
            &entity(),
            &pd_facts(),
            now()
        ),
        None
    );
}

pub(super) fn card(yaml: &str) -> Scorecard {
    parse_scorecard(Path::new("t.yaml"), yaml, &AnyPlugins).unwrap()
}

const LADDER: &str = r#"identifier: pr
levels: [{title: Basic}, {title: Bronze}, {title: Silver}, {title: Gold}, {title: Platinum}]
rules:
  - {identifier: b1, level: Bronze, query: {combinator: and, conditions: [{property: $team, operator: isNotEmpty}]}}
  - {identifier: b2, level: Bronze, query: {combinator: and, conditions: [{property: runbook, operator: isNotEmpty}]}}
  - {identifier: s1, level: Silver, weight: 3, query: {combinator: and, conditions: [{property: replicas, operator: ">=", value: 2}]}}
  - {identifier: g1, level: Gold, query: {combinator: and, conditions: [{property: facts.pagerduty.oncall_count, operator: ">", value: 0}]}}
  - {identifier: g2, level: Gold, filter: {combinator: and, conditions: [{property: $tier, operator: ">=", value: 2}]}, query: {combinator: and, conditions: [{property: x, operator: isNotEmpty}]}}
"#;

fn input<'a>(
    e: &'a Entity,
    f: &'a EntityFacts,
    ex: &'a [Exemption],
    checks: &'a dyn CheckResults,
) -> EvalInput<'a> {
    EvalInput {
        entity: e,
        facts: f,
        exemptions: ex,
        now: now(),
        checks,
        previous: None,
    }
}

#[test]
fn levels_percent_and_score() {
    let card = card(LADDER);
    let (e, f) = (entity(), pd_facts());
    let r = evaluate_scorecard(&input(&e, &f, &[], &NoChecks), &card).unwrap();
    let statuses: Vec<_> = r.rules.iter().map(|r| (&*r.rule, r.status)).collect();
    assert_eq!(
        statuses,
        [
            ("b1", RuleStatus::Pass),
            ("b2", RuleStatus::Pass),
            ("s1", RuleStatus::Pass),
            ("g1", RuleStatus::Fail),
            ("g2", RuleStatus::NotApplicable),
        ]
    );
    // Gold fails, so Silver; Platinum has no rules but Gold below it is not reached.
    assert_eq!((r.level.as_str(), r.level_index), ("Silver", 2));
    assert_eq!(r.percent, 75.0);
    assert_eq!(r.score, 5.0 / 6.0 * 100.0);
    assert_eq!(
        r.rules[3].message.as_deref(),
        Some("facts.pagerduty.oncall_count is 0, required > 0")
    );
    assert!(r.rules[0].message.is_none());
    assert_eq!(
        (r.entity.as_str(), r.scorecard.as_str()),
        ("payments", "pr")
    );
    assert_eq!(r.rules[2].weight, 3.0);
    assert_eq!(&*r.rules[2].level, "Silver");

    // All pass: the empty top level is reached as well.
    let good = facts("pagerduty", json!({"oncall_count": 2}));
    let r = evaluate_scorecard(&input(&e, &good, &[], &NoChecks), &card).unwrap();
    assert_eq!(
        (r.level.as_str(), r.level_index, r.percent),
        ("Platinum", 4, 100.0)
    );

    // DESIGN.md: passing all Silver rules but one of two Bronze rules leaves the first level.
    let mut no_runbook = entity();
    no_runbook.properties.remove("runbook");
    let r = evaluate_scorecard(&input(&no_runbook, &good, &[], &NoChecks), &card).unwrap();
    assert_eq!((r.level.as_str(), r.level_index), ("Basic", 0));
    assert_eq!(r.percent, 75.0);
}

#[test]
fn no_applicable_rule_is_one_hundred_percent() {
    let card = card(
        "identifier: x\nlevels: [{title: A}, {title: B}]\nrules:\n  - {identifier: r, level: B, filter: {combinator: and, conditions: [{property: $kind, operator: '=', value: library}]}, query: {combinator: and, conditions: [{property: a, operator: isEmpty}]}}\n",
    );
    let (e, f) = (entity(), EntityFacts::new());
    let r = evaluate_scorecard(&input(&e, &f, &[], &NoChecks), &card).unwrap();
    assert_eq!((r.percent, r.score, r.level_index), (100.0, 100.0, 1));
    let empty = self::card("identifier: y\nlevels: [{title: Only}]\n");
    let r = evaluate_scorecard(&input(&e, &f, &[], &NoChecks), &empty).unwrap();
    assert_eq!(
        (r.level.as_str(), r.percent, r.rules.len()),
        ("Only", 100.0, 0)
    );
}

#[test]
fn scorecard_filter_excludes() {
    let card = card(
        "identifier: x\nfilter: {combinator: and, conditions: [{property: $kind, operator: '=', value: library}]}\nlevels: [{title: A}]\n",
    );
    let (e, f) = (entity(), EntityFacts::new());
    assert!(!applies(&card, &e, &f, now()));
    assert!(evaluate_scorecard(&input(&e, &f, &[], &NoChecks), &card).is_none());
    let mut lib = entity();
    lib.kind = "library".into();
    assert!(applies(&card, &lib, &f, now()));
}

fn exemption(rule: Option<&str>, status: ExemptionStatus, until: Timestamp) -> Exemption {
    Exemption {
        id: "ex-1".into(),
        entity: "payments".into(),
        scorecard: "pr".into(),
        rule: rule.map(str::to_owned),
        reason: "migrating to the new pager".into(),
        until,
        requested_by: "ana".into(),
        requested_at: now() - Duration::days(3),
        status,
        history: vec![],
    }
}

#[test]
fn exemptions_turn_only_non_passing_rules_into_exempt() {
    let card = card(LADDER);
    let (e, f) = (entity(), pd_facts());
    let later = now() + Duration::days(10);
    let ex = [exemption(Some("g1"), ExemptionStatus::Approved, later)];
    let r = evaluate_scorecard(&input(&e, &f, &ex, &NoChecks), &card).unwrap();
    assert_eq!(r.rules[3].status, RuleStatus::Exempt);
    let message = r.rules[3].message.as_deref().unwrap();
    assert_eq!(
        message,
        "exempt until 2024-06-25 12:00 UTC (exemption ex-1: migrating to the new pager); \
         otherwise fail: facts.pagerduty.oncall_count is 0, required > 0"
    );
    assert_eq!((r.level.as_str(), r.percent), ("Platinum", 100.0));

    // A whole-scorecard exemption leaves passing and not-applicable rules as they are.
    let ex = [exemption(None, ExemptionStatus::Approved, later)];
    let r = evaluate_scorecard(&input(&e, &f, &ex, &NoChecks), &card).unwrap();
    let statuses: Vec<_> = r.rules.iter().map(|r| r.status).collect();
    use RuleStatus::*;
    assert_eq!(statuses, [Pass, Pass, Pass, Exempt, NotApplicable]);

    // Not in force: pending, denied, expired (until is exclusive), or for another entity/rule.
    for ex in [
        exemption(Some("g1"), ExemptionStatus::Pending, later),
        exemption(Some("g1"), ExemptionStatus::Revoked, later),
        exemption(Some("g1"), ExemptionStatus::Approved, now()),
        exemption(Some("g2"), ExemptionStatus::Approved, later),
        Exemption {
            entity: "ledger".into(),
            ..exemption(Some("g1"), ExemptionStatus::Approved, later)
        },
    ] {
        let r = evaluate_scorecard(&input(&e, &f, std::slice::from_ref(&ex), &NoChecks), &card)
            .unwrap();
        assert_eq!(r.rules[3].status, Fail, "{ex:?}");
    }
}

const CHECKS: &str = r#"identifier: ops
levels: [{title: Basic}, {title: Bronze}, {title: Silver}]
rules:
  - {identifier: c1, level: Bronze, check: {plugin: slo}}
  - {identifier: c2, level: Silver, check: {plugin: slo}, filter: {combinator: and, conditions: [{property: $tier, operator: '=', value: 3}]}}
  - {identifier: c3, level: Silver, check: {plugin: scan}}
"#;

fn outcome(status: RuleStatus, message: Option<&str>) -> CheckOutcome {
    CheckOutcome {
        status,
        message: message.map(str::to_owned),
        details: Some(std::sync::Arc::new(json!({"seen": 1}))),
    }
}

#[test]
fn check_outcomes() {
    let card = card(CHECKS);
    let (e, f) = (entity(), EntityFacts::new());
    let needed: Vec<&str> = checks_needed(&e, &f, &card, now())
        .iter()
        .map(|r| &*r.identifier)
        .collect();
    assert_eq!(needed, ["c1", "c3"]);

    let checks = BTreeMap::from([(
        "ops".to_owned(),
        BTreeMap::from([
            (
                "c1".to_owned(),
                outcome(RuleStatus::Warn, Some("budget at 80%")),
            ),
            ("c2".to_owned(), outcome(RuleStatus::Fail, None)),
        ]),
    )]);
    let r = evaluate_scorecard(&input(&e, &f, &[], &checks), &card).unwrap();
    assert_eq!(r.rules[0].status, RuleStatus::Warn);
    assert_eq!(r.rules[0].message.as_deref(), Some("budget at 80%"));
    assert_eq!(r.rules[0].details.as_deref(), Some(&json!({"seen": 1})));
    // The rule's filter wins over any outcome.
    assert_eq!(r.rules[1].status, RuleStatus::NotApplicable);
    assert_eq!(r.rules[2].status, RuleStatus::Error);
    assert!(
        r.rules[2]
            .message
            .as_deref()
            .unwrap()
            .contains("check plugin `scan` was not run")
    );
    // Warn counts as passed; error blocks Silver.
    assert_eq!((r.level.as_str(), r.percent), ("Bronze", 50.0));

    let bogus = BTreeMap::from([(
        "ops".to_owned(),
        BTreeMap::from([("c1".to_owned(), outcome(RuleStatus::Exempt, None))]),
    )]);
    let r = evaluate_scorecard(&input(&e, &f, &[], &bogus), &card).unwrap();
    assert_eq!(r.rules[0].status, RuleStatus::Error);

    // An exemption covers an error too.
    let ex = [Exemption {
        scorecard: "ops".into(),
        ..exemption(
            Some("c3"),
            ExemptionStatus::Approved,
            now() + Duration::days(1),
        )
    }];
    let r = evaluate_scorecard(&input(&e, &f, &ex, &NoChecks), &card).unwrap();
    assert_eq!(r.rules[2].status, RuleStatus::Exempt);
    assert!(
        r.rules[2]
            .message
            .as_deref()
            .unwrap()
            .contains("otherwise error: check plugin")
    );

    // No check is needed for an entity the scorecard does not apply to.
    let filtered = self::card(&CHECKS.replace("levels:", "filter: {combinator: and, conditions: [{property: $kind, operator: '=', value: api}]}\nlevels:"));
    assert!(checks_needed(&e, &f, &filtered, now()).is_empty());
}

#[test]
fn changed_at_is_carried_while_the_status_holds() {
    let card = card(LADDER);
    let (e, f) = (entity(), pd_facts());
    let first = evaluate_scorecard(&input(&e, &f, &[], &NoChecks), &card).unwrap();
    assert!(
        first
            .rules
            .iter()
            .all(|r| r.changed_at == now() && r.evaluated_at == now())
    );

    let later = now() + Duration::hours(1);
    let good = facts("pagerduty", json!({"oncall_count": 1}));
    let second_input = EvalInput {
        now: later,
        previous: Some(&first),
        ..input(&e, &good, &[], &NoChecks)
    };
    let second = evaluate_scorecard(&second_input, &card).unwrap();
    assert_eq!(second.rules[0].changed_at, now(), "b1 still passes");
    assert_eq!(
        second.rules[3].changed_at, later,
        "g1 went from fail to pass"
    );
    assert_eq!(second.rules[3].evaluated_at, later);

    // A previous result of another scorecard is ignored.
    let mut other = first.clone();
    other.scorecard = "other".into();
    let third_input = EvalInput {
        now: later,
        previous: Some(&other),
        ..input(&e, &good, &[], &NoChecks)
    };
    let third = evaluate_scorecard(&third_input, &card).unwrap();
    assert_eq!(third.rules[0].changed_at, later);
}

fn standards(cards: &[&str], tiers: &str) -> Standards {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("scorecards")).unwrap();
    for (i, c) in cards.iter().enumerate() {
        std::fs::write(dir.path().join(format!("scorecards/{i}.yaml")), c).unwrap();
    }
    std::fs::write(dir.path().join("tiers.yaml"), tiers).unwrap();
    crate::standards::load_dir(dir.path(), &AnyPlugins).unwrap()
}

#[test]
fn evaluate_entity_and_tier_misses() {
    let docs = "identifier: docs\nfilter: {combinator: and, conditions: [{property: $kind, operator: '=', value: library}]}\nlevels: [{title: None}, {title: Some}]\nrules:\n  - {identifier: readme, level: Some, query: {combinator: and, conditions: [{property: readme, operator: isNotEmpty}]}}\n";
    let s = standards(
        &[LADDER, CHECKS, docs],
        "tiers:\n  1: {require: {pr: Gold, ops: Basic, docs: Some}}\n  2: {require: {pr: Bronze}}\nuntiered: {require: {pr: Platinum}}\n",
    );
    let (e, f) = (entity(), pd_facts());
    let results = evaluate_entity(&input(&e, &f, &[], &NoChecks), &s);
    let cards: Vec<&str> = results.iter().map(|r| r.scorecard.as_str()).collect();
    assert_eq!(cards, ["ops", "pr"], "docs does not apply to a service");

    let misses = tier_misses(&e, &results, &s);
    assert_eq!(misses.len(), 1, "{misses:?}");
    let miss = &misses[0];
    assert_eq!(
        (
            miss.scorecard.as_str(),
            miss.required_level.as_str(),
            miss.reached_level.as_str()
        ),
        ("pr", "Gold", "Silver")
    );
    assert_eq!((miss.required_index, miss.reached_index), (3, 2));
    assert_eq!(
        miss.blocking_rules,
        [(
            "g1".to_owned(),
            RuleStatus::Fail,
            Some("facts.pagerduty.oncall_count is 0, required > 0".to_owned())
        )]
    );

    let mut tier2 = entity();
    tier2.tier = Some(2);
    assert!(tier_misses(&tier2, &results, &s).is_empty());
    // Tier 3 has no entry: the untiered policy applies, as it does without a tier.
    for tier in [Some(3), None] {
        let mut e = entity();
        e.tier = tier;
        let misses = tier_misses(&e, &results, &s);
        assert_eq!(misses.len(), 1);
        assert_eq!(misses[0].required_level, "Platinum");
    }

    // With history: changed_at carried per scorecard.
    let later = now() + Duration::minutes(5);
    let again = evaluate_entity_with_history(
        &EvalInput {
            now: later,
            ..input(&e, &f, &[], &NoChecks)
        },
        &s,
        &results,
    );
    assert!(
        again
            .iter()
            .all(|r| r.rules.iter().all(|x| x.changed_at == now()))
    );
}

#[test]
fn initiative_filters() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("scorecards")).unwrap();
    std::fs::create_dir_all(dir.path().join("initiatives")).unwrap();
    std::fs::write(dir.path().join("scorecards/pr.yaml"), LADDER).unwrap();
    std::fs::write(
        dir.path().join("initiatives/i.yaml"),
        "identifier: i\nowner: sre\ndeadline: 2024-12-31\ntargets: [{scorecard: pr, level: Gold}]\nfilter: {combinator: and, conditions: [{property: $tier, operator: '=', value: 1}]}\n",
    )
    .unwrap();
    let s = crate::standards::load_dir(dir.path(), &AnyPlugins).unwrap();
    let initiative = s.initiative("i").unwrap();
    let (mut e, f) = (entity(), EntityFacts::new());
    assert!(initiative_applies(initiative, &e, &f, now()));
    e.tier = None;
    assert!(!initiative_applies(initiative, &e, &f, now()));
}

/// Throughput of the pure evaluator in the shape of the DESIGN.md §11 target (every entity
/// against 5 scorecards of 10 rules with simple built-in conditions). Not a benchmark (the
/// harness comes later), a sanity check: run with
/// `cargo test --release -p readyd --lib eval::tests::throughput -- --ignored --nocapture`.
#[test]
#[ignore = "measures speed; run by hand in release mode"]
fn throughput() {
    use std::sync::Arc;
    let conditions = [
        "{property: $kind, operator: '=', value: service}",
        "{property: $team, operator: isNotEmpty}",
        "{property: replicas, operator: '>=', value: 2}",
        "{property: language, operator: in, value: [go, rust, java]}",
        "{property: facts.pagerduty.oncall_count, operator: '>', value: 0}",
        "{property: runbook, operator: beginsWith, value: 'https://'}",
        "{property: $tier, operator: '<=', value: 2}",
        "{property: lifecycle, operator: '!=', value: deprecated}",
        "{property: tags, operator: contains, value: pci}",
        "{property: nested.deep.value, operator: '=', value: x}",
    ];
    let scorecards: Vec<Arc<Scorecard>> = (0..5)
        .map(|n| {
            let mut yaml = format!(
                "identifier: speed-{n}\nlevels: [{{title: L0}}, {{title: L1}}, {{title: L2}}, {{title: L3}}]\nrules:\n"
            );
            for i in 0..conditions.len() {
                let c = conditions[(i + n) % conditions.len()];
                yaml.push_str(&format!(
                    "  - {{identifier: r{i}, level: L{}, query: {{combinator: and, conditions: [{c}]}}}}\n",
                    1 + i % 3
                ));
            }
            Arc::new(card(&yaml))
        })
        .collect();
    let standards = Standards {
        scorecards,
        ..Standards::default()
    };
    let queries: Vec<&Query> = standards
        .scorecards
        .iter()
        .flat_map(|c| c.rules.iter().filter_map(|r| r.query.as_ref()))
        .collect();
    let entities: Vec<Entity> = (0..2000)
        .map(|i| {
            let mut e = entity();
            e.identifier = format!("svc-{i}");
            e
        })
        .collect();
    let f = facts("pagerduty", json!({"oncall_count": 1}));
    let rounds = 20;

    // Conditions alone: property lookup and comparison.
    let started = std::time::Instant::now();
    let mut held = 0usize;
    for _ in 0..rounds {
        for e in &entities {
            for q in &queries {
                held += usize::from(query_holds(q, e, &f, now()));
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let count = rounds * entities.len() * queries.len();
    assert_eq!(held, count, "every condition holds for this entity");
    println!(
        "conditions: {count} in {secs:.3} s: {:.2} million per second on one core",
        count as f64 / secs / 1e6
    );

    // Whole results: rule results, levels, percent and score.
    let started = std::time::Instant::now();
    let mut evaluated = 0usize;
    for _ in 0..rounds {
        for e in &entities {
            let results = evaluate_entity(&input(e, &f, &[], &NoChecks), &standards);
            evaluated += results.iter().map(|r| r.rules.len()).sum::<usize>();
            std::hint::black_box(results);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "rules with results: {evaluated} in {secs:.3} s: {:.2} million per second on one core",
        evaluated as f64 / secs / 1e6
    );
}

#[test]
fn empty_properties_object_reads_as_missing_paths() {
    let e = Entity {
        properties: JsonObject::new(),
        ..entity()
    };
    let q = query(json!([{"property": "language", "operator": "!=", "value": "go"}]));
    assert!(!query_holds(&q, &e, &EntityFacts::new(), now()));
}
