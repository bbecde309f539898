//! Property tests: the evaluator against small reference implementations written differently
//! (levels by counting per level, operators by plain case analysis over JSON values).

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::Duration;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::tests::{entity, now};
use super::*;
use crate::model::ExemptionStatus;
use crate::standards::{CheckRef, Level, Operator, Query};

/// How a generated rule decides its status.
#[derive(Clone, Debug)]
enum Decides {
    /// A check plugin answers this status.
    Check(RuleStatus),
    /// A built-in query on a boolean property: passes when true.
    Query(bool),
}

#[derive(Clone, Debug)]
struct GenRule {
    level: usize,
    decides: Decides,
    weight: u8,
    exempt: bool,
}

fn gen_rules(levels: usize) -> impl Strategy<Value = Vec<GenRule>> {
    let status = prop_oneof![
        Just(RuleStatus::Pass),
        Just(RuleStatus::Fail),
        Just(RuleStatus::Warn),
        Just(RuleStatus::Error),
        Just(RuleStatus::NotApplicable),
    ];
    let decides = prop_oneof![
        status.prop_map(Decides::Check),
        any::<bool>().prop_map(Decides::Query)
    ];
    prop::collection::vec(
        (1..levels, decides, 1u8..5, prop::bool::weighted(0.2)).prop_map(
            |(level, decides, weight, exempt)| GenRule {
                level,
                decides,
                weight,
                exempt,
            },
        ),
        0..12,
    )
}

fn ladder() -> impl Strategy<Value = (usize, Vec<GenRule>)> {
    (2usize..7).prop_flat_map(|n| (Just(n), gen_rules(n)))
}

/// The reference: a rule's final status, written as a table.
fn reference_status(rule: &GenRule) -> RuleStatus {
    let raw = match rule.decides {
        Decides::Check(s) => s,
        Decides::Query(true) => RuleStatus::Pass,
        Decides::Query(false) => RuleStatus::Fail,
    };
    match (raw, rule.exempt) {
        (RuleStatus::Fail | RuleStatus::Error, true) => RuleStatus::Exempt,
        (s, _) => s,
    }
}

