//! Queries: the `{combinator, conditions}` trees of scorecard filters, rule queries, rule filters
//! and initiative filters (DESIGN.md §4), parsed from their written form and compiled once, at
//! load time, into a form that evaluates without parsing or allocating: property paths are
//! pre-split, numbers and dates pre-parsed, regular expressions and version requirements
//! compiled. What a condition *means* for an entity lives in [`crate::eval`]; this module only
//! checks that a condition is well formed and prepares it.
//!
//! Decisions where DESIGN.md is silent:
//! - A query needs at least one condition; `in`, `notIn` and `containsAny` need a non-empty list.
//! - `isEmpty` / `isNotEmpty` take no `value`; every other operator needs one (`null` counts as
//!   none).
//! - `<`, `>`, `<=`, `>=`: a number (or numeric string) compares numerically, an ISO date or date-time
//!   compares in time, any other string compares by bytes. Booleans, lists and objects are refused.
//! - `between` / `notBetween`: `{from, to}` of dates (a date-only `to` includes that whole day),
//!   `{from, to}` of numbers (inclusive), or a preset. Presets are UTC: `today` and `yesterday`
//!   are calendar days; `lastWeek` / `last2Weeks` are the last 7 / 14 days up to now;
//!   `lastMonth`, `last3Months`, `last6Months`, `last12Months` go back calendar months from now.
//! - `satisfiesVersion` takes a semver requirement (`">=1.4, <2"`; a bare `1.4` means `^1.4`).
//! - `properties.<path>` is accepted as an explicit spelling of `<path>`; `facts.<source>` alone
//!   is the whole facts object of that source.
//! - Dates are `YYYY-MM-DD` (midnight UTC), RFC 3339 date-times, or date-times without a zone (UTC).
//! - Port's form `{"relation": "<name>", "operator": …, "value"?}` reads `relations.<name>` (the
//!   entity's targets of that relation) and takes the operators Port documents for relations:
//!   `isEmpty`, `isNotEmpty`, `=` (the relation includes that target), `!=` (it has targets and
//!   not that one), plus `in` / `containsAny` (it includes one of the listed targets). It is
//!   served back as written.
//! - Port's meta-properties: `$blueprint` is readyd's `$kind`; `$icon`, `$createdAt`,
//!   `$updatedAt`, `$createdBy` and `$updatedBy` read the entity's properties `icon`,
//!   `createdAt`, `updatedAt`, `createdBy`, `updatedBy` (readyd keeps no such metadata of its
//!   own: a catalog imported from Port or a data source may carry them; absent, they are empty).

use std::fmt;

use chrono::{NaiveDate, NaiveDateTime};
use regex::Regex;
use semver::VersionReq;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::model::Timestamp;

/// How a query combines its conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Combinator {
    And,
    Or,
}

/// A compiled query: every condition must hold (`and`) or at least one (`or`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Query {
    pub combinator: Combinator,
    pub conditions: Vec<QueryNode>,
}

/// One element of a query's `conditions`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum QueryNode {
    /// Boxed: a compiled condition is large, a nested query small.
    Condition(Box<Condition>),
    Query(Query),
}

/// A compiled condition `{property, operator, value?}`.
#[derive(Clone, Debug)]
pub struct Condition {
    pub property: PropertyPath,
    pub operator: Operator,
    /// The value as written (kept for display, serialization and change detection).
    pub value: Option<Value>,
    /// The value prepared for the operator.
    pub(crate) operand: Operand,
    /// The end of a message about this condition (`, required > 0`), built once.
    pub(crate) requirement: Box<str>,
    /// Set when written in Port's relation form (`{relation, operator}`): the relation's name and
    /// the operator as written (`operator` above is what it compiles to), so it is served back
    /// as written.
    pub(crate) relation: Option<(Box<str>, Operator)>,
}

impl PartialEq for Condition {
    // Two conditions are the same when written the same; the operand derives from them.
    fn eq(&self, other: &Condition) -> bool {
        self.property == other.property
            && self.operator == other.operator
            && self.value == other.value
            && self.relation == other.relation
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Written<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            property: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            relation: Option<&'a str>,
            operator: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            value: Option<&'a Value>,
        }
        let (property, relation, operator) = match &self.relation {
            Some((name, written)) => (None, Some(&**name), *written),
            None => (Some(self.property.as_str()), None, self.operator),
        };
        Written {
            property,
            relation,
            operator: operator.as_str(),
            value: self.value.as_ref(),
        }
        .serialize(s)
    }
}

/// The operators of DESIGN.md §4, spelled as written there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Contains,
    DoesNotContain,
    ContainsAny,
    BeginsWith,
    DoesNotBeginWith,
    EndsWith,
    DoesNotEndWith,
    IsEmpty,
    IsNotEmpty,
    In,
    NotIn,
    Between,
    NotBetween,
    MatchesRegex,
    SatisfiesVersion,
}

