//! What a condition means for one entity: reading a property path, applying an operator, and
//! — only when a query does not hold — explaining why in plain words.
//!
//! The hot path ([`holds`]) borrows everything and allocates nothing; messages are built by
//! [`explain`] only for queries that failed.
//!
//! Semantics (DESIGN.md §4, and the decisions where it is silent):
//! - Missing data: an absent or `null` value makes every operator false except `isEmpty`,
//!   negations included.
//! - A value of a kind the operator cannot compare (a list for `beginsWith`, a word for `>` with a
//!   number, a non-date for `between`) makes the condition false too, negations included: the
//!   message says why. Negations hold only when the value is present, comparable, and the positive
//!   relation does not hold.
//! - `=` / `!=`: numbers compare numerically, also when one side is a numeric string (`"3"` = 3);
//!   strings compare exactly; booleans also match `"true"` / `"false"`; lists and objects compare
//!   structurally with a written list or object.
//! - `contains`: substring of a string, or an element of a list (by `=`). `containsAny`: any of
//!   the listed values, the same way. `in`: the value (a single value, not a list) equals one of
//!   the listed values.
//! - `beginsWith` / `endsWith` / `matchesRegex` read strings only.
//! - `between` is inclusive of `from`; inclusive of `to` unless `to` was a date only (then the
//!   whole day counts) or the preset is a calendar day.
//! - `satisfiesVersion` reads versions leniently: `v1.2.3`, `1.2` (= 1.2.0) and `1` (= 1.0.0);
//!   a number such as YAML's `1.4` is read as `1.4.0`.

use std::cmp::Ordering;
use std::fmt::Write;

use semver::Version;
use serde_json::Value;

use crate::model::{Entity, EntityFacts, JsonObject, Timestamp};
use crate::standards::query::{
    Bound, Operand, PathTarget, Range, Scalar, Segment, parse_date, parse_number,
};
use crate::standards::{Combinator, Condition, Operator, PropertyPath, Query, QueryNode};

/// What conditions read: the entity, its facts, and the evaluation clock.
#[derive(Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub entity: &'a Entity,
    pub facts: &'a EntityFacts,
    pub now: Timestamp,
}

/// A present (non-null) value, borrowed from the entity or its facts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Val<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
    List(List<'a>),
    Object(&'a JsonObject),
}

/// A list: from JSON, or an entity's relation targets.
#[derive(Clone, Copy, Debug)]
pub(crate) enum List<'a> {
    Json(&'a [Value]),
    Strs(&'a [String]),
}

impl<'a> List<'a> {
    fn len(self) -> usize {
        match self {
            List::Json(items) => items.len(),
            List::Strs(items) => items.len(),
        }
    }

    /// Whether any present element satisfies `f` (null elements never do).
    fn any(self, mut f: impl FnMut(Val<'a>) -> bool) -> bool {
        match self {
            List::Json(items) => items.iter().filter_map(val_of).any(f),
            List::Strs(items) => items.iter().any(|s| f(Val::Str(s))),
        }
    }
}

fn val_of(v: &Value) -> Option<Val<'_>> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(Val::Bool(*b)),
        Value::Number(n) => n.as_f64().map(Val::Num),
        Value::String(s) => Some(Val::Str(s)),
        Value::Array(items) => Some(Val::List(List::Json(items))),
        Value::Object(map) => Some(Val::Object(map)),
    }
}

/// Reads a property path; `None` when absent or null.
pub(crate) fn resolve<'a>(path: &PropertyPath, s: &Subject<'a>) -> Option<Val<'a>> {
    let e = s.entity;
    match &path.target {
        PathTarget::Identifier => Some(Val::Str(&e.identifier)),
        PathTarget::Title => Some(Val::Str(&e.title)),
        PathTarget::Kind => Some(Val::Str(&e.kind)),
        PathTarget::Team => e.team.as_deref().map(Val::Str),
        PathTarget::Tier => e.tier.map(|t| Val::Num(f64::from(t))),
        PathTarget::Relation(name) => e
            .relations
            .get(path.text(*name))
            .map(|targets| Val::List(List::Strs(targets))),
        PathTarget::Property(segments) => walk_map(&e.properties, path, segments).and_then(val_of),
        PathTarget::Fact {
            source,
            path: segments,
        } => {
            let source = path.text(*source);
            // An entity has a few data sources: scanned like the keys of a small object.
            let record = if s.facts.len() <= 8 {
                s.facts
                    .iter()
                    .find(|(k, _)| same_key(k, source))
                    .map(|(_, v)| v)
            } else {
                s.facts.get(source)
            }?;
            if segments.is_empty() {
                Some(Val::Object(&record.facts))
            } else {
                walk_map(&record.facts, path, segments).and_then(val_of)
            }
        }
    }
}