fn passes(s: RuleStatus) -> bool {
    matches!(s, RuleStatus::Pass | RuleStatus::Warn | RuleStatus::Exempt)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn levels_percent_and_score_match_the_reference((n, spec) in ladder()) {
        let levels: Vec<Level> = (0..n).map(|i| Level { title: format!("L{i}").into(), description: None, color: None }).collect();
        let mut e = entity();
        let mut checks: BTreeMap<String, BTreeMap<String, CheckOutcome>> = BTreeMap::new();
        let mut exemptions = Vec::new();
        let rules: Vec<Rule> = spec.iter().enumerate().map(|(i, g)| {
            let id = format!("r{i}");
            let (query, check) = match g.decides {
                Decides::Check(status) => {
                    checks.entry("card".into()).or_default().insert(
                        id.clone(),
                        CheckOutcome { status, message: None, details: None },
                    );
                    (None, Some(CheckRef { plugin: "p".into(), params: json!({}) }))
                }
                Decides::Query(pass) => {
                    e.properties.insert(format!("flag{i}"), Value::Bool(pass));
                    let q = Query::from_value(&json!({"combinator": "and", "conditions": [
                        {"property": format!("flag{i}"), "operator": "=", "value": true}
                    ]})).unwrap();
                    (Some(q), None)
                }
            };
            if g.exempt {
                exemptions.push(Exemption {
                    id: format!("x{i}"),
                    entity: e.identifier.clone(),
                    scorecard: "card".into(),
                    rule: Some(id.clone()),
                    reason: "r".into(),
                    until: now() + Duration::days(1),
                    requested_by: "a".into(),
                    requested_at: now(),
                    status: ExemptionStatus::Approved,
                    history: vec![],
                });
            }
            Rule {
                identifier: id.as_str().into(),
                title: id,
                description: None,
                level: format!("L{}", g.level).into(),
                level_index: g.level,
                query,
                check,
                filter: None,
                weight: f64::from(g.weight),
                due_days: None,
            }
        }).collect();
        let card = Scorecard {
            identifier: "card".into(),
            title: "Card".into(),
            description: None,
            blueprint: None,
            filter: None,
            levels,
            rules,
            file: PathBuf::new(),
        };
        let facts = EntityFacts::new();
        let input = EvalInput { entity: &e, facts: &facts, exemptions: &exemptions, now: now(), checks: &checks, previous: None };
        let result = evaluate_scorecard(&input, &card).unwrap();

        let statuses: Vec<RuleStatus> = spec.iter().map(reference_status).collect();
        let got: Vec<RuleStatus> = result.rules.iter().map(|r| r.status).collect();
        prop_assert_eq!(&got, &statuses);

        // Level by counting, level after level, the non-passing applicable rules of each.
        let mut reached = 0;
        for level in 1..n {
            let blocking = spec.iter().zip(&statuses)
                .filter(|(g, s)| g.level == level && **s != RuleStatus::NotApplicable && !passes(**s))
                .count();
            if blocking > 0 { break; }
            reached = level;
        }
        prop_assert_eq!(result.level_index, reached);
        prop_assert_eq!(result.level, format!("L{reached}"));

        let applicable: Vec<(&GenRule, RuleStatus)> = spec.iter().zip(statuses.iter().copied())
            .filter(|(_, s)| *s != RuleStatus::NotApplicable).collect();
        let passed: Vec<_> = applicable.iter().filter(|(_, s)| passes(*s)).collect();
        let percent = if applicable.is_empty() { 100.0 } else { passed.len() as f64 * 100.0 / applicable.len() as f64 };
        let total: u32 = applicable.iter().map(|(g, _)| u32::from(g.weight)).sum();
        let got_weight: u32 = passed.iter().map(|(g, _)| u32::from(g.weight)).sum();
        let score = if total == 0 { 100.0 } else { f64::from(got_weight) * 100.0 / f64::from(total) };
        prop_assert!((result.percent - percent).abs() < 1e-9, "percent {} vs {}", result.percent, percent);
        prop_assert!((result.score - score).abs() < 1e-9, "score {} vs {}", result.score, score);
        // Messages only for what does not pass.
        for r in &result.rules {
            if r.status == RuleStatus::Pass {
                prop_assert!(r.message.is_none());
            }
            if r.status == RuleStatus::Fail {
                prop_assert!(r.message.is_some());
            }
        }
    }
}

/// A valid value for every operator.
fn value_for(op: Operator) -> Option<Value> {
    use Operator::*;
    Some(match op {
        IsEmpty | IsNotEmpty => return None,
        Eq | Ne | Contains | DoesNotContain | BeginsWith | DoesNotBeginWith | EndsWith
        | DoesNotEndWith => json!("a"),
        Lt | Gt | Le | Ge => json!(1),
        ContainsAny | In | NotIn => json!(["a", 1]),
        Between => json!("last12Months"),
        NotBetween => json!({"from": "2020-01-01", "to": "2020-12-31"}),
        MatchesRegex => json!(".*"),
        SatisfiesVersion => json!("*"),
    })
}

