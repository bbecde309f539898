//! Port's published scorecard examples (tests/fixtures/port/, copied verbatim from Port's docs)
//! load unchanged and score entities as Port's pages describe. Before Port support they were
//! refused: "unknown field `color`", the `relation` condition, upper-case identifiers
//! (`Ownership`) and the missing `levels` of the "Manage scorecards" example.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::eval::{EvalInput, NoChecks, evaluate_scorecard};
use crate::model::{Entity, EntityFacts, RuleStatus, Timestamp};

fn fixture(name: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/port")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

fn load(name: &str) -> Scorecard {
    let (path, text) = fixture(name);
    parse_scorecard(&path, &text, &NoPlugins)
        .unwrap_or_else(|e| panic!("{name} must load unchanged: {e:?}"))
}

fn entity(kind: &str, properties: serde_json::Value, relations: &[(&str, &[&str])]) -> Entity {
    Entity {
        identifier: "svc".into(),
        kind: kind.into(),
        title: "Svc".into(),
        team: None,
        tier: None,
        properties: properties.as_object().unwrap().clone(),
        relations: relations
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn now() -> Timestamp {
    chrono::Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

/// The level reached, or `None` when the scorecard does not apply.
fn level(card: &Scorecard, e: &Entity) -> Option<String> {
    let facts = EntityFacts::new();
    let input = EvalInput {
        entity: e,
        facts: &facts,
        exemptions: &[],
        now: now(),
        checks: &NoChecks,
        previous: None,
    };
    evaluate_scorecard(&input, card).map(|r| r.level.to_string())
}

fn statuses(card: &Scorecard, e: &Entity) -> Vec<(String, RuleStatus)> {
    let facts = EntityFacts::new();
    let input = EvalInput {
        entity: e,
        facts: &facts,
        exemptions: &[],
        now: now(),
        checks: &NoChecks,
        previous: None,
    };
    evaluate_scorecard(&input, card)
        .unwrap()
        .rules
        .iter()
        .map(|r| (r.rule.to_string(), r.status))
        .collect()
}

#[test]
fn every_fixture_loads_unchanged() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/port");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            load(path.file_name().unwrap().to_str().unwrap());
            n += 1;
        }
    }
    assert_eq!(
        n, 7,
        "the seven scorecard examples of Port's scorecard pages"
    );
}

/// "Scorecard use-cases" → "Ownership scorecard": only production entities; Gold needs an
/// on-call and fewer than 5 open incidents, Silver a related team.
#[test]
fn use_cases_ownership_scores_as_port_describes() {
    let card = load("use-cases-ownership.json");
    assert_eq!(card.identifier.as_str(), "ownership");
    let colors: Vec<_> = card.levels.iter().map(|l| l.color.as_deref()).collect();
    assert_eq!(
        colors,
        [
            Some("paleBlue"),
            Some("bronze"),
            Some("silver"),
            Some("gold")
        ]
    );
    let prod = |on_call: serde_json::Value, incidents: i64, team: &[&str]| {
        entity(
            "service",
            json!({"is_production": true, "on_call": on_call, "open_incidents": incidents}),
            &[("team", team)],
        )
    };
    assert_eq!(
        level(&card, &prod(json!("ana"), 2, &["payments"])).as_deref(),
        Some("Gold")
    );
    // Has a team but too many incidents: Silver (Gold's rule fails).
    assert_eq!(
        level(&card, &prod(json!("ana"), 7, &["payments"])).as_deref(),
        Some("Silver")
    );
    // No related team: stuck below Silver, whatever the on-call.
    let no_team = prod(json!("ana"), 2, &[]);
    assert_eq!(level(&card, &no_team).as_deref(), Some("Bronze"));
    assert_eq!(
        statuses(&card, &no_team),
        [
            ("has_on_call".to_owned(), RuleStatus::Pass),
            ("has_team".to_owned(), RuleStatus::Fail)
        ]
    );
    // Not production: the filter excludes it.
    let staging = entity(
        "service",
        json!({"is_production": false, "on_call": "ana", "open_incidents": 0}),
        &[("team", &["payments"])],
    );
    assert_eq!(level(&card, &staging), None);
}

/// "Ensure relation existence": services with an empty `domain` relation fail.
#[test]
fn use_cases_domain_definition_reads_the_relation() {
    let card = load("use-cases-domain-definition.json");
    let with = entity("service", json!({}), &[("domain", &["payments"])]);
    let empty = entity("service", json!({}), &[("domain", &[])]);
    let absent = entity("service", json!({}), &[]);
    assert_eq!(
        statuses(&card, &with),
        [("hasDomain".to_owned(), RuleStatus::Pass)]
    );
    assert_eq!(level(&card, &with).as_deref(), Some("Gold"));
    for e in [&empty, &absent] {
        assert_eq!(
            statuses(&card, e),
            [("hasDomain".to_owned(), RuleStatus::Fail)]
        );
        assert_eq!(level(&card, e).as_deref(), Some("Basic"));
    }
}

/// "DORA metrics based on number of deployments": > 3 for Bronze, > 4 for Silver.
#[test]
fn use_cases_dora_metrics_levels() {
    let card = load("use-cases-dora-metrics.json");
    let freq = |n: i64| entity("service", json!({"deployment_frequency": n}), &[]);
    assert_eq!(level(&card, &freq(1)).as_deref(), Some("Basic"));
    assert_eq!(level(&card, &freq(4)).as_deref(), Some("Bronze"));
    assert_eq!(level(&card, &freq(5)).as_deref(), Some("Gold"));
}

/// "Manage scorecards" → "Ownership scorecard example": no `levels`, so Port's defaults.
#[test]
fn manage_ownership_has_ports_default_levels() {
    let card = load("manage-ownership.json");
    assert_eq!(card.identifier.as_str(), "Ownership");
    let titles: Vec<_> = card.levels.iter().map(|l| l.title.as_str()).collect();
    assert_eq!(titles, ["Basic", "Bronze", "Silver", "Gold"]);
    let mut e = entity("service", json!({"slackChannel": "#pay"}), &[]);
    assert_eq!(level(&card, &e).as_deref(), Some("Basic"), "no team");
    e.team = Some("payments".into());
    assert_eq!(level(&card, &e).as_deref(), Some("Gold"));
    e.properties.remove("slackChannel");
    assert_eq!(level(&card, &e).as_deref(), Some("Bronze"));
}

/// "Concepts and structure": the three level tabs.
#[test]
fn concepts_examples_keep_their_levels_and_colours() {
    let card = load("concepts-ownership-default-levels.json");
    let mut e = entity("service", json!({}), &[]);
    assert_eq!(level(&card, &e).as_deref(), Some("Basic"));
    e.team = Some("payments".into());
    assert_eq!(level(&card, &e).as_deref(), Some("Gold"));
    assert!(
        card.rules[0]
            .description
            .as_deref()
            .unwrap()
            .starts_with("The service has a designated responsible team")
    );

    let custom = load("concepts-monitoring-maturity-custom-levels.json");
    let ladder: Vec<_> = custom
        .levels
        .iter()
        .map(|l| (l.title.as_str(), l.color.as_deref().unwrap()))
        .collect();
    assert_eq!(
        ladder,
        [("low", "paleBlue"), ("medium", "bronze"), ("high", "gold")]
    );
    // No rules: every level is reached.
    assert_eq!(level(&custom, &e).as_deref(), Some("high"));

    let traffic = load("concepts-production-readiness-traffic-light.json");
    assert_eq!(traffic.levels.len(), 4);
    assert_eq!(level(&traffic, &e).as_deref(), Some("Green"));
}

#[test]
fn colours_and_relations_are_served_back_as_written() {
    let card = load("use-cases-ownership.json");
    let served = serde_json::to_value(&card).unwrap();
    assert_eq!(
        served["levels"][0],
        json!({"title": "Basic", "color": "paleBlue"})
    );
    assert_eq!(
        served["rules"][1]["query"]["conditions"][0],
        json!({"relation": "team", "operator": "isNotEmpty"})
    );
}

fn one_rule(condition: serde_json::Value) -> Result<Scorecard, Vec<StandardsError>> {
    let text = json!({
        "identifier": "t",
        "rules": [{"identifier": "r", "level": "Bronze",
                   "query": {"combinator": "and", "conditions": [condition]}}]
    })
    .to_string();
    parse_scorecard(Path::new("t.json"), &text, &NoPlugins)
}

fn fault(condition: serde_json::Value) -> String {
    one_rule(condition)
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn relation_comparisons() {
    let card = |op: &str, value: serde_json::Value| {
        one_rule(json!({"relation": "domain", "operator": op, "value": value})).unwrap()
    };
    let payments = entity(
        "service",
        json!({}),
        &[("domain", &["payments", "billing"])],
    );
    let none = entity("service", json!({}), &[]);
    let status = |c: &Scorecard, e: &Entity| statuses(c, e)[0].1;
    assert_eq!(
        status(&card("=", json!("payments")), &payments),
        RuleStatus::Pass
    );
    assert_eq!(
        status(&card("=", json!("identity")), &payments),
        RuleStatus::Fail
    );
    assert_eq!(
        status(&card("!=", json!("identity")), &payments),
        RuleStatus::Pass
    );
    assert_eq!(
        status(&card("!=", json!("payments")), &payments),
        RuleStatus::Fail
    );
    // No relation at all: `!=` does not hold either (missing data fails, as everywhere).
    assert_eq!(
        status(&card("!=", json!("payments")), &none),
        RuleStatus::Fail
    );
    assert_eq!(
        status(&card("in", json!(["identity", "billing"])), &payments),
        RuleStatus::Pass
    );
    let empty = one_rule(json!({"relation": "domain", "operator": "isEmpty"})).unwrap();
    assert_eq!(status(&empty, &none), RuleStatus::Pass);
    assert_eq!(status(&empty, &payments), RuleStatus::Fail);
    let served = serde_json::to_value(card("=", json!("payments"))).unwrap();
    assert_eq!(
        served["rules"][0]["query"]["conditions"][0],
        json!({"relation": "domain", "operator": "=", "value": "payments"})
    );
}

#[test]
fn relation_conditions_refuse_what_port_does_not_define() {
    let f = fault(json!({"relation": "domain", "operator": "beginsWith", "value": "p"}));
    assert!(f.contains("does not apply to a relation"), "{f}");
    let f = fault(json!({"relation": "domain", "property": "x", "operator": "isEmpty"}));
    assert!(f.contains("not both"), "{f}");
    let f = fault(json!({"relation": "a.b", "operator": "isEmpty"}));
    assert!(f.contains("without dots"), "{f}");
    let f = fault(json!({"relation": "domain", "operator": "=", "value": 3}));
    assert!(f.contains("entity identifier"), "{f}");
}

#[test]
fn meta_properties_map_to_what_readyd_has() {
    let cond = |property: &str, op: &str, value: serde_json::Value| {
        one_rule(json!({"property": property, "operator": op, "value": value})).unwrap()
    };
    let e = entity(
        "service",
        json!({"icon": "Rust", "createdAt": "2025-01-01T00:00:00Z", "updatedBy": "ana"}),
        &[],
    );
    let status = |c: Scorecard| statuses(&c, &e)[0].1;
    assert_eq!(
        status(cond("$blueprint", "=", json!("service"))),
        RuleStatus::Pass
    );
    assert_eq!(
        status(cond("$blueprint", "=", json!("api"))),
        RuleStatus::Fail
    );
    assert_eq!(
        status(cond("$identifier", "=", json!("svc"))),
        RuleStatus::Pass
    );
    assert_eq!(status(cond("$title", "=", json!("Svc"))), RuleStatus::Pass);
    assert_eq!(status(cond("$icon", "=", json!("Rust"))), RuleStatus::Pass);
    assert_eq!(
        status(cond("$createdAt", "<", json!("2025-06-01"))),
        RuleStatus::Pass
    );
    assert_eq!(
        status(cond("$updatedBy", "=", json!("ana"))),
        RuleStatus::Pass
    );
    let empty = one_rule(json!({"property": "$updatedAt", "operator": "isEmpty"})).unwrap();
    assert_eq!(statuses(&empty, &e)[0].1, RuleStatus::Pass);
    let f = fault(json!({"property": "$owner", "operator": "isEmpty"}));
    assert!(f.contains("unknown built-in property `$owner`"), "{f}");
}

#[test]
fn fields_no_port_or_readyd_document_defines_stay_errors() {
    for (text, needle) in [
        (
            r#"{"identifier": "t", "levels": [{"title": "Basic", "colour": "red"}]}"#,
            "unknown field `colour`",
        ),
        (
            r#"{"identifier": "t", "owner": "x"}"#,
            "unknown field `owner`",
        ),
        (
            r#"{"identifier": "t", "rules": [{"identifier": "r", "level": "Bronze", "severity": 1,
               "query": {"combinator": "and", "conditions": [{"property": "a", "operator": "isEmpty"}]}}]}"#,
            "unknown field `severity`",
        ),
    ] {
        let err = parse_scorecard(Path::new("t.json"), text, &NoPlugins).unwrap_err();
        let msg = err[0].to_string();
        assert!(msg.contains(needle), "{msg}");
    }
}

#[test]
fn blueprint_limits_the_scorecard_to_that_kind() {
    let text = r#"{"identifier": "Svc", "blueprint": "service", "rules": []}"#;
    let card = parse_scorecard(Path::new("t.json"), text, &NoPlugins).unwrap();
    assert_eq!(
        level(&card, &entity("service", json!({}), &[])).as_deref(),
        Some("Gold")
    );
    assert_eq!(level(&card, &entity("library", json!({}), &[])), None);
    assert!(!crate::eval::applies(
        &card,
        &entity("library", json!({}), &[]),
        &EntityFacts::new(),
        now()
    ));
}