impl Operator {
    /// Every operator, in the order of DESIGN.md.
    pub const ALL: [Operator; 21] = [
        Operator::Eq,
        Operator::Ne,
        Operator::Lt,
        Operator::Gt,
        Operator::Le,
        Operator::Ge,
        Operator::Contains,
        Operator::DoesNotContain,
        Operator::ContainsAny,
        Operator::BeginsWith,
        Operator::DoesNotBeginWith,
        Operator::EndsWith,
        Operator::DoesNotEndWith,
        Operator::IsEmpty,
        Operator::IsNotEmpty,
        Operator::In,
        Operator::NotIn,
        Operator::Between,
        Operator::NotBetween,
        Operator::MatchesRegex,
        Operator::SatisfiesVersion,
    ];

    /// The operator as written in definitions.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "=",
            Operator::Ne => "!=",
            Operator::Lt => "<",
            Operator::Gt => ">",
            Operator::Le => "<=",
            Operator::Ge => ">=",
            Operator::Contains => "contains",
            Operator::DoesNotContain => "doesNotContains",
            Operator::ContainsAny => "containsAny",
            Operator::BeginsWith => "beginsWith",
            Operator::DoesNotBeginWith => "doesNotBeginsWith",
            Operator::EndsWith => "endsWith",
            Operator::DoesNotEndWith => "doesNotEndsWith",
            Operator::IsEmpty => "isEmpty",
            Operator::IsNotEmpty => "isNotEmpty",
            Operator::In => "in",
            Operator::NotIn => "notIn",
            Operator::Between => "between",
            Operator::NotBetween => "notBetween",
            Operator::MatchesRegex => "matchesRegex",
            Operator::SatisfiesVersion => "satisfiesVersion",
        }
    }

    /// The operator written `s`, if any.
    pub fn parse(s: &str) -> Option<Operator> {
        Operator::ALL.into_iter().find(|op| op.as_str() == s)
    }

    /// Whether the operator is the negation of another (`!=`, `notIn`, `doesNot…`, `notBetween`):
    /// such a condition holds only when the value is present and the positive relation does not.
    pub fn is_negation(self) -> bool {
        matches!(
            self,
            Operator::Ne
                | Operator::DoesNotContain
                | Operator::DoesNotBeginWith
                | Operator::DoesNotEndWith
                | Operator::NotIn
                | Operator::NotBetween
        )
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A property path, parsed once: a built-in (`$identifier`, `$title`, `$kind`, `$team`,
/// `$tier`), `facts.<source>.<path>`, `relations.<name>`, or a path into `properties`.
///
/// Path segments are split on `.`; a numeric segment also indexes an array. Because keys such as
/// Backstage annotations contain dots themselves (`pagerduty.com/service-id`), a lookup that
/// does not find a segment as a key tries the segment joined with the following ones.
#[derive(Clone, Debug)]
pub struct PropertyPath {
    raw: String,
    pub(crate) target: PathTarget,
}

impl PartialEq for PropertyPath {
    fn eq(&self, other: &PropertyPath) -> bool {
        self.raw == other.raw
    }
}

/// What a path reads.
#[derive(Clone, Debug)]
pub(crate) enum PathTarget {
    Identifier,
    Title,
    Kind,
    Team,
    Tier,
    /// `facts.<source>` then a path into that source's facts object.
    Fact {
        source: Span,
        path: Vec<Segment>,
    },
    /// `relations.<name>`.
    Relation(Span),
    /// A path into `properties`.
    Property(Vec<Segment>),
}

/// A byte range of the raw path.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    pub start: u32,
    pub end: u32,
}

/// One path segment: its text (a span of the raw path) and, if numeric, the array index.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segment {
    pub span: Span,
    pub index: Option<usize>,
}

