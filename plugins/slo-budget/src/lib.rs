//! `slo-budget`: a check that passes while a service's SLO error budget lasts.
//!
//! Params: `{ "source": "prometheus", "warn_below": 0.25, "objective": 99.9 }` (all optional).
//! It reads `facts.<source>.slo.error_budget_remaining` (the fraction of the budget left, as the
//! `prometheus` data source reports it); when that is missing but an availability is there
//! (`slo.availability` or `availability`, a fraction) and an objective is known (the param, or
//! `slo.objective`, a percentage), it computes `1 - (1 - availability) / (1 - objective / 100)`.
//! Pass while the remaining budget is above `warn_below`, warn when it is above 0 but at most
//! `warn_below`, fail at 0 or below. Missing facts fail with a message naming the fact.

use readyd_plugin_sdk::{Check, Config, Entity, Facts, Outcome, Params, PluginError};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_source")]
    source: String,
    #[serde(default = "default_warn_below")]
    warn_below: f64,
    #[serde(default)]
    objective: Option<f64>,
}

fn default_source() -> String {
    "prometheus".to_string()
}

fn default_warn_below() -> f64 {
    0.25
}

/// The error-budget check.
#[derive(Debug)]
pub struct SloBudget;

impl Check for SloBudget {
    fn init(_config: Config) -> Result<Self, PluginError> {
        Ok(SloBudget)
    }

    fn evaluate(&self, _: &Entity, facts: &Facts, params: &Params) -> Result<Outcome, PluginError> {
        let settings: Settings = params.deserialize()?;
        if !(0.0..1.0).contains(&settings.warn_below) {
            return Err(PluginError::invalid_config(format!(
                "warn_below {} must be a fraction of the budget, at least 0 and below 1",
                settings.warn_below
            )));
        }
        if let Some(objective) = settings.objective
            && !(objective > 0.0 && objective < 100.0)
        {
            return Err(PluginError::invalid_config(format!(
                "objective {objective} must be a percentage between 0 and 100, like 99.9"
            )));
        }
        let source = settings.source.as_str();
        let Some(budget) = budget(facts, source, settings.objective) else {
            return Ok(Outcome::fail(missing_message(
                facts,
                source,
                settings.objective,
            )));
        };
        let percent = budget.remaining * 100.0;
        let context = match (budget.availability, budget.objective) {
            (Some(a), Some(o)) => {
                format!(" (availability {}%, objective {o}%)", round(a * 100.0, 4))
            }
            _ => String::new(),
        };
        // What the budget was computed from; unknown values are left out rather than null.
        let mut details = json!({
            "error_budget_remaining": budget.remaining,
            "warn_below": settings.warn_below,
        });
        for (key, value) in [
            ("availability", budget.availability),
            ("objective", budget.objective),
        ] {
            if let Some(value) = value {
                details[key] = json!(value);
            }
        }
        let outcome = if budget.remaining > settings.warn_below {
            Outcome::pass(format!(
                "{}% of the error budget left{context}",
                round(percent, 1)
            ))
        } else if budget.remaining > 0.0 {
            Outcome::warn(format!(
                "only {}% of the error budget left, below the {}% warning line{context}",
                round(percent, 1),
                round(settings.warn_below * 100.0, 1)
            ))
        } else {
            Outcome::fail(format!(
                "error budget exhausted: {}% left{context}",
                round(percent, 1)
            ))
        };
        Ok(outcome.with_details(details))
    }
}

/// The remaining budget and what it was computed from.
struct Budget {
    remaining: f64,
    availability: Option<f64>,
    objective: Option<f64>,
}

fn budget(facts: &Facts, source: &str, objective_param: Option<f64>) -> Option<Budget> {
    let availability = facts
        .get::<f64>(source, "slo.availability")
        .or_else(|| facts.get::<f64>(source, "availability"));
    let objective = objective_param.or_else(|| facts.get::<f64>(source, "slo.objective"));
    if let Some(remaining) = facts.get::<f64>(source, "slo.error_budget_remaining") {
        return Some(Budget {
            remaining,
            availability,
            objective,
        });
    }
    let (availability, objective) = (availability?, objective?);
    let remaining = 1.0 - (1.0 - availability) / (1.0 - objective / 100.0);
    Some(Budget {
        remaining,
        availability: Some(availability),
        objective: Some(objective),
    })
}