/// Ways a value can be missing: the key absent, `null`, a path through a scalar, an index past
/// the end, a fact source never collected.
fn missing_path() -> impl Strategy<Value = (&'static str, Value)> {
    prop_oneof![
        Just(("v", json!({}))),
        Just(("v", json!({"v": null}))),
        Just(("v.w", json!({"v": "text"}))),
        Just(("v.3", json!({"v": [1, 2]}))),
        Just(("v.w", json!({"v": {"w": null}}))),
        Just(("facts.none.v", json!({}))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn missing_data_holds_only_for_is_empty(op in prop::sample::select(Operator::ALL.to_vec()), (path, props) in missing_path()) {
        let mut c = json!({"property": path, "operator": op.as_str()});
        if let Some(v) = value_for(op) {
            c["value"] = v;
        }
        let q = Query::from_value(&json!({"combinator": "and", "conditions": [c]})).unwrap();
        let mut e = entity();
        e.properties = props.as_object().unwrap().clone();
        let held = query_holds(&q, &e, &EntityFacts::new(), now());
        prop_assert_eq!(held, op == Operator::IsEmpty);
        if !held {
            let message = explain_query(&q, &e, &EntityFacts::new(), now()).unwrap();
            let expected_prefix = format!("{path} is missing, required {op}");
            prop_assert!(message.starts_with(&expected_prefix), "{}", message);
        }
    }
}

/// Small strings over a tiny alphabet, so that equalities, prefixes and numeric strings occur.
fn small_string() -> impl Strategy<Value = String> {
    "[ab12]{0,3}"
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        (-2i64..3).prop_map(|n| json!(n)),
        Just(json!(0.5)),
        small_string().prop_map(Value::String),
    ]
}

fn actual_value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Value::Null)),
        6 => scalar().prop_map(Some),
        2 => prop::collection::vec(prop_oneof![4 => scalar(), 1 => Just(Value::Null)], 0..4).prop_map(|v| Some(Value::Array(v))),
        1 => prop::collection::btree_map("[ab]", scalar(), 0..2)
            .prop_map(|m| Some(Value::Object(m.into_iter().collect()))),
    ]
}

/// An operator and a value of the shape it accepts.
fn operator_and_value() -> impl Strategy<Value = (Operator, Option<Value>)> {
    use Operator::*;
    let text_or_number = prop_oneof![
        small_string().prop_map(Value::String),
        (-2i64..3).prop_map(|n| json!(n))
    ];
    let list = || prop::collection::vec(scalar(), 1..4).prop_map(Value::Array);
    let order_bound = prop_oneof![
        (-2i64..3).prop_map(|n| json!(n)),
        "[ab12]{1,3}".prop_map(Value::String),
    ];
    prop_oneof![
        (
            prop::sample::select(vec![Eq, Ne]),
            prop_oneof![scalar(), list()]
        )
            .prop_map(|(o, v)| (o, Some(v))),
        (
            prop::sample::select(vec![Contains, DoesNotContain]),
            scalar()
        )
            .prop_map(|(o, v)| (o, Some(v))),
        (
            prop::sample::select(vec![BeginsWith, DoesNotBeginWith, EndsWith, DoesNotEndWith]),
            text_or_number
        )
            .prop_map(|(o, v)| (o, Some(v))),
        (prop::sample::select(vec![Lt, Gt, Le, Ge]), order_bound).prop_map(|(o, v)| (o, Some(v))),
        (prop::sample::select(vec![In, NotIn, ContainsAny]), list())
            .prop_map(|(o, v)| (o, Some(v))),
        prop::sample::select(vec![IsEmpty, IsNotEmpty]).prop_map(|o| (o, None)),
    ]
}

/// Plain reading of a generated string as a number: digits only (the alphabet has no other
/// numeric form).
fn ref_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
}

fn ref_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn ref_equal(a: &Value, e: &Value) -> bool {
    match a {
        Value::Number(_) => matches!((ref_number(a), ref_number(e)), (Some(x), Some(y)) if x == y),
        Value::String(s) => {
            *s == ref_text(e)
                || matches!((ref_number(a), ref_number(e)), (Some(x), Some(y)) if x == y)
        }
        Value::Bool(b) => match e {
            Value::Bool(c) => b == c,
            Value::String(s) => *s == b.to_string(),
            _ => false,
        },
        Value::Array(_) | Value::Object(_) => a == e,
        Value::Null => false,
    }
}

