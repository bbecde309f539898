//! Strict query strings: a route accepts only the parameters its table row names, each at most
//! once, each with a value of its [`ParamKind`]. Anything else is a 400 that says what was wrong,
//! because a silently ignored `?teem=payments` answers a different question than the one asked.
//!
//! [`Query`] holds the validated values; handlers read them typed (`text`, `tier`, `choice`). This
//! module never sees bodies or paths.

use serde::de::DeserializeOwned;

use super::errors::ApiError;
use crate::model::Tier;

/// The kind of value a query parameter takes; also its OpenAPI schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// Any non-empty string.
    Text,
    /// `1`, `2` or `3`.
    Tier,
    /// An [`ExemptionStatus`](crate::model::ExemptionStatus) name.
    ExemptionStatus,
    /// A [`TierRequestStatus`](crate::model::TierRequestStatus) name.
    TierRequestStatus,
    /// A [`TaskStatus`](crate::model::TaskStatus) name.
    TaskStatus,
}

impl ParamKind {
    /// The accepted words of an enumerated kind (the serde names of the model's enums).
    pub fn choices(self) -> &'static [&'static str] {
        match self {
            ParamKind::Text | ParamKind::Tier => &[],
            ParamKind::ExemptionStatus => &["pending", "approved", "denied", "revoked", "expired"],
            ParamKind::TierRequestStatus => &["pending", "approved", "denied"],
            ParamKind::TaskStatus => &["open", "overdue", "done"],
        }
    }

    fn check(self, value: &str) -> Result<(), String> {
        match self {
            _ if value.is_empty() => Err("must not be empty".into()),
            ParamKind::Text => Ok(()),
            ParamKind::Tier => parse_tier(value).map(|_| ()),
            _ if self.choices().contains(&value) => Ok(()),
            _ => Err(format!(
                "`{value}` is not one of {}",
                self.choices().join(", ")
            )),
        }
    }
}

fn parse_tier(value: &str) -> Result<Tier, String> {
    match value.parse::<Tier>() {
        Ok(tier @ 1..=3) => Ok(tier),
        _ => Err(format!("`{value}` is not a tier (1, 2 or 3)")),
    }
}

/// One accepted query parameter of a route.
#[derive(Clone, Copy, Debug)]
pub struct QueryParam {
    pub name: &'static str,
    pub kind: ParamKind,
    pub description: &'static str,
}

/// The validated query string of one request.
#[derive(Debug, Default)]
pub struct Query {
    values: Vec<(&'static str, String)>,
}

impl Query {
    /// Parse `raw` (the URI's query, without `?`) against the parameters a route accepts.
    pub fn parse(raw: Option<&str>, accepted: &'static [QueryParam]) -> Result<Query, ApiError> {
        let mut query = Query::default();
        for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let Some(param) = accepted.iter().find(|p| p.name == name) else {
                let expected = if accepted.is_empty() {
                    "this endpoint takes no query parameters".to_owned()
                } else {
                    let names: Vec<_> = accepted.iter().map(|p| p.name).collect();
                    format!("expected one of {}", names.join(", "))
                };
                return Err(ApiError::InvalidQuery(format!(
                    "unknown query parameter `{name}`: {expected}"
                )));
            };
            if query.values.iter().any(|(n, _)| *n == param.name) {
                return Err(ApiError::InvalidQuery(format!(
                    "query parameter `{name}` is given twice"
                )));
            }
            param.kind.check(&value).map_err(|message| {
                ApiError::InvalidQuery(format!("query parameter `{name}`: {message}"))
            })?;
            query.values.push((param.name, value.into_owned()));
        }
        Ok(query)
    }

    /// The value of a text parameter, if given.
    pub fn text(&self, name: &str) -> Option<String> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }

    /// The value of a tier parameter, if given.
    pub fn tier(&self, name: &str) -> Result<Option<Tier>, ApiError> {
        self.text(name)
            .map(|v| parse_tier(&v))
            .transpose()
            .map_err(|m| ApiError::InvalidQuery(format!("query parameter `{name}`: {m}")))
    }

    /// The value of an enumerated parameter as the model's serde enum, if given.
    pub fn choice<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.text(name)
            .map(|v| serde_json::from_value(serde_json::Value::String(v)))
            .transpose()
            .map_err(|e| ApiError::InvalidQuery(format!("query parameter `{name}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ExemptionStatus, TaskStatus, TierRequestStatus};

    const ACCEPTED: &[QueryParam] = &[
        QueryParam {
            name: "team",
            kind: ParamKind::Text,
            description: "",
        },
        QueryParam {
            name: "tier",
            kind: ParamKind::Tier,
            description: "",
        },
        QueryParam {
            name: "status",
            kind: ParamKind::TaskStatus,
            description: "",
        },
    ];

    fn refused(raw: &str) -> String {
        match Query::parse(Some(raw), ACCEPTED) {
            Err(ApiError::InvalidQuery(m)) => m,
            other => panic!("{raw}: {other:?}"),
        }
    }

    #[test]
    fn accepts_named_parameters_with_good_values() {
        let q = Query::parse(Some("team=pay%20ments&tier=2&status=overdue"), ACCEPTED).unwrap();
        assert_eq!(q.text("team").as_deref(), Some("pay ments"));
        assert_eq!(q.tier("tier").unwrap(), Some(2));
        assert_eq!(
            q.choice::<TaskStatus>("status").unwrap(),
            Some(TaskStatus::Overdue)
        );
        let q = Query::parse(None, ACCEPTED).unwrap();
        assert_eq!(q.text("team"), None);
        assert_eq!(q.tier("tier").unwrap(), None);
        assert!(Query::parse(Some(""), &[]).is_ok());
    }

    #[test]
    fn refuses_unknown_repeated_and_bad_values() {
        assert!(refused("teem=x").contains("unknown query parameter `teem`"));
        assert!(refused("teem=x").contains("expected one of team, tier, status"));
        assert!(refused("team=a&team=b").contains("twice"));
        assert!(refused("tier=4").contains("not a tier"));
        assert!(refused("tier=one").contains("not a tier"));
        assert!(refused("status=closed").contains("not one of open, overdue, done"));
        assert!(refused("team=").contains("must not be empty"));
        assert!(refused("team").contains("must not be empty"));
        match Query::parse(Some("x=1"), &[]) {
            Err(ApiError::InvalidQuery(m)) => assert!(m.contains("takes no query parameters")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn choices_are_the_model_serde_names() {
        for word in ParamKind::ExemptionStatus.choices() {
            serde_json::from_value::<ExemptionStatus>(serde_json::json!(word)).unwrap();
        }
        for word in ParamKind::TierRequestStatus.choices() {
            serde_json::from_value::<TierRequestStatus>(serde_json::json!(word)).unwrap();
        }
        for word in ParamKind::TaskStatus.choices() {
            serde_json::from_value::<TaskStatus>(serde_json::json!(word)).unwrap();
        }
    }
}
