//! Asking the CPU for the data of the entities a pass evaluates next.
//!
//! At 10,000 entities an evaluation pass is bound by memory, not by the rules: an entity's
//! properties and facts are maps whose entries, keys and string values are separate heap
//! blocks, none of them in cache when the entity's turn comes, and each rule waits for the
//! lines it reads. Evaluating the same entities from a warm cache is about twice as fast
//! (BENCHMARKS.md). [`ahead`] is called before each entity of a sequence is evaluated: it
//! issues prefetch hints for the entities a few places further on, one level of pointers per
//! place, so that by the time an entity is evaluated its structures, its map entries and the
//! heap blocks they point to have arrived:
//!
//! - 4 ahead: the entity and its facts map;
//! - 3 ahead: the entries of its properties, its fact records and its previous results;
//! - 2 ahead: the property keys and string values, the entries of each fact record, the
//!   previous results' rules;
//! - 1 ahead: the fact keys and string values.
//!
//! Only pointers that the previous stage fetched are followed, so the hints themselves rarely
//! wait on memory. A hint never faults and never changes a result: on targets other than x86-64
//! it does nothing.

use serde_json::Value;

use crate::model::{Entity, EntityFacts, JsonObject, ScorecardResult};

/// What a pass evaluates for one entity, as far as its memory goes.
#[derive(Clone, Copy)]
pub struct Upcoming<'a> {
    pub entity: &'a Entity,
    pub facts: &'a EntityFacts,
    /// Its previous results, read to carry `changed_at` and to find what changed.
    pub previous: &'a [ScorecardResult],
}

/// How many entities ahead the first hints go.
pub const DISTANCE: usize = 4;

/// The most cache lines hinted for one block (a map's entries, a list): large maps are rare
/// and are read only in part.
const MAX_LINES: usize = 32;

const LINE: usize = 64;

/// Call before evaluating `items[i]`: hints the memory of `items[i + 1 ..= i + DISTANCE]`,
/// each at its stage. `view` says what an item holds.
pub fn ahead<T>(items: &[T], i: usize, view: impl for<'t> Fn(&'t T) -> Upcoming<'t>) {
    if let Some(item) = items.get(i + 4) {
        headers(view(item));
    }
    if let Some(item) = items.get(i + 3) {
        entries(view(item));
    }
    if let Some(item) = items.get(i + 2) {
        blocks(view(item));
    }
    if let Some(item) = items.get(i + 1) {
        fact_blocks(view(item));
    }
}

/// Hints the lines of `items` (at most [`MAX_LINES`]), for what a caller evaluates along with
/// an entity (the engine: its check plugins' outcomes).
pub fn slice<T>(items: &[T]) {
    span(items.as_ptr(), size_of_val(items));
}

/// Hints the first line of a string's bytes.
pub fn text(s: &str) {
    hint(s.as_ptr());
}

/// The entity's own structure and its facts map.
fn headers(u: Upcoming<'_>) {
    span(u.entity, size_of::<Entity>());
    hint(u.facts);
    span(u.previous.as_ptr(), size_of_val(u.previous));
}

/// The entries of the properties map, the fact records, the identifier (copied into every
/// result) and the kind and team (read by scorecard filters).
fn entries(u: Upcoming<'_>) {
    let e = u.entity;
    map_entries(&e.properties);
    hint(e.identifier.as_ptr());
    hint(e.kind.as_ptr());
    if let Some(team) = &e.team {
        hint(team.as_ptr());
    }
    for record in u.facts.values() {
        span(record, size_of_val(record));
    }
    for result in u.previous {
        span(result.rules.as_ptr(), size_of_val(result.rules.as_slice()));
    }
}

/// Property keys and string values; each fact record's entries; previous messages.
fn blocks(u: Upcoming<'_>) {
    for (key, value) in &u.entity.properties {
        hint(key.as_ptr());
        value_block(value);
    }
    for record in u.facts.values() {
        map_entries(&record.facts);
    }
    for result in u.previous {
        for rule in &result.rules {
            if let Some(m) = &rule.message {
                hint(m.as_ptr());
            }
        }
    }
}