/// Follows `segments` (non-empty) from an object. A segment not found as a key is tried joined
/// with the following segments, so dotted keys (`pagerduty.com/service-id`) are reachable.
fn walk_map<'a>(
    map: &'a JsonObject,
    path: &PropertyPath,
    segments: &[Segment],
) -> Option<&'a Value> {
    let first = segments.first()?;
    for (j, last) in segments.iter().enumerate() {
        if let Some(child) = lookup(map, path.joined(first.span, last.span))
            && let Some(found) = walk(child, path, &segments[j + 1..])
        {
            return Some(found);
        }
    }
    None
}

/// A key's value. Objects in catalogs and facts are small: a scan of the entries beats hashing
/// the key (serde_json's map hashes with SipHash), and finds the same entry (keys are unique).
fn lookup<'a>(map: &'a JsonObject, key: &str) -> Option<&'a Value> {
    const SCAN: usize = 16;
    if map.len() <= SCAN {
        map.iter().find(|(k, _)| same_key(k, key)).map(|(_, v)| v)
    } else {
        map.get(key)
    }
}

/// `a == b`, with the length and first byte compared inline: while scanning keys, most
/// candidates differ there, and the byte comparison call is then skipped.
#[inline]
fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}

fn walk<'a>(value: &'a Value, path: &PropertyPath, segments: &[Segment]) -> Option<&'a Value> {
    let Some(first) = segments.first() else {
        return Some(value);
    };
    match value {
        Value::Object(map) => walk_map(map, path, segments),
        Value::Array(items) => walk(items.get(first.index?)?, path, &segments[1..]),
        _ => None,
    }
}

/// The outcome of one condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Held,
    NotHeld,
    /// The value is absent or null.
    Missing,
    /// The value is present but of a kind the operator cannot compare; why.
    Mismatch(&'static str),
}

/// Applies a condition's operator to a value read by its path.
pub(crate) fn test(c: &Condition, actual: Option<Val<'_>>, now: Timestamp) -> Outcome {
    use Operator::*;
    let Some(a) = actual else {
        return if c.operator == IsEmpty {
            Outcome::Held
        } else {
            Outcome::Missing
        };
    };
    let positive: Result<bool, &'static str> = match (&c.operand, c.operator) {
        (_, IsEmpty | IsNotEmpty) => Ok(is_empty(a)),
        (Operand::Scalar(e), Eq | Ne) => Ok(equals(a, e)),
        (Operand::Order(b), Lt | Gt | Le | Ge) => compare(a, b).map(|ord| match c.operator {
            Lt => ord == Ordering::Less,
            Gt => ord == Ordering::Greater,
            Le => ord != Ordering::Greater,
            _ => ord != Ordering::Less,
        }),
        (Operand::Scalar(e), Contains | DoesNotContain) => match a {
            Val::Str(s) => Ok(s.contains(e.text.as_str())),
            Val::List(l) => Ok(l.any(|v| equals(v, e))),
            _ => Err("not a string or a list"),
        },
        (Operand::List(list), ContainsAny) => match a {
            Val::Str(s) => Ok(list.iter().any(|e| s.contains(e.text.as_str()))),
            Val::List(l) => Ok(l.any(|v| list.iter().any(|e| equals(v, e)))),
            _ => Err("not a string or a list"),
        },
        (Operand::Scalar(e), BeginsWith | DoesNotBeginWith) => match a {
            Val::Str(s) => Ok(s.starts_with(e.text.as_str())),
            _ => Err("not a string"),
        },
        (Operand::Scalar(e), EndsWith | DoesNotEndWith) => match a {
            Val::Str(s) => Ok(s.ends_with(e.text.as_str())),
            _ => Err("not a string"),
        },
        (Operand::List(list), In | NotIn) => match a {
            Val::List(_) | Val::Object(_) => Err("not a single value"),
            single => Ok(list.iter().any(|e| equals(single, e))),
        },
        (Operand::Range(range), Between | NotBetween) => in_range(a, range, now),
        (Operand::Regex(re), MatchesRegex) => match a {
            Val::Str(s) => Ok(re.is_match(s)),
            _ => Err("not a string"),
        },
        (Operand::Version(req), SatisfiesVersion) => version_of(a)
            .map(|v| req.matches(&v))
            .ok_or("not a version"),
        // Compilation pairs every operator with its operand; a mismatch cannot be built.
        _ => Err("not comparable"),
    };
    let negated = c.operator == IsNotEmpty || c.operator.is_negation();
    match positive {
        Ok(b) if b != negated => Outcome::Held,
        Ok(_) => Outcome::NotHeld,
        Err(why) => Outcome::Mismatch(why),
    }
}

fn is_empty(a: Val<'_>) -> bool {
    match a {
        Val::Str(s) => s.is_empty(),
        Val::List(l) => l.len() == 0,
        Val::Object(m) => m.is_empty(),
        Val::Num(_) | Val::Bool(_) => false,
    }
}