impl PropertyPath {
    /// Parses a path as written in a condition.
    pub fn parse(raw: &str) -> Result<PropertyPath, String> {
        if raw.is_empty() {
            return Err("the property path is empty".to_owned());
        }
        if let Some(builtin) = raw.strip_prefix('$') {
            let target = match builtin {
                "identifier" => PathTarget::Identifier,
                "title" => PathTarget::Title,
                // Port's blueprint is readyd's kind.
                "kind" | "blueprint" => PathTarget::Kind,
                "team" => PathTarget::Team,
                "tier" => PathTarget::Tier,
                // Port's other meta-properties: readyd keeps no such metadata itself, so they
                // read the properties of the same name (the span skips the `$`).
                "icon" | "createdAt" | "updatedAt" | "createdBy" | "updatedBy" => {
                    PathTarget::Property(vec![Segment {
                        span: Span {
                            start: 1,
                            end: raw.len() as u32,
                        },
                        index: None,
                    }])
                }
                _ => {
                    return Err(format!(
                        "unknown built-in property `{raw}` (known: $identifier, $title, $kind, \
                         $team, $tier, and Port's $blueprint, $icon, $createdAt, $updatedAt, \
                         $createdBy, $updatedBy)"
                    ));
                }
            };
            return Ok(PropertyPath {
                raw: raw.to_owned(),
                target,
            });
        }
        if raw.len() > u32::MAX as usize {
            return Err("the property path is too long".to_owned());
        }
        let mut segments = Vec::new();
        let mut start = 0usize;
        for part in raw.split('.') {
            if part.is_empty() {
                return Err(format!("property path `{raw}` has an empty segment"));
            }
            let end = start + part.len();
            segments.push(Segment {
                span: Span {
                    start: start as u32,
                    end: end as u32,
                },
                index: part
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| part.parse().ok())
                    .flatten(),
            });
            start = end + 1;
        }
        let first = &raw[..segments[0].span.end as usize];
        let target = match first {
            "facts" => {
                if segments.len() < 2 {
                    return Err(format!(
                        "`{raw}`: name the data source, as in facts.<source>.<field>"
                    ));
                }
                PathTarget::Fact {
                    source: segments[1].span,
                    path: segments[2..].to_vec(),
                }
            }
            "relations" => {
                if segments.len() != 2 {
                    return Err(format!("`{raw}`: a relation is read as relations.<name>"));
                }
                PathTarget::Relation(segments[1].span)
            }
            "properties" if segments.len() > 1 => PathTarget::Property(segments[1..].to_vec()),
            _ => PathTarget::Property(segments),
        };
        Ok(PropertyPath {
            raw: raw.to_owned(),
            target,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The data source a `facts.<source>…` path reads (none for every other path).
    pub fn fact_source(&self) -> Option<&str> {
        match &self.target {
            PathTarget::Fact { source, .. } => Some(self.text(*source)),
            _ => None,
        }
    }

    /// The text of a span of this path.
    pub(crate) fn text(&self, span: Span) -> &str {
        &self.raw[span.start as usize..span.end as usize]
    }

    /// The text from the start of `from` to the end of `to` (segments joined by their dots).
    pub(crate) fn joined(&self, from: Span, to: Span) -> &str {
        &self.raw[from.start as usize..to.end as usize]
    }
}

impl fmt::Display for PropertyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// A value prepared for its operator.
#[derive(Clone, Debug)]
pub(crate) enum Operand {
    /// `isEmpty`, `isNotEmpty`.
    Nothing,
    /// `=`, `!=`, `contains`, `doesNotContains`, `beginsWith` … .
    Scalar(Scalar),
    /// `<`, `>`, `<=`, `>=`.
    Order(Bound),
    /// `in`, `notIn`, `containsAny`.
    List(Vec<Scalar>),
    /// `between`, `notBetween`.
    Range(Range),
    Regex(Regex),
    Version(VersionReq),
}

/// A written value in the forms the operators compare with.
#[derive(Clone, Debug)]
pub(crate) struct Scalar {
    /// Its text: the string itself, or a number's / boolean's JSON spelling.
    pub text: String,
    /// Its number, when it is a number or a numeric string.
    pub number: Option<f64>,
    /// Its boolean, when it is `true`/`false` (or those strings).
    pub boolean: Option<bool>,
    /// The written value, for comparing lists and objects.
    pub json: Value,
}

impl Scalar {
    pub(crate) fn new(json: &Value) -> Scalar {
        let (text, number, boolean) = match json {
            Value::String(s) => (
                s.clone(),
                parse_number(s),
                match s.as_str() {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => None,
                },
            ),
            Value::Number(n) => (n.to_string(), n.as_f64(), None),
            Value::Bool(b) => (b.to_string(), None, Some(*b)),
            other => (other.to_string(), None, None),
        };
        Scalar {
            text,
            number,
            boolean,
            json: json.clone(),
        }
    }
}

/// The bound of an ordering comparison.
#[derive(Clone, Debug)]
pub(crate) enum Bound {
    Number(f64),
    Date(Timestamp),
    Text(String),
}

/// The range of `between`.
#[derive(Clone, Debug)]
pub(crate) enum Range {
    /// `from <= t`, and `t <= to` (`t < to` when `to_exclusive`).
    Dates {
        from: Timestamp,
        to: Timestamp,
        to_exclusive: bool,
    },
    /// `from <= x <= to`.
    Numbers {
        from: f64,
        to: f64,
    },
    Preset(Preset),
}

/// The relative date ranges of `between`, resolved against the evaluation clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    Today,
    Yesterday,
    LastWeek,
    Last2Weeks,
    LastMonth,
    Last3Months,
    Last6Months,
    Last12Months,
}

impl Preset {
    const ALL: [(&'static str, Preset); 8] = [
        ("today", Preset::Today),
        ("yesterday", Preset::Yesterday),
        ("lastWeek", Preset::LastWeek),
        ("last2Weeks", Preset::Last2Weeks),
        ("lastMonth", Preset::LastMonth),
        ("last3Months", Preset::Last3Months),
        ("last6Months", Preset::Last6Months),
        ("last12Months", Preset::Last12Months),
    ];

    pub fn parse(s: &str) -> Option<Preset> {
        Preset::ALL
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, p)| *p)
    }