/// Fact keys and string values.
fn fact_blocks(u: Upcoming<'_>) {
    for record in u.facts.values() {
        for (key, value) in &record.facts {
            hint(key.as_ptr());
            value_block(value);
        }
    }
}

/// The heap block a value points to: a string's bytes, a list's items, a map's entries.
fn value_block(value: &Value) {
    match value {
        Value::String(s) => hint(s.as_ptr()),
        Value::Array(items) => span(items.as_ptr(), size_of_val(items.as_slice())),
        Value::Object(map) => map_entries(map),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A map's entries, from the first to the last (the map keeps them in one block).
fn map_entries(map: &JsonObject) {
    let (Some((first, _)), Some((last, _))) = (map.iter().next(), map.iter().next_back()) else {
        return;
    };
    let start = first as *const String as usize;
    let end = last as *const String as usize + size_of::<String>() + size_of::<Value>();
    if end > start {
        span(first as *const String, end - start);
    }
}

/// Every line of `bytes` bytes from `start` (at most [`MAX_LINES`]).
fn span<T: ?Sized>(start: *const T, bytes: usize) {
    let start = start as *const u8;
    for k in 0..bytes.div_ceil(LINE).min(MAX_LINES) {
        hint(start.wrapping_add(k * LINE));
    }
}

#[inline(always)]
fn hint<T: ?Sized>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    // SAFETY: a prefetch is a hint to the cache: it reads nothing into the program, never faults
    // (an unmapped or dangling address is ignored), and SSE is part of every x86-64 target.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(p as *const u8 as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FactRecord;

    /// The hints run over every shape of input (empty maps, nested values, lists, previous
    /// results), and only for the items that exist from 1 to [`DISTANCE`] places ahead.
    #[test]
    fn hints_look_ahead_over_every_shape() {
        let mut properties = JsonObject::new();
        properties.insert("a".into(), Value::String("x".into()));
        properties.insert("list".into(), serde_json::json!([1, "two", {"three": 3}]));
        properties.insert("nested".into(), serde_json::json!({"k": {"deeper": true}}));
        let entity = Entity {
            identifier: "svc".into(),
            kind: "service".into(),
            title: "Svc".into(),
            team: Some("team".into()),
            tier: Some(1),
            properties,
            relations: Default::default(),
        };
        let bare = Entity {
            properties: JsonObject::new(),
            team: None,
            ..entity.clone()
        };
        let mut facts = EntityFacts::new();
        let mut git = JsonObject::new();
        git.insert("n".into(), serde_json::json!(3));
        git.insert("s".into(), serde_json::json!({"x": "y"}));
        facts.insert(
            "git".into(),
            FactRecord {
                source: "git".into(),
                facts: git,
                collected_at: chrono::Utc::now(),
                plugin_version: "v".into(),
                stale_reason: None,
            },
        );
        let empty = EntityFacts::new();
        let items: Vec<(usize, &Entity, &EntityFacts)> = (0..7)
            .map(|k| match k % 3 {
                0 => (k, &entity, &facts),
                1 => (k, &bare, &empty),
                _ => (k, &entity, &empty),
            })
            .collect();
        for i in 0..items.len() + 2 {
            let seen = std::cell::RefCell::new(Vec::new());
            ahead(&items, i, |&(k, entity, facts)| {
                seen.borrow_mut().push(k);
                Upcoming {
                    entity,
                    facts,
                    previous: &[],
                }
            });
            let mut seen = seen.into_inner();
            seen.sort_unstable();
            let wanted: Vec<usize> = (i + 1..=i + DISTANCE)
                .filter(|&k| k < items.len())
                .collect();
            assert_eq!(seen, wanted, "before item {i}");
        }
    }
}