fn missing_message(facts: &Facts, source: &str, objective: Option<f64>) -> String {
    if facts.source(source).is_none() {
        return format!("no facts from {source}: missing {source}.slo.error_budget_remaining");
    }
    let has_availability = facts.get::<f64>(source, "slo.availability").is_some()
        || facts.get::<f64>(source, "availability").is_some();
    if has_availability && objective.is_none() {
        format!(
            "missing fact {source}.slo.error_budget_remaining, and no objective param to compute it from {source}.availability"
        )
    } else {
        format!(
            "missing fact {source}.slo.error_budget_remaining (and no {source}.availability to compute it)"
        )
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

readyd_plugin_sdk::export!(SloBudget as check);

#[cfg(test)]
mod tests {
    use super::*;
    use readyd_plugin_sdk::Status;
    use serde_json::Value;

    fn evaluate(facts: Facts, params: Value) -> Result<Outcome, PluginError> {
        SloBudget.evaluate(
            &Entity::new("payments", "service"),
            &facts,
            &Params::from_json(params),
        )
    }

    fn remaining(value: f64) -> Facts {
        Facts::new().with_source(
            "prometheus",
            json!({"slo": {"error_budget_remaining": value}}),
        )
    }

    #[test]
    fn pass_warn_fail_by_remaining_budget() {
        let pass = evaluate(remaining(0.62), json!({})).unwrap();
        assert_eq!(
            (pass.status, pass.message()),
            (Status::Pass, "62% of the error budget left")
        );
        let warn = evaluate(remaining(0.25), json!({})).unwrap();
        assert_eq!(warn.status, Status::Warn);
        assert_eq!(
            warn.message(),
            "only 25% of the error budget left, below the 25% warning line"
        );
        let fail = evaluate(remaining(0.0), json!({})).unwrap();
        assert_eq!(
            (fail.status, fail.message()),
            (Status::Fail, "error budget exhausted: 0% left")
        );
        assert_eq!(
            evaluate(remaining(-1.5), json!({})).unwrap().status,
            Status::Fail
        );
        assert_eq!(
            evaluate(remaining(0.3), json!({"warn_below": 0.5}))
                .unwrap()
                .status,
            Status::Warn
        );
    }

    #[test]
    fn computes_the_budget_from_availability_and_objective() {
        let facts = Facts::new().with_source("slo-api", json!({"availability": 0.9995}));
        let outcome = evaluate(facts, json!({"source": "slo-api", "objective": 99.9})).unwrap();
        assert_eq!(outcome.status, Status::Pass);
        assert_eq!(
            outcome.message(),
            "50% of the error budget left (availability 99.95%, objective 99.9%)"
        );
        let details = outcome.details.unwrap();
        assert!((details["error_budget_remaining"].as_f64().unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(details["objective"], json!(99.9));
        let bare = evaluate(remaining(0.62), json!({}))
            .unwrap()
            .details
            .unwrap();
        assert_eq!(
            bare,
            json!({"error_budget_remaining": 0.62, "warn_below": 0.25})
        );
    }

    #[test]
    fn missing_facts_fail_and_say_which() {
        let none = evaluate(Facts::new(), json!({})).unwrap();
        assert_eq!(none.status, Status::Fail);
        assert_eq!(
            none.message(),
            "no facts from prometheus: missing prometheus.slo.error_budget_remaining"
        );
        let no_objective = Facts::new().with_source("prometheus", json!({"availability": 0.99}));
        let outcome = evaluate(no_objective, json!({})).unwrap();
        assert_eq!(outcome.status, Status::Fail);
        assert!(
            outcome.message().contains("no objective param"),
            "{}",
            outcome.message()
        );
        let other = Facts::new().with_source("prometheus", json!({"latency": 3}));
        assert!(
            evaluate(other, json!({}))
                .unwrap()
                .message()
                .contains("no prometheus.availability")
        );
    }

    #[test]
    fn rejects_bad_params() {
        assert!(matches!(
            evaluate(remaining(1.0), json!({"warn_below": 1.5})),
            Err(PluginError::InvalidConfig(_))
        ));
        assert!(matches!(
            evaluate(remaining(1.0), json!({"objective": 120})),
            Err(PluginError::InvalidConfig(_))
        ));
        assert!(matches!(
            evaluate(remaining(1.0), json!({"warn_below": "low"})),
            Err(PluginError::InvalidConfig(_))
        ));
    }
}