    pub fn as_str(self) -> &'static str {
        Preset::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("", |(n, _)| n)
    }

    /// The range `[start, end]` at `now` (UTC); `end` is exclusive for calendar days.
    /// Returns (start, end, end_exclusive).
    pub fn range(self, now: Timestamp) -> (Timestamp, Timestamp, bool) {
        use chrono::{Days, Months};
        let midnight = now.date_naive().and_time(chrono::NaiveTime::MIN).and_utc();
        let months = |m: u32| {
            now.checked_sub_months(Months::new(m))
                .unwrap_or(Timestamp::MIN_UTC)
        };
        let days = |d: u64| {
            now.checked_sub_days(Days::new(d))
                .unwrap_or(Timestamp::MIN_UTC)
        };
        match self {
            Preset::Today => (
                midnight,
                midnight
                    .checked_add_days(Days::new(1))
                    .unwrap_or(Timestamp::MAX_UTC),
                true,
            ),
            Preset::Yesterday => (
                midnight
                    .checked_sub_days(Days::new(1))
                    .unwrap_or(Timestamp::MIN_UTC),
                midnight,
                true,
            ),
            Preset::LastWeek => (days(7), now, false),
            Preset::Last2Weeks => (days(14), now, false),
            Preset::LastMonth => (months(1), now, false),
            Preset::Last3Months => (months(3), now, false),
            Preset::Last6Months => (months(6), now, false),
            Preset::Last12Months => (months(12), now, false),
        }
    }
}

/// A finite number written as a string (`"3"`, `" 2.5 "`), as comparisons read it.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    // Only decimal numbers (with an optional exponent): Rust also parses "inf" and "NaN", which
    // in a property are words, not numbers.
    let plain = !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'))
        && t.bytes().any(|b| b.is_ascii_digit());
    if !plain {
        return None;
    }
    t.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Parses an ISO date or date-time: `YYYY-MM-DD` (midnight UTC), RFC 3339, or a date-time
/// without zone (UTC). The flag says whether it was a date only.
pub fn parse_date(s: &str) -> Option<(Timestamp, bool)> {
    let b = s.as_bytes();
    // Cheap shape check first: most strings that reach here are not dates.
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' || !b[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    if b.len() == 10 {
        // `YYYY-MM-DD` with two-digit month and day, the usual form: read the digits directly
        // (chrono's format-string parser costs more than the rest of the rule); any other shape
        // goes through chrono, which decides.
        let two = |i: usize| {
            (b[i].is_ascii_digit() && b[i + 1].is_ascii_digit())
                .then(|| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0'))
        };
        let date = match (two(5), two(8)) {
            (Some(month), Some(day)) => {
                let year = b[..4]
                    .iter()
                    .fold(0i32, |y, d| y * 10 + i32::from(d - b'0'));
                NaiveDate::from_ymd_opt(year, month, day)?
            }
            _ => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?,
        };
        return Some((date.and_time(chrono::NaiveTime::MIN).and_utc(), true));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some((t.with_timezone(&chrono::Utc), false));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some((t.and_utc(), false));
        }
    }
    None
}

/// A query as written, before compilation.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQuery {
    pub combinator: Combinator,
    pub conditions: Vec<RawNode>,
}

/// A condition or nested query as written.
#[derive(Clone, Debug)]
pub(crate) enum RawNode {
    /// `property` is the path; in Port's relation form it is the relation's name and
    /// `relation` is set.
    Condition {
        property: String,
        relation: bool,
        operator: String,
        value: Option<Value>,
    },
    Query(RawQuery),
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RawNode, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            property: Option<String>,
            /// Port's relation conditions (`{"relation": "team", "operator": "isNotEmpty"}`).
            relation: Option<String>,
            operator: Option<String>,
            #[serde(default)]
            value: Option<Value>,
            combinator: Option<Combinator>,
            conditions: Option<Vec<RawNode>>,
        }
        let f = Fields::deserialize(d)?;
        if f.property.is_some() && f.relation.is_some() {
            return Err(D::Error::custom(
                "a condition reads a `property` or a `relation`, not both",
            ));
        }
        let leaf = f.property.is_some()
            || f.relation.is_some()
            || f.operator.is_some()
            || f.value.is_some();
        let nested = f.combinator.is_some() || f.conditions.is_some();
        match (leaf, nested) {
            (true, true) => Err(D::Error::custom(
                "a condition is either {property, operator, value} \
                 or a nested {combinator, conditions}, not both",
            )),
            (false, true) => Ok(RawNode::Query(RawQuery {
                combinator: f
                    .combinator
                    .ok_or_else(|| D::Error::missing_field("combinator"))?,
                conditions: f
                    .conditions
                    .ok_or_else(|| D::Error::missing_field("conditions"))?,
            })),
            (_, false) => Ok(RawNode::Condition {
                relation: f.relation.is_some(),
                property: f
                    .property
                    .or(f.relation)
                    .ok_or_else(|| D::Error::missing_field("property"))?,
                operator: f
                    .operator
                    .ok_or_else(|| D::Error::missing_field("operator"))?,
                value: f.value,
            }),
        }
    }
}

