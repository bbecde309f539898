//! The compact encoding of scorecard results, the bulk of the state (10,000 entities × 5
//! scorecards, all rewritten by a full pass).
//!
//! Other values are `rmp_serde::to_vec_named` of the model type. A result is written as a mirror
//! of [`ScorecardResult`] with short field names and times as integer nanoseconds: chrono's
//! RFC 3339 strings cost about 0.35 µs each to format and 25 bytes each to store, and a result has
//! 21 of them. Fields are still named, so fields can be added. The conversions destructure the
//! model types exhaustively: a field added to them fails to compile here until it is stored.

use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::model::{RuleResult, RuleStatus, ScorecardResult, Timestamp};

/// Nanoseconds since the epoch; times outside 1677–2262 are clamped (never a clock reading).
fn nanos(at: Timestamp) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(if at.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

fn time(nanos: i64) -> Timestamp {
    Timestamp::from_timestamp_nanos(nanos)
}

#[derive(Serialize)]
struct ResultRef<'a> {
    #[serde(rename = "e")]
    entity: &'a str,
    #[serde(rename = "s")]
    scorecard: &'a str,
    #[serde(rename = "l")]
    level: &'a str,
    #[serde(rename = "i")]
    level_index: usize,
    #[serde(rename = "p")]
    percent: f64,
    #[serde(rename = "w")]
    score: f64,
    #[serde(rename = "r")]
    rules: Vec<RuleRef<'a>>,
    #[serde(rename = "t")]
    evaluated_at: i64,
}

#[derive(Serialize)]
struct RuleRef<'a> {
    #[serde(rename = "r")]
    rule: &'a str,
    #[serde(rename = "l")]
    level: &'a str,
    #[serde(rename = "s")]
    status: RuleStatus,
    #[serde(rename = "m", skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(rename = "d", skip_serializing_if = "Option::is_none")]
    details: Option<&'a serde_json::Value>,
    #[serde(rename = "w")]
    weight: f64,
    /// Absent when equal to the result's `evaluated_at` (the usual case).
    #[serde(rename = "t", skip_serializing_if = "Option::is_none")]
    evaluated_at: Option<i64>,
    #[serde(rename = "c")]
    changed_at: i64,
}

#[derive(Deserialize)]
struct StoredResult {
    #[serde(rename = "e")]
    entity: String,
    #[serde(rename = "s")]
    scorecard: String,
    #[serde(rename = "l")]
    level: String,
    #[serde(rename = "i")]
    level_index: usize,
    #[serde(rename = "p")]
    percent: f64,
    #[serde(rename = "w")]
    score: f64,
    #[serde(rename = "r")]
    rules: Vec<StoredRule>,
    #[serde(rename = "t")]
    evaluated_at: i64,
}

#[derive(Deserialize)]
struct StoredRule {
    #[serde(rename = "r")]
    rule: String,
    #[serde(rename = "l")]
    level: String,
    #[serde(rename = "s")]
    status: RuleStatus,
    #[serde(rename = "m", default)]
    message: Option<String>,
    #[serde(rename = "d", default)]
    details: Option<serde_json::Value>,
    #[serde(rename = "w")]
    weight: f64,
    #[serde(rename = "t", default)]
    evaluated_at: Option<i64>,
    #[serde(rename = "c")]
    changed_at: i64,
}