/// The reference semantics of one condition on a present-or-missing value. `None` from the
/// positive relation means "cannot compare": false for the operator and its negation alike.
fn reference(op: Operator, actual: Option<&Value>, expected: Option<&Value>) -> bool {
    use Operator::*;
    let a = match actual {
        None | Some(Value::Null) => return op == IsEmpty,
        Some(a) => a,
    };
    let e = expected.unwrap_or(&Value::Null);
    let list = || e.as_array().cloned().unwrap_or_default();
    let positive: Option<bool> = match op {
        IsEmpty | IsNotEmpty => Some(match a {
            Value::String(s) => s.is_empty(),
            Value::Array(v) => v.is_empty(),
            Value::Object(m) => m.is_empty(),
            _ => false,
        }),
        Eq | Ne => Some(ref_equal(a, e)),
        Contains | DoesNotContain => match a {
            Value::String(s) => Some(s.contains(&ref_text(e))),
            Value::Array(items) => Some(items.iter().any(|x| ref_equal(x, e))),
            _ => None,
        },
        ContainsAny => match a {
            Value::String(s) => Some(list().iter().any(|x| s.contains(&ref_text(x)))),
            Value::Array(items) => {
                Some(items.iter().any(|x| list().iter().any(|y| ref_equal(x, y))))
            }
            _ => None,
        },
        BeginsWith | DoesNotBeginWith => a.as_str().map(|s| s.starts_with(&ref_text(e))),
        EndsWith | DoesNotEndWith => a.as_str().map(|s| s.ends_with(&ref_text(e))),
        In | NotIn => match a {
            Value::Array(_) | Value::Object(_) => None,
            single => Some(list().iter().any(|x| ref_equal(single, x))),
        },
        Lt | Gt | Le | Ge => {
            let ord = match ref_number(e) {
                Some(bound) => ref_number(a).and_then(|x| x.partial_cmp(&bound)),
                None => a.as_str().map(|s| s.cmp(e.as_str().unwrap_or_default())),
            };
            ord.map(|o| match op {
                Lt => o.is_lt(),
                Gt => o.is_gt(),
                Le => o.is_le(),
                _ => o.is_ge(),
            })
        }
        Between | NotBetween | MatchesRegex | SatisfiesVersion => unreachable!("not generated"),
    };
    let negated = matches!(
        op,
        Ne | DoesNotContain | DoesNotBeginWith | DoesNotEndWith | NotIn | IsNotEmpty
    );
    positive.is_some_and(|p| p != negated)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn operators_match_the_reference(actual in actual_value(), (op, expected) in operator_and_value()) {
        let mut c = json!({"property": "v", "operator": op.as_str()});
        if let Some(v) = &expected {
            c["value"] = v.clone();
        }
        let q = Query::from_value(&json!({"combinator": "and", "conditions": [c]}));
        let q = match q {
            Ok(q) => q,
            Err(faults) => return Err(TestCaseError::fail(format!("{op} {expected:?}: {faults:?}"))),
        };
        let mut e = entity();
        e.properties.clear();
        if let Some(v) = &actual {
            e.properties.insert("v".into(), v.clone());
        }
        let got = query_holds(&q, &e, &EntityFacts::new(), now());
        let want = reference(op, actual.as_ref(), expected.as_ref());
        prop_assert_eq!(got, want, "v = {:?}, {} {:?}", actual, op, expected);
        // A failing condition always explains itself; a holding one never does.
        prop_assert_eq!(explain_query(&q, &e, &EntityFacts::new(), now()).is_some(), !got);
    }

    #[test]
    fn dates_compare_in_time(days_a in -400i64..400, days_b in -400i64..400, hours in 0i64..24) {
        let t = now() + Duration::days(days_a) + Duration::hours(hours);
        let bound = now() + Duration::days(days_b);
        let mut e = entity();
        e.properties.insert("at".into(), json!(t.to_rfc3339()));
        for (op, want) in [("<", t < bound), (">=", t >= bound)] {
            let q = Query::from_value(&json!({"combinator": "and", "conditions": [
                {"property": "at", "operator": op, "value": bound.format("%Y-%m-%dT%H:%M:%SZ").to_string()}
            ]})).unwrap();
            prop_assert_eq!(query_holds(&q, &e, &EntityFacts::new(), now()), want, "{} {} {}", t, op, bound);
        }
        // lastWeek: the last 7 days up to now, inclusive.
        let q = Query::from_value(&json!({"combinator": "and", "conditions": [
            {"property": "at", "operator": "between", "value": "lastWeek"}
        ]})).unwrap();
        let want = t >= now() - Duration::days(7) && t <= now();
        prop_assert_eq!(query_holds(&q, &e, &EntityFacts::new(), now()), want, "{} lastWeek", t);
    }
}