/// A fault found while compiling a query: where in the query (`conditions[1].conditions[0]`),
/// the operator involved (to find its line), and what is wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryFault {
    pub at: String,
    pub operator: Option<String>,
    pub message: String,
}

impl fmt::Display for QueryFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.at, self.message)
        }
    }
}

impl Query {
    /// Compiles a query from its JSON form (`{combinator, conditions}`), e.g. from an API request.
    pub fn from_value(value: &Value) -> Result<Query, Vec<QueryFault>> {
        let raw = RawQuery::deserialize(value).map_err(|e| {
            vec![QueryFault {
                at: String::new(),
                operator: None,
                message: e.to_string(),
            }]
        })?;
        compile(&raw, "")
    }
}

/// Compiles a written query; `at` prefixes fault locations.
pub(crate) fn compile(raw: &RawQuery, at: &str) -> Result<Query, Vec<QueryFault>> {
    let mut faults = Vec::new();
    let query = compile_into(raw, at, &mut faults);
    if faults.is_empty() {
        Ok(query)
    } else {
        Err(faults)
    }
}

fn compile_into(raw: &RawQuery, at: &str, faults: &mut Vec<QueryFault>) -> Query {
    if raw.conditions.is_empty() {
        faults.push(QueryFault {
            at: at.to_owned(),
            operator: None,
            message: "a query needs at least one condition".to_owned(),
        });
    }
    let mut conditions = Vec::with_capacity(raw.conditions.len());
    for (i, node) in raw.conditions.iter().enumerate() {
        let here = if at.is_empty() {
            format!("conditions[{i}]")
        } else {
            format!("{at}.conditions[{i}]")
        };
        match node {
            RawNode::Query(q) => conditions.push(QueryNode::Query(compile_into(q, &here, faults))),
            RawNode::Condition {
                property,
                relation,
                operator,
                value,
            } => match if *relation {
                compile_relation(property, operator, value.as_ref())
            } else {
                compile_condition(property, operator, value.as_ref())
            } {
                Ok(c) => conditions.push(QueryNode::Condition(Box::new(c))),
                Err(message) => faults.push(QueryFault {
                    at: here,
                    operator: Some(operator.clone()),
                    message,
                }),
            },
        }
    }
    Query {
        combinator: raw.combinator,
        conditions,
    }
}

fn compile_condition(
    property: &str,
    operator: &str,
    value: Option<&Value>,
) -> Result<Condition, String> {
    let op = Operator::parse(operator).ok_or_else(|| {
        let known: Vec<&str> = Operator::ALL.iter().map(|o| o.as_str()).collect();
        format!(
            "unknown operator `{operator}` (known: {})",
            known.join(", ")
        )
    })?;
    let property = PropertyPath::parse(property)?;
    let value = value.filter(|v| !v.is_null());
    let operand = compile_operand(op, value)?;
    Ok(Condition {
        property,
        operator: op,
        requirement: crate::eval::requirement(op, value),
        value: value.cloned(),
        operand,
        relation: None,
    })
}

/// The operators Port's relation conditions take, and what each compiles to on the list of the
/// relation's targets.
const RELATION_OPERATORS: [(Operator, Operator); 6] = [
    (Operator::IsEmpty, Operator::IsEmpty),
    (Operator::IsNotEmpty, Operator::IsNotEmpty),
    (Operator::Eq, Operator::Contains),
    (Operator::Ne, Operator::DoesNotContain),
    (Operator::In, Operator::ContainsAny),
    (Operator::ContainsAny, Operator::ContainsAny),
];