fn equals(a: Val<'_>, e: &Scalar) -> bool {
    match a {
        Val::Num(x) => e.number == Some(x),
        Val::Str(s) => s == e.text || (e.number.is_some() && parse_number(s) == e.number),
        Val::Bool(b) => e.boolean == Some(b),
        Val::List(l) => match &e.json {
            Value::Array(items) => list_equals(l, items),
            _ => false,
        },
        Val::Object(m) => matches!(&e.json, Value::Object(o) if o == m),
    }
}

fn list_equals(l: List<'_>, items: &[Value]) -> bool {
    match l {
        List::Json(values) => values == items,
        List::Strs(strs) => {
            strs.len() == items.len()
                && strs
                    .iter()
                    .zip(items)
                    .all(|(s, v)| v.as_str() == Some(s.as_str()))
        }
    }
}

fn number_of(a: Val<'_>) -> Option<f64> {
    match a {
        Val::Num(x) => Some(x),
        Val::Str(s) => parse_number(s),
        _ => None,
    }
}

fn date_of(a: Val<'_>) -> Option<Timestamp> {
    match a {
        Val::Str(s) => parse_date(s).map(|(t, _)| t),
        _ => None,
    }
}

fn compare(a: Val<'_>, bound: &Bound) -> Result<Ordering, &'static str> {
    match bound {
        Bound::Number(n) => number_of(a)
            .and_then(|x| x.partial_cmp(n))
            .ok_or("not a number"),
        Bound::Date(t) => date_of(a).map(|d| d.cmp(t)).ok_or("not a date"),
        Bound::Text(t) => match a {
            Val::Str(s) => Ok(s.cmp(t.as_str())),
            _ => Err("not a string"),
        },
    }
}

fn in_range(a: Val<'_>, range: &Range, now: Timestamp) -> Result<bool, &'static str> {
    let within = |from: Timestamp, to: Timestamp, to_exclusive: bool| {
        let d = date_of(a).ok_or("not a date")?;
        Ok(from <= d && if to_exclusive { d < to } else { d <= to })
    };
    match range {
        Range::Dates {
            from,
            to,
            to_exclusive,
        } => within(*from, *to, *to_exclusive),
        Range::Numbers { from, to } => {
            let x = number_of(a).ok_or("not a number")?;
            Ok(*from <= x && x <= *to)
        }
        Range::Preset(p) => {
            let (from, to, to_exclusive) = p.range(now);
            within(from, to, to_exclusive)
        }
    }
}

fn version_of(a: Val<'_>) -> Option<Version> {
    match a {
        Val::Str(s) => parse_version(s),
        Val::Num(x) if x.is_finite() && x >= 0.0 => parse_version(&x.to_string()),
        _ => None,
    }
}

/// `v1.2.3`, `1.2.3-rc.1`, `1.2` (1.2.0), `1` (1.0.0).
pub(crate) fn parse_version(s: &str) -> Option<Version> {
    let s = s.trim();
    let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
    if let Ok(v) = Version::parse(s) {
        return Some(v);
    }
    let core_end = s.find(['-', '+']).unwrap_or(s.len());
    let (core, rest) = s.split_at(core_end);
    let parts = core.split('.').count();
    if parts == 0
        || parts > 2
        || !core
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let padded = if parts == 1 {
        format!("{core}.0.0{rest}")
    } else {
        format!("{core}.0{rest}")
    };
    Version::parse(&padded).ok()
}

/// Whether a query holds for the subject. Allocates nothing.
pub(crate) fn holds(q: &Query, s: &Subject<'_>) -> bool {
    match q.combinator {
        Combinator::And => q.conditions.iter().all(|n| node_holds(n, s)),
        Combinator::Or => q.conditions.iter().any(|n| node_holds(n, s)),
    }
}

fn node_holds(node: &QueryNode, s: &Subject<'_>) -> bool {
    match node {
        QueryNode::Condition(c) => test(c, resolve(&c.property, s), s.now) == Outcome::Held,
        QueryNode::Query(q) => holds(q, s),
    }
}

/// `None` when the query holds, else why not: the same message as [`explain`]. An `and` (the
/// usual query) reads each condition once, where `holds` then `explain` would read the failing
/// one three times.
pub(crate) fn verdict(q: &Query, s: &Subject<'_>) -> Option<String> {
    match q.combinator {
        Combinator::And => {
            for node in &q.conditions {
                match node {
                    QueryNode::Condition(c) => {
                        let actual = resolve(&c.property, s);
                        let outcome = test(c, actual, s.now);
                        if outcome != Outcome::Held {
                            return Some(describe(c, actual, outcome));
                        }
                    }
                    QueryNode::Query(inner) => {
                        if let Some(why) = verdict(inner, s) {
                            return Some(why);
                        }
                    }
                }
            }
            None
        }
        Combinator::Or => (!holds(q, s)).then(|| explain(q, s)),
    }
}

/// Why a query does not hold, in plain words: for `and`, its first failing condition; for `or`,
/// every condition's reason.
pub(crate) fn explain(q: &Query, s: &Subject<'_>) -> String {
    match q.combinator {
        Combinator::And => q
            .conditions
            .iter()
            .find(|n| !node_holds(n, s))
            .map(|n| explain_node(n, s))
            .unwrap_or_default(),
        Combinator::Or if q.conditions.len() == 1 => explain_node(&q.conditions[0], s),
        Combinator::Or => {
            let reasons: Vec<String> = q.conditions.iter().map(|n| explain_node(n, s)).collect();
            format!(
                "or: none of {} conditions held: {}",
                q.conditions.len(),
                reasons.join("; ")
            )
        }
    }
}

fn explain_node(node: &QueryNode, s: &Subject<'_>) -> String {
    match node {
        QueryNode::Query(q) => explain(q, s),
        QueryNode::Condition(c) => {
            let actual = resolve(&c.property, s);
            describe(c, actual, test(c, actual, s.now))
        }
    }
}

/// `facts.pagerduty.oncall_count is 0, required > 0`; `$team is missing, required isNotEmpty`.
pub(crate) fn describe(c: &Condition, actual: Option<Val<'_>>, outcome: Outcome) -> String {
    let path = c.property.as_str();
    let mut out = String::with_capacity(path.len() + c.requirement.len() + 24);
    out.push_str(path);
    out.push_str(" is ");
    match (actual, outcome) {
        (None, _) => out.push_str("missing"),
        (Some(a), Outcome::Mismatch(why)) => {
            render(&mut out, a);
            out.push_str(" (");
            out.push_str(why);
            out.push(')');
        }
        (Some(a), _) => render(&mut out, a),
    }
    out.push_str(&c.requirement);
    out
}

/// `, required > 0`: the end of every message about a condition, built once when it is compiled.
pub(crate) fn requirement(operator: Operator, value: Option<&Value>) -> Box<str> {
    let mut out = format!(", required {operator}");
    if let Some(v) = value {
        out.push(' ');
        render_json(&mut out, v);
    }
    out.into_boxed_str()
}

/// How long a value may be in a message before it is cut.
const MAX_RENDERED: usize = 80;

fn render(out: &mut String, a: Val<'_>) {
    match a {
        // Most strings need no escaping and are short: written as they are.
        Val::Str(s)
            if s.len() <= MAX_RENDERED
                && !s
                    .bytes()
                    .any(|b| b == b'"' || b == b'\\' || b < 0x20 || b == 0x7f) =>
        {
            out.push('"');
            out.push_str(s);
            out.push('"');
        }
        Val::Str(s) => render_json(out, &s),
        Val::Num(x) => render_number(out, x),
        Val::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        // Written from the borrowed value: the same text as the JSON value's, without a copy.
        Val::List(List::Json(items)) => render_json(out, &items),
        Val::List(List::Strs(items)) => render_json(out, &items),
        Val::Object(m) => render_json(out, m),
    }
}

fn render_number(out: &mut String, x: f64) {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        let _ = write!(out, "{}", x as i64);
    } else {
        let _ = write!(out, "{x}");
    }
}

fn render_json(out: &mut String, v: &(impl serde::Serialize + ?Sized)) {
    // Strings, lists and maps of JSON values always serialize.
    let text = serde_json::to_string(v).unwrap_or_default();
    if text.chars().count() > MAX_RENDERED {
        let cut: String = text.chars().take(MAX_RENDERED).collect();
        let _ = write!(out, "{cut}…");
    } else {
        out.push_str(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_versions() {
        assert_eq!(parse_version("v1.2.3").unwrap(), Version::new(1, 2, 3));
        assert_eq!(parse_version("1.4").unwrap(), Version::new(1, 4, 0));
        assert_eq!(parse_version("2").unwrap(), Version::new(2, 0, 0));
        assert_eq!(parse_version("1.2-rc.1").unwrap().pre.as_str(), "rc.1");
        for bad in ["", "x", "1.2.3.4", "1..2", "latest"] {
            assert!(parse_version(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn numbers_render_plainly() {
        let mut s = String::new();
        render_number(&mut s, 3.0);
        s.push(' ');
        render_number(&mut s, 2.5);
        assert_eq!(s, "3 2.5");
    }

    #[test]
    fn long_values_are_cut() {
        let mut s = String::new();
        render_json(&mut s, &Value::String("x".repeat(200)));
        assert_eq!(s.chars().count(), MAX_RENDERED + 1);
        assert!(s.ends_with('…'));
    }
}