pub(super) fn encode_result(key: &str, result: &ScorecardResult) -> Result<Vec<u8>, StoreError> {
    let ScorecardResult {
        entity,
        scorecard,
        level,
        level_index,
        percent,
        score,
        rules,
        evaluated_at,
    } = result;
    let evaluated_at = nanos(*evaluated_at);
    let rules = rules
        .iter()
        .map(|rule| {
            let RuleResult {
                rule,
                level,
                status,
                message,
                details,
                weight,
                evaluated_at: rule_evaluated_at,
                changed_at,
            } = rule;
            let rule_evaluated_at = nanos(*rule_evaluated_at);
            RuleRef {
                rule,
                level,
                status: *status,
                message: message.as_deref(),
                details: details.as_deref(),
                weight: *weight,
                evaluated_at: (rule_evaluated_at != evaluated_at).then_some(rule_evaluated_at),
                changed_at: nanos(*changed_at),
            }
        })
        .collect();
    let mirror = ResultRef {
        entity,
        scorecard,
        level,
        level_index: *level_index,
        percent: *percent,
        score: *score,
        rules,
        evaluated_at,
    };
    // Sized up front: growing the buffer by doubling costs as much as encoding a small result.
    let capacity = 96
        + result
            .rules
            .iter()
            .map(|r| 64 + r.rule.len() + r.level.len() + r.message.as_ref().map_or(0, String::len))
            .sum::<usize>();
    let mut bytes = Vec::with_capacity(capacity);
    mirror
        .serialize(&mut rmp_serde::Serializer::new(&mut bytes).with_struct_map())
        .map_err(|source| StoreError::Encode {
            table: "results".into(),
            key: key.replace(super::tables::SEP, "/"),
            source: Box::new(source),
        })?;
    Ok(bytes)
}

pub(super) fn decode_result(
    file: &str,
    key: &str,
    bytes: &[u8],
) -> Result<ScorecardResult, StoreError> {
    let StoredResult {
        entity,
        scorecard,
        level,
        level_index,
        percent,
        score,
        rules,
        evaluated_at,
    } = super::decode_value(file, "results", key, bytes)?;
    Ok(ScorecardResult {
        entity,
        scorecard: scorecard.into(),
        level: level.into(),
        level_index,
        percent,
        score,
        rules: rules
            .into_iter()
            .map(|r| RuleResult {
                rule: r.rule.into(),
                level: r.level.into(),
                status: r.status,
                message: r.message,
                details: r.details.map(std::sync::Arc::new),
                weight: r.weight,
                evaluated_at: time(r.evaluated_at.unwrap_or(evaluated_at)),
                changed_at: time(r.changed_at),
            })
            .collect(),
        evaluated_at: time(evaluated_at),
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn sample() -> ScorecardResult {
        let at = Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap();
        ScorecardResult {
            entity: "payments".into(),
            scorecard: "prod".into(),
            level: "Silver".into(),
            level_index: 2,
            percent: 66.7,
            score: 60.0,
            rules: vec![
                RuleResult {
                    rule: "has-owner".into(),
                    level: "Bronze".into(),
                    status: RuleStatus::Pass,
                    message: None,
                    details: None,
                    weight: 1.0,
                    evaluated_at: at,
                    changed_at: Utc.timestamp_opt(1_600_000_000, 1).unwrap(),
                },
                RuleResult {
                    rule: "slo-budget".into(),
                    level: "Gold".into(),
                    status: RuleStatus::Error,
                    message: Some("plugin timed out after 2000 ms".into()),
                    details: Some(std::sync::Arc::new(
                        serde_json::json!({"budget": [1, 2.5, "x"]}),
                    )),
                    weight: 2.0,
                    evaluated_at: at + chrono::Duration::milliseconds(3),
                    changed_at: at,
                },
            ],
            evaluated_at: at,
        }
    }

    #[test]
    fn results_round_trip_exactly() {
        let result = sample();
        let bytes = encode_result("k", &result).unwrap();
        assert_eq!(decode_result("f", "k", &bytes).unwrap(), result);
        let named = rmp_serde::to_vec_named(&result).unwrap();
        assert!(
            bytes.len() < named.len(),
            "{} >= {}",
            bytes.len(),
            named.len()
        );
    }

    #[test]
    fn garbage_is_a_decode_error_naming_the_table() {
        let error = decode_result("state.redb", "k", b"\x01\x02").unwrap_err();
        assert!(matches!(error, StoreError::Decode { ref table, .. } if table == "results"));
    }
}