/// Compiles Port's `{relation, operator, value?}`: a condition on `relations.<name>`.
fn compile_relation(
    name: &str,
    operator: &str,
    value: Option<&Value>,
) -> Result<Condition, String> {
    let listed = || {
        RELATION_OPERATORS
            .iter()
            .map(|(w, _)| w.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (written, compiled) = Operator::parse(operator)
        .and_then(|op| RELATION_OPERATORS.iter().find(|(w, _)| *w == op).copied())
        .ok_or_else(|| {
            format!(
                "operator `{operator}` does not apply to a relation (relations take: {})",
                listed()
            )
        })?;
    if name.is_empty() || name.contains('.') {
        return Err(format!(
            "relation `{name}`: name one relation of the entity, without dots"
        ));
    }
    let property = PropertyPath::parse(&format!("relations.{name}"))?;
    let value = value.filter(|v| !v.is_null());
    if matches!(written, Operator::Eq | Operator::Ne)
        && !matches!(value, None | Some(Value::String(_)))
    {
        return Err(format!(
            "operator `{written}` on relation `{name}` needs an entity identifier (a string)"
        ));
    }
    let operand = compile_operand(compiled, value)?;
    Ok(Condition {
        property,
        operator: compiled,
        requirement: crate::eval::requirement(written, value),
        value: value.cloned(),
        operand,
        relation: Some((name.into(), written)),
    })
}

fn compile_operand(op: Operator, value: Option<&Value>) -> Result<Operand, String> {
    use Operator::*;
    let need = |what: &str| format!("operator `{op}` needs {what}");
    if matches!(op, IsEmpty | IsNotEmpty) {
        return match value {
            None => Ok(Operand::Nothing),
            Some(v) => Err(format!("operator `{op}` takes no value, got {v}")),
        };
    }
    let Some(value) = value else {
        return Err(need("a value"));
    };
    match op {
        Eq | Ne => match value {
            Value::Null => Err(need("a value")),
            v => Ok(Operand::Scalar(Scalar::new(v))),
        },
        Contains | DoesNotContain => match value {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                Ok(Operand::Scalar(Scalar::new(value)))
            }
            v => Err(format!(
                "operator `{op}` needs a string, number or boolean, got {v}"
            )),
        },
        BeginsWith | DoesNotBeginWith | EndsWith | DoesNotEndWith => match value {
            Value::String(_) | Value::Number(_) => Ok(Operand::Scalar(Scalar::new(value))),
            v => Err(format!("operator `{op}` needs a string, got {v}")),
        },
        Lt | Gt | Le | Ge => match value {
            Value::Number(n) => Ok(Operand::Order(Bound::Number(
                n.as_f64().ok_or_else(|| need("a finite number"))?,
            ))),
            Value::String(s) => Ok(Operand::Order(if let Some(n) = parse_number(s) {
                Bound::Number(n)
            } else if let Some((t, _)) = parse_date(s) {
                Bound::Date(t)
            } else if looks_like_date(s) {
                return Err(format!("operator `{op}`: `{s}` is not a valid date"));
            } else {
                Bound::Text(s.clone())
            })),
            v => Err(format!(
                "operator `{op}` needs a number, a string or an ISO date, got {v}"
            )),
        },
        In | NotIn | ContainsAny => match value {
            Value::Array(items) if !items.is_empty() => {
                if let Some(bad) = items
                    .iter()
                    .find(|v| v.is_array() || v.is_object() || v.is_null())
                {
                    return Err(format!(
                        "operator `{op}` needs a list of plain values, found {bad}"
                    ));
                }
                Ok(Operand::List(items.iter().map(Scalar::new).collect()))
            }
            Value::Array(_) => Err(need("a non-empty list")),
            v => Err(format!(
                "operator `{op}` needs a list (e.g. [a, b]), got {v}"
            )),
        },
        Between | NotBetween => compile_range(op, value).map(Operand::Range),
        MatchesRegex => match value {
            Value::String(s) => Regex::new(s).map(Operand::Regex).map_err(|e| {
                // The regex crate's message spans lines (pattern, caret, error): keep the error.
                let text = e.to_string();
                let last = text
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                let reason = last.trim().trim_start_matches("error: ");
                format!("operator `{op}`: invalid regular expression `{s}`: {reason}")
            }),
            v => Err(format!(
                "operator `{op}` needs a regular expression (a string), got {v}"
            )),
        },
        SatisfiesVersion => {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                v => {
                    return Err(format!(
                        "operator `{op}` needs a semver requirement such as \">=1.4, <2\", got {v}"
                    ));
                }
            };
            VersionReq::parse(&text)
                .map(Operand::Version)
                .map_err(|e| format!("operator `{op}`: invalid version requirement `{text}`: {e}"))
        }
        IsEmpty | IsNotEmpty => Ok(Operand::Nothing),
    }
}

fn looks_like_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10 && b[4] == b'-' && b[7] == b'-' && b[..4].iter().all(u8::is_ascii_digit)
}

fn compile_range(op: Operator, value: &Value) -> Result<Range, String> {
    let presets = Preset::ALL.map(|(n, _)| n).join(", ");
    match value {
        Value::String(s) => Preset::parse(s).map(Range::Preset).ok_or_else(|| {
            format!(
                "operator `{op}`: unknown preset `{s}` (known: {presets}), or give {{from, to}}"
            )
        }),
        Value::Object(map) => {
            if let Some(key) = map.keys().find(|k| *k != "from" && *k != "to") {
                return Err(format!(
                    "operator `{op}`: unknown key `{key}` (expected from and to)"
                ));
            }
            let (Some(from), Some(to)) = (map.get("from"), map.get("to")) else {
                return Err(format!("operator `{op}` needs both `from` and `to`"));
            };
            match (from, to) {
                (Value::Number(a), Value::Number(b)) => {
                    let (from, to) = (
                        a.as_f64().unwrap_or(f64::NAN),
                        b.as_f64().unwrap_or(f64::NAN),
                    );
                    if from > to {
                        return Err(format!("operator `{op}`: `from` {from} is after `to` {to}"));
                    }
                    Ok(Range::Numbers { from, to })
                }
                (Value::String(a), Value::String(b)) => {
                    let (from, _) = parse_date(a).ok_or_else(|| {
                        format!("operator `{op}`: `from` `{a}` is not an ISO date")
                    })?;
                    let (to, to_date_only) = parse_date(b)
                        .ok_or_else(|| format!("operator `{op}`: `to` `{b}` is not an ISO date"))?;
                    // A date-only `to` means "up to and including that day".
                    let (to, to_exclusive) = if to_date_only {
                        (to + chrono::Duration::days(1), true)
                    } else {
                        (to, false)
                    };
                    if from > to {
                        return Err(format!("operator `{op}`: `from` {a} is after `to` {b}"));
                    }
                    Ok(Range::Dates {
                        from,
                        to,
                        to_exclusive,
                    })
                }
                _ => Err(format!(
                    "operator `{op}`: `from` and `to` must both be ISO dates or both numbers"
                )),
            }
        }
        v => Err(format!(
            "operator `{op}` needs {{from, to}} or a preset ({presets}), got {v}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile_one(property: &str, operator: &str, value: Value) -> Result<Condition, String> {
        compile_condition(property, operator, Some(&value))
    }

    #[test]
    fn every_operator_round_trips_its_spelling() {
        for op in Operator::ALL {
            assert_eq!(Operator::parse(op.as_str()), Some(op));
        }
        assert_eq!(Operator::parse("gt"), None);
    }

    #[test]
    fn paths() {
        let p = PropertyPath::parse("facts.pagerduty.oncall.0.name").unwrap();
        match &p.target {
            PathTarget::Fact { source, path } => {
                assert_eq!(p.text(*source), "pagerduty");
                assert_eq!(path.len(), 3);
                assert_eq!(path[1].index, Some(0));
                assert_eq!(p.joined(path[0].span, path[2].span), "oncall.0.name");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            PropertyPath::parse("$tier").unwrap().target,
            PathTarget::Tier
        ));
        assert!(matches!(
            PropertyPath::parse("relations.dependsOn").unwrap().target,
            PathTarget::Relation(_)
        ));
        match PropertyPath::parse("properties.language").unwrap().target {
            PathTarget::Property(segs) => assert_eq!(segs.len(), 1),
            other => panic!("{other:?}"),
        }
        match PropertyPath::parse("properties").unwrap().target {
            PathTarget::Property(segs) => assert_eq!(segs.len(), 1),
            other => panic!("{other:?}"),
        }
        for bad in [
            "",
            "$owner",
            "a..b",
            "facts",
            "relations",
            "relations.a.b",
            "x.",
        ] {
            assert!(PropertyPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn value_shapes_are_checked_per_operator() {
        assert!(
            compile_one("x", "in", json!("a"))
                .unwrap_err()
                .contains("needs a list")
        );
        assert!(
            compile_one("x", "in", json!([]))
                .unwrap_err()
                .contains("non-empty")
        );
        assert!(compile_one("x", "notIn", json!([[1]])).is_err());
        assert!(
            compile_one("x", "matchesRegex", json!("a("))
                .unwrap_err()
                .contains("invalid regular expression")
        );
        assert!(compile_one("x", "satisfiesVersion", json!(">=1.4, <2")).is_ok());
        assert!(
            compile_one("x", "satisfiesVersion", json!(">>1"))
                .unwrap_err()
                .contains("invalid version requirement")
        );
        assert!(
            compile_one(
                "x",
                "between",
                json!({"from": "2024-01-01", "to": "2024-13-01"})
            )
            .unwrap_err()
            .contains("not an ISO date")
        );
        assert!(
            compile_one(
                "x",
                "between",
                json!({"from": "2024-02-01", "to": "2024-01-01"})
            )
            .unwrap_err()
            .contains("after")
        );
        assert!(
            compile_one("x", "between", json!("lastDecade"))
                .unwrap_err()
                .contains("unknown preset")
        );
        assert!(compile_one("x", "between", json!({"from": 1})).is_err());
        assert!(compile_one("x", "between", json!({"from": 1, "to": 2, "by": 3})).is_err());
        assert!(compile_one("x", "between", json!("last3Months")).is_ok());
        assert!(compile_one("x", ">", json!(true)).is_err());
        assert!(
            compile_one("x", ">", json!("2024-02-30"))
                .unwrap_err()
                .contains("not a valid date")
        );
        assert!(
            compile_one("x", "isEmpty", json!("x"))
                .unwrap_err()
                .contains("takes no value")
        );
        assert!(
            compile_condition("x", "=", None)
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            compile_condition("x", "=", Some(&Value::Null))
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(compile_condition("x", "isEmpty", None).is_ok());
        assert!(compile_one("x", "beginsWith", json!(["a"])).is_err());
        assert!(compile_one("x", "contains", json!({"a": 1})).is_err());
        assert!(
            compile_one("x", "like", json!(1))
                .unwrap_err()
                .contains("unknown operator `like`")
        );
    }

    #[test]
    fn order_bounds() {
        let bound = |v: Value| match compile_one("x", "<", v).unwrap().operand {
            Operand::Order(b) => b,
            other => panic!("{other:?}"),
        };
        assert!(matches!(bound(json!(3)), Bound::Number(n) if n == 3.0));
        assert!(matches!(bound(json!("2.5")), Bound::Number(n) if n == 2.5));
        assert!(matches!(bound(json!("2024-05-01")), Bound::Date(_)));
        assert!(matches!(bound(json!("beta")), Bound::Text(_)));
    }

    #[test]
    fn dates() {
        let (t, date_only) = parse_date("2024-05-01").unwrap();
        assert!(date_only);
        assert_eq!(t.to_rfc3339(), "2024-05-01T00:00:00+00:00");
        let (t, date_only) = parse_date("2024-05-01T12:30:00+02:00").unwrap();
        assert!(!date_only);
        assert_eq!(t.to_rfc3339(), "2024-05-01T10:30:00+00:00");
        assert!(parse_date("2024-05-01T12:30:00").is_some());
        assert!(parse_date("2024-05-01 12:30:00.5").is_some());
        for bad in ["2024-5-1", "yesterday", "2024-05-32", "20240501", "1.2.3"] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn day_dates_read_as_chrono_reads_them() {
        // The digit fast path must agree with chrono's `%Y-%m-%d` on every such string,
        // impossible dates and odd padding included.
        for year in ["0000", "1999", "2000", "2023", "2024", "2100", "9999"] {
            for month in (0..=13)
                .map(|m| format!("{m:02}"))
                .chain([" 1".into(), "1 ".into()])
            {
                for day in (0..=33).map(|d| format!("{d:02}")).chain([" 9".into()]) {
                    let s = format!("{year}-{month}-{day}");
                    let chrono = NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                        .ok()
                        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc());
                    assert_eq!(parse_date(&s).map(|(t, _)| t), chrono, "{s}");
                }
            }
        }
    }

    #[test]
    fn numbers_in_strings() {
        assert_eq!(parse_number(" 3 "), Some(3.0));
        assert_eq!(parse_number("-2.5"), Some(-2.5));
        for s in ["inf", "NaN", "", "1.2.3", "e", "3 apples"] {
            assert_eq!(parse_number(s), None, "{s}");
        }
    }

    #[test]
    fn presets_resolve_against_the_clock() {
        let now = parse_date("2024-03-31T15:00:00Z").unwrap().0;
        let (from, to, excl) = Preset::Today.range(now);
        assert_eq!(
            (from.to_rfc3339().as_str(), to.to_rfc3339().as_str(), excl),
            (
                "2024-03-31T00:00:00+00:00",
                "2024-04-01T00:00:00+00:00",
                true
            )
        );
        let (from, to, _) = Preset::Yesterday.range(now);
        assert_eq!(from.to_rfc3339(), "2024-03-30T00:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2024-03-31T00:00:00+00:00");
        let (from, to, excl) = Preset::LastMonth.range(now);
        // Calendar month back, clamped to the end of February.
        assert_eq!(from.to_rfc3339(), "2024-02-29T15:00:00+00:00");
        assert_eq!((to, excl), (now, false));
        assert_eq!(
            Preset::LastWeek.range(now).0.to_rfc3339(),
            "2024-03-24T15:00:00+00:00"
        );
        assert_eq!(
            Preset::Last12Months.range(now).0.to_rfc3339(),
            "2023-03-31T15:00:00+00:00"
        );
    }

    #[test]
    fn from_value_reports_every_fault_with_its_place() {
        let q = json!({"combinator": "and", "conditions": [
            {"property": "a", "operator": "gt", "value": 1},
            {"combinator": "or", "conditions": [{"property": "$nope", "operator": "=", "value": 1}]},
            {"combinator": "or", "conditions": []}
        ]});
        let faults = Query::from_value(&q).unwrap_err();
        let text: Vec<String> = faults.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(
            text[0].starts_with("conditions[0]: unknown operator `gt`"),
            "{text:?}"
        );
        assert!(
            text[1].starts_with("conditions[1].conditions[0]: unknown built-in"),
            "{text:?}"
        );
        assert!(
            text[2].starts_with("conditions[2]: a query needs at least one condition"),
            "{text:?}"
        );
        let bad = json!({"combinator": "and", "conditions": [{"property": "a", "operator": "=", "value": 1, "combinator": "or"}]});
        assert!(
            Query::from_value(&bad).unwrap_err()[0]
                .message
                .contains("not both")
        );
    }

    #[test]
    fn serializes_as_written() {
        let q = json!({"combinator": "or", "conditions": [
            {"property": "facts.pd.count", "operator": ">", "value": 0},
            {"combinator": "and", "conditions": [{"property": "$team", "operator": "isNotEmpty"}]}
        ]});
        let compiled = Query::from_value(&q).unwrap();
        assert_eq!(serde_json::to_value(&compiled).unwrap(), q);
    }
}
