//! Standards: scorecards ([`parse_scorecard`]), the tier policy and initiatives (through
//! [`load_dir`], their only entry point), and the query primitives ([`PropertyPath::parse`],
//! [`Operator::parse`], [`parse_date`], [`Query::from_value`]).

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;
use crate::standards::query::parse_date;
use crate::standards::{
    AnyPlugins, Operator, PluginKind, PropertyPath, Query, Standards, StandardsError, load_dir,
    parse_scorecard,
};

fn plugins() -> BTreeMap<String, PluginKind> {
    BTreeMap::from([
        ("slo-budget".to_owned(), PluginKind::Check),
        ("dependency-policy".to_owned(), PluginKind::Check),
        ("pagerduty".to_owned(), PluginKind::DataSource),
    ])
}

fn messages(errors: &[StandardsError]) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

const SCORECARD_KEYS: &[&str] = &[
    "identifier",
    "title",
    "description",
    "filter",
    "levels",
    "rules",
    "blueprint",
];
const RULE_KEYS: &[&str] = &[
    "identifier",
    "title",
    "description",
    "level",
    "query",
    "check",
    "filter",
    "weight",
    "due_days",
];
const CONDITION_KEYS: &[&str] = &[
    "property",
    "relation",
    "operator",
    "value",
    "combinator",
    "conditions",
];
const TIER_KEYS: &[&str] = &["name", "require", "task_due_days", "alert"];
const INITIATIVE_KEYS: &[&str] = &[
    "identifier",
    "title",
    "description",
    "owner",
    "deadline",
    "targets",
    "filter",
];

// ---------------------------------------------------------------- generated valid definitions

/// A property path that parses.
fn property_path() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "$identifier",
                "$title",
                "$kind",
                "$team",
                "$tier",
                "facts.pagerduty.oncall_count",
                "facts.git",
                "relations.dependsOn",
                "properties.language",
                "annotations.pagerduty.com/service-id",
                "a.0.b",
            ][..]
        )
        .prop_map(str::to_owned),
        "[a-z]{1,6}(\\.[a-z0-9_]{1,6}){0,3}".prop_filter("not facts/relations", |p| {
            let first = p.split('.').next().unwrap_or_default();
            first != "facts" && first != "relations"
        }),
    ]
}

/// A condition that compiles: `{property, operator, value?}` as JSON.
fn condition() -> impl Strategy<Value = Value> {
    let scalar = || {
        prop_oneof![
            "[a-z]{1,8}".prop_map(Value::from),
            (-1000i64..1000).prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
        ]
    };
    let value = prop::sample::select(Operator::ALL.to_vec()).prop_flat_map(move |op| {
        use Operator::*;
        let value: BoxedStrategy<Option<Value>> = match op {
            Eq | Ne | Contains | DoesNotContain => scalar().prop_map(Some).boxed(),
            BeginsWith | DoesNotBeginWith | EndsWith | DoesNotEndWith => {
                "[a-z/]{1,8}".prop_map(|s| Some(json!(s))).boxed()
            }
            Lt | Gt | Le | Ge => prop_oneof![
                (-100i64..100).prop_map(|n| Some(json!(n))),
                Just(Some(json!("2024-05-01"))),
                Just(Some(json!("2024-05-01T10:00:00Z"))),
                "[a-z]{1,6}".prop_map(|s| Some(json!(s))),
            ]
            .boxed(),
            In | NotIn | ContainsAny => prop::collection::vec(scalar(), 1..4)
                .prop_map(|v| Some(Value::Array(v)))
                .boxed(),
            Between | NotBetween => prop_oneof![
                prop::sample::select(
                    &[
                        "today",
                        "yesterday",
                        "lastWeek",
                        "last2Weeks",
                        "lastMonth",
                        "last3Months",
                        "last6Months",
                        "last12Months"
                    ][..]
                )
                .prop_map(|p| Some(json!(p))),
                Just(Some(json!({"from": "2024-01-01", "to": "2024-02-01"}))),
                (0i64..10, 10i64..20).prop_map(|(a, b)| Some(json!({"from": a, "to": b}))),
            ]
            .boxed(),
            MatchesRegex => prop::sample::select(&["^a", "[0-9]+", "x|y", "^svc-.*$"][..])
                .prop_map(|r| Some(json!(r)))
                .boxed(),
            SatisfiesVersion => prop::sample::select(&[">=1.4, <2", "^1", "~2.3"][..])
                .prop_map(|r| Some(json!(r)))
                .boxed(),
            IsEmpty | IsNotEmpty => Just(None).boxed(),
        };
        (Just(op), value)
    });
    (property_path(), value).prop_map(|(property, (op, value))| {
        let mut c = json!({"property": property, "operator": op.as_str()});
        if let Some(v) = value {
            c["value"] = v;
        }
        c
    })
}

/// A query that compiles, conditions possibly nested one level.
fn query() -> impl Strategy<Value = Value> {
    let combinator = prop::sample::select(&["and", "or"][..]);
    let nested = (combinator.clone(), prop::collection::vec(condition(), 1..3))
        .prop_map(|(c, conds)| json!({"combinator": c, "conditions": conds}));
    (
        combinator,
        prop::collection::vec(prop_oneof![3 => condition(), 1 => nested], 1..4),
    )
        .prop_map(|(c, conds)| json!({"combinator": c, "conditions": conds}))
}

#[derive(Clone, Debug)]
struct GenRule {
    identifier: String,
    level: usize,
    query: Option<Value>,
    check: Option<(String, Option<Value>)>,
    filter: Option<Value>,
    weight: Option<u8>,
    due_days: Option<u32>,
    title: Option<String>,
}

#[derive(Clone, Debug)]
struct GenCard {
    identifier: String,
    title: Option<String>,
    levels: Vec<String>,
    filter: Option<Value>,
    rules: Vec<GenRule>,
}

impl GenCard {
    fn to_value(&self) -> Value {
        let mut card = Map::new();
        card.insert("identifier".into(), json!(self.identifier));
        if let Some(t) = &self.title {
            card.insert("title".into(), json!(t));
        }
        if let Some(f) = &self.filter {
            card.insert("filter".into(), f.clone());
        }
        let levels: Vec<Value> = self.levels.iter().map(|t| json!({"title": t})).collect();
        card.insert("levels".into(), Value::Array(levels));
        let rules: Vec<Value> = self
            .rules
            .iter()
            .map(|r| {
                let mut rule = Map::new();
                rule.insert("identifier".into(), json!(r.identifier));
                if let Some(t) = &r.title {
                    rule.insert("title".into(), json!(t));
                }
                rule.insert("level".into(), json!(self.levels[r.level]));
                if let Some(w) = r.weight {
                    rule.insert("weight".into(), json!(w));
                }
                if let Some(d) = r.due_days {
                    rule.insert("due_days".into(), json!(d));
                }
                if let Some(f) = &r.filter {
                    rule.insert("filter".into(), f.clone());
                }
                if let Some(q) = &r.query {
                    rule.insert("query".into(), q.clone());
                }
                if let Some((plugin, params)) = &r.check {
                    let mut check = json!({"plugin": plugin});
                    if let Some(p) = params {
                        check["params"] = p.clone();
                    }
                    rule.insert("check".into(), check);
                }
                Value::Object(rule)
            })
            .collect();
        if !rules.is_empty() {
            card.insert("rules".into(), Value::Array(rules));
        }
        Value::Object(card)
    }
}

fn gen_rule(levels: usize, index: usize) -> impl Strategy<Value = GenRule> {
    let decides = prop_oneof![
        3 => query().prop_map(|q| (Some(q), None)),
        1 => (
            prop::sample::select(&["slo-budget", "dependency-policy"][..]),
            prop::option::of(Just(json!({"objective": 99.9}))),
        )
            .prop_map(|(p, params)| (None, Some((p.to_owned(), params)))),
    ];
    (
        identifier(),
        1..levels,
        decides,
        prop::option::of(query()),
        prop::option::of(1u8..5),
        prop::option::of(1u32..90),
        prop::option::of("[A-Z][a-z ]{0,16}"),
    )
        .prop_map(
            move |(id, level, (query, check), filter, weight, due_days, title)| GenRule {
                identifier: format!("{id}-{index}"),
                level,
                query,
                check,
                filter,
                weight,
                due_days,
                title,
            },
        )
}

/// A valid scorecard: 2–5 distinct level titles, 1–5 rules, none on the first level.
fn gen_card() -> impl Strategy<Value = GenCard> {
    (
        identifier(),
        prop::option::of("[A-Z][a-z ]{0,16}"),
        prop::collection::btree_set("[A-Z][a-z]{2,8}", 2..6),
        prop::option::of(query()),
    )
        .prop_flat_map(|(identifier, title, levels, filter)| {
            // Shuffled: the ladder's order is the written order, not an alphabetical one.
            let levels: Vec<String> = levels.into_iter().collect();
            let n = levels.len();
            let rules = (1usize..6)
                .prop_flat_map(move |count| (0..count).map(|i| gen_rule(n, i)).collect::<Vec<_>>());
            (Just(levels).prop_shuffle(), rules).prop_map(move |(levels, rules)| GenCard {
                identifier: identifier.clone(),
                title: title.clone(),
                levels,
                filter: filter.clone(),
                rules,
            })
        })
}

/// How a definition file is written.
#[derive(Clone, Copy, Debug)]
enum Form {
    Yaml,
    Json,
}

impl Form {
    fn ext(self) -> &'static str {
        match self {
            Form::Yaml => "yaml",
            Form::Json => "json",
        }
    }

    fn render(self, value: &Value) -> String {
        match self {
            Form::Yaml => to_yaml(value),
            Form::Json => serde_json::to_string_pretty(value).expect("JSON serialises"),
        }
    }
}

fn form() -> impl Strategy<Value = Form> {
    prop_oneof![Just(Form::Yaml), Just(Form::Json)]
}

// ---------------------------------------------------------------- scorecard faults

/// A fault put into a valid scorecard.
#[derive(Clone, Debug)]
enum CardFault {
    UnknownTopKey(String),
    UnknownRuleKey(String),
    UnknownConditionKey(String),
    NoLevels,
    MissingRuleLevel,
    MissingOperator,
    WeightNotANumber(String),
    DueDaysNegative(i64),
    UnknownOperator(String),
    UnknownLevel(String),
    RuleOnFirstLevel,
    DuplicateRule,
    DuplicateLevel,
    UnknownPlugin(String),
    DataSourceAsCheck,
    BadRegex(&'static str),
    BadWeight(i64),
    ZeroDueDays,
    UnknownBuiltin(String),
    BadIdentifier(String),
    QueryAndCheck,
    BadDate(&'static str),
    BadVersion(&'static str),
    EmptyList,
    BadCombinator(String),
}

const BAD_REGEXES: &[&str] = &["(", "[a-", "a{2,1}", "*x"];
const BAD_DATES: &[&str] = &["2024-13-01", "2024-02-30", "soon", "2024-1-1"];
const BAD_VERSIONS: &[&str] = &[">>1", "~>1", "1.2.3.4", "=", "1.x.2"];

/// The generators' bad values are bad (else a property could pass for the wrong reason).
#[test]
fn the_bad_values_are_bad() {
    let cases = BAD_REGEXES
        .iter()
        .map(|r| json!({"operator": "matchesRegex", "value": r}))
        .chain(
            BAD_DATES
                .iter()
                .map(|d| json!({"operator": "between", "value": {"from": "2024-01-01", "to": d}})),
        )
        .chain(
            BAD_VERSIONS
                .iter()
                .map(|v| json!({"operator": "satisfiesVersion", "value": v})),
        );
    for mut condition in cases {
        condition["property"] = json!("a");
        let q = json!({"combinator": "and", "conditions": [condition]});
        assert!(Query::from_value(&q).is_err(), "{q}");
    }
}

fn card_fault() -> impl Strategy<Value = CardFault> {
    use CardFault::*;
    prop_oneof![
        unknown_key(SCORECARD_KEYS).prop_map(UnknownTopKey),
        unknown_key(RULE_KEYS).prop_map(UnknownRuleKey),
        unknown_key(CONDITION_KEYS).prop_map(UnknownConditionKey),
        Just(NoLevels),
        Just(MissingRuleLevel),
        Just(MissingOperator),
        "[a-z]{3,8}".prop_map(WeightNotANumber),
        (-1000i64..0).prop_map(DueDaysNegative),
        "[a-z]{2,10}"
            .prop_filter("not an operator", |o| Operator::parse(o).is_none())
            .prop_map(UnknownOperator),
        "[A-Z][a-z]{9,12}".prop_map(UnknownLevel),
        Just(RuleOnFirstLevel),
        Just(DuplicateRule),
        Just(DuplicateLevel),
        "zz-[a-z]{1,8}".prop_map(UnknownPlugin),
        Just(DataSourceAsCheck),
        prop::sample::select(BAD_REGEXES).prop_map(BadRegex),
        (-5i64..=0).prop_map(BadWeight),
        Just(ZeroDueDays),
        "\\$[a-z]{2,8}"
            .prop_filter("not a built-in", |p| PropertyPath::parse(p).is_err())
            .prop_map(UnknownBuiltin),
        // Upper case is valid (Port's identifiers are camelCase); these characters are not.
        "[A-Za-z]{1,4}[ /:@][A-Za-z]{1,4}".prop_map(BadIdentifier),
        Just(QueryAndCheck),
        prop::sample::select(BAD_DATES).prop_map(BadDate),
        prop::sample::select(BAD_VERSIONS).prop_map(BadVersion),
        Just(EmptyList),
        "[a-z]{2,6}"
            .prop_filter("not a combinator", |c| c != "and" && c != "or")
            .prop_map(BadCombinator),
    ]
}

/// Applies `fault` to rule `at` of `card` (a valid scorecard's JSON); returns the tokens the
/// error must contain and whether it is a fault of that rule (named in the error).
fn apply_card_fault(fault: &CardFault, card: &mut Value, at: usize) -> (Vec<String>, bool) {
    use CardFault::*;
    let rules = card["rules"].as_array().map_or(0, Vec::len);
    let at = at % rules.max(1);
    let levels: Vec<String> = card["levels"]
        .as_array()
        .map(|ls| {
            ls.iter()
                .map(|l| l["title"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    // Faults about a query's condition need a query with a condition at the top.
    let with_condition = |card: &mut Value, c: Value| {
        let rule = card["rules"][at].as_object_mut().expect("rule object");
        rule.shift_remove("check");
        rule.insert(
            "query".into(),
            json!({"combinator": "and", "conditions": [c]}),
        );
    };
    fn rule_at(card: &mut Value, at: usize) -> &mut Map<String, Value> {
        card["rules"][at].as_object_mut().expect("rule object")
    }
    match fault {
        UnknownTopKey(k) => {
            card[k.as_str()] = json!(1);
            (vec![format!("unknown field `{k}`")], false)
        }
        UnknownRuleKey(k) => {
            rule_at(card, at).insert(k.clone(), json!("x"));
            (
                vec![format!("unknown field `{k}`"), format!("rules[{at}]")],
                false,
            )
        }
        UnknownConditionKey(k) => {
            with_condition(
                card,
                json!({"property": "a", "operator": "isEmpty", k.as_str(): 1}),
            );
            (vec![format!("unknown field `{k}`")], false)
        }
        // Without `levels` a scorecard has Port's default ladder; an empty one is a fault.
        NoLevels => {
            card["levels"] = json!([]);
            (vec!["needs at least one level".into()], false)
        }
        MissingRuleLevel => {
            rule_at(card, at).shift_remove("level");
            (
                vec!["missing field `level`".into(), format!("rules[{at}]")],
                false,
            )
        }
        MissingOperator => {
            with_condition(card, json!({"property": "a"}));
            (vec!["missing field `operator`".into()], false)
        }
        WeightNotANumber(w) => {
            rule_at(card, at).insert("weight".into(), json!(w));
            (
                vec![
                    format!("rules[{at}].weight"),
                    "invalid type".into(),
                    format!("\"{w}\""),
                ],
                false,
            )
        }
        DueDaysNegative(d) => {
            rule_at(card, at).insert("due_days".into(), json!(d));
            (
                vec![format!("rules[{at}].due_days"), format!("`{d}`")],
                false,
            )
        }
        UnknownOperator(op) => {
            with_condition(card, json!({"property": "a", "operator": op, "value": 1}));
            (vec![format!("unknown operator `{op}`")], true)
        }
        UnknownLevel(l) => {
            rule_at(card, at).insert("level".into(), json!(l));
            (vec![format!("unknown level `{l}`")], true)
        }
        RuleOnFirstLevel => {
            rule_at(card, at).insert("level".into(), json!(levels[0]));
            (vec![format!("first level `{}`", levels[0])], true)
        }
        DuplicateRule => {
            let copy = card["rules"][at].clone();
            card["rules"]
                .as_array_mut()
                .expect("rules array")
                .push(copy);
            (vec!["duplicate rule identifier".into()], true)
        }
        DuplicateLevel => {
            card["levels"]
                .as_array_mut()
                .expect("levels array")
                .push(json!({"title": levels[1]}));
            (vec![format!("duplicate level `{}`", levels[1])], false)
        }
        UnknownPlugin(p) => {
            let rule = rule_at(card, at);
            rule.shift_remove("query");
            rule.insert("check".into(), json!({"plugin": p}));
            (vec![format!("unknown check plugin `{p}`")], true)
        }
        DataSourceAsCheck => {
            let rule = rule_at(card, at);
            rule.shift_remove("query");
            rule.insert("check".into(), json!({"plugin": "pagerduty"}));
            (vec!["plugin `pagerduty` is a data source".into()], true)
        }
        BadRegex(r) => {
            with_condition(
                card,
                json!({"property": "a", "operator": "matchesRegex", "value": r}),
            );
            (vec![format!("invalid regular expression `{r}`")], true)
        }
        BadWeight(w) => {
            rule_at(card, at).insert("weight".into(), json!(w));
            (vec!["weight must be a number greater than 0".into()], true)
        }
        ZeroDueDays => {
            rule_at(card, at).insert("due_days".into(), json!(0));
            (vec!["due_days must be at least 1".into()], true)
        }
        UnknownBuiltin(p) => {
            with_condition(card, json!({"property": p, "operator": "isEmpty"}));
            (vec![format!("unknown built-in property `{p}`")], true)
        }
        BadIdentifier(id) => {
            rule_at(card, at).insert("identifier".into(), json!(id));
            (vec![format!("identifier `{id}` is not valid")], false)
        }
        QueryAndCheck => {
            let rule = rule_at(card, at);
            rule.insert(
                "query".into(),
                json!({"combinator": "and", "conditions": [{"property": "a", "operator": "isEmpty"}]}),
            );
            rule.insert("check".into(), json!({"plugin": "slo-budget"}));
            (vec!["not both".into()], true)
        }
        BadDate(d) => {
            with_condition(
                card,
                json!({"property": "a", "operator": "between", "value": {"from": "2024-01-01", "to": d}}),
            );
            (vec![format!("`{d}` is not an ISO date")], true)
        }
        BadVersion(v) => {
            with_condition(
                card,
                json!({"property": "a", "operator": "satisfiesVersion", "value": v}),
            );
            (vec![format!("invalid version requirement `{v}`")], true)
        }
        EmptyList => {
            with_condition(
                card,
                json!({"property": "a", "operator": "in", "value": []}),
            );
            (vec!["operator `in` needs a non-empty list".into()], true)
        }
        BadCombinator(c) => {
            rule_at(card, at).insert(
                "query".into(),
                json!({"combinator": c, "conditions": [{"property": "a", "operator": "isEmpty"}]}),
            );
            rule_at(card, at).shift_remove("check");
            (vec![format!("unknown variant `{c}`")], false)
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// Arbitrary text and trees never make the scorecard parser panic; faults name the file.
    #[test]
    fn scorecard_text_never_panics(text in definition_text(), json in any::<bool>()) {
        let name = if json { "hostile.json" } else { "hostile.yaml" };
        if let Err(errors) = parse_scorecard(Path::new(name), &text, &plugins()) {
            prop_assert!(!errors.is_empty());
            for e in &errors {
                prop_assert!(e.to_string().contains(name), "{e}");
            }
        }
    }

    /// Trees with a scorecard's skeleton and random leaves and conditions never panic.
    #[test]
    fn scorecard_shaped_trees_never_panic(
        identifier in json_value(),
        levels in json_value(),
        rules in prop::collection::vec(
            (json_value(), json_value(), json_object(), json_value()),
            0..4,
        ),
        filter in json_value(),
    ) {
        let rules: Vec<Value> = rules
            .into_iter()
            .map(|(id, level, query, weight)| json!({
                "identifier": id, "level": level, "query": query, "weight": weight
            }))
            .collect();
        let card = json!({
            "identifier": identifier, "levels": levels, "rules": rules, "filter": filter
        });
        let _ = parse_scorecard(Path::new("shaped.yaml"), &to_yaml(&card), &plugins());
        let _ = parse_scorecard(Path::new("shaped.json"), &card.to_string(), &AnyPlugins);
    }

    /// A valid scorecard parses to what was generated; its queries serialise back as written.
    #[test]
    fn valid_scorecards_round_trip(card in gen_card(), form in form()) {
        let file = format!("card.{}", form.ext());
        let text = form.render(&card.to_value());
        let parsed = parse_scorecard(Path::new(&file), &text, &plugins())
            .map_err(|e| TestCaseError::fail(format!("{:?}\n{text}", messages(&e))))?;
        prop_assert_eq!(&parsed.identifier, &card.identifier);
        prop_assert_eq!(&parsed.title, card.title.as_ref().unwrap_or(&card.identifier));
        let titles: Vec<&str> = parsed.levels.iter().map(|l| l.title.as_str()).collect();
        prop_assert_eq!(titles, card.levels.iter().map(String::as_str).collect::<Vec<_>>());
        prop_assert_eq!(
            parsed.filter.as_ref().map(|q| serde_json::to_value(q).expect("serialises")),
            card.filter.clone()
        );
        prop_assert_eq!(parsed.rules.len(), card.rules.len());
        for (got, want) in parsed.rules.iter().zip(&card.rules) {
            prop_assert_eq!(&*got.identifier, want.identifier.as_str());
            prop_assert_eq!(&got.title, want.title.as_ref().unwrap_or(&want.identifier));
            prop_assert_eq!(&*got.level, card.levels[want.level].as_str());
            prop_assert_eq!(got.level_index, want.level);
            prop_assert_eq!(got.weight, want.weight.map_or(1.0, f64::from));
            prop_assert_eq!(got.due_days, want.due_days);
            let query = got.query.as_ref().map(|q| serde_json::to_value(q).expect("serialises"));
            prop_assert_eq!(query, want.query.clone());
            let filter = got.filter.as_ref().map(|q| serde_json::to_value(q).expect("serialises"));
            prop_assert_eq!(filter, want.filter.clone());
            let check = got.check.as_ref().map(|c| (c.plugin.clone(), c.params.clone()));
            let want_check = want
                .check
                .as_ref()
                .map(|(p, params)| (p.clone(), params.clone().unwrap_or_else(|| json!({}))));
            prop_assert_eq!(check, want_check);
        }
    }

    /// One fault in a valid scorecard is refused; some error names the file, the fault and, for
    /// a rule's fault, the scorecard and the rule.
    #[test]
    fn a_fault_in_a_scorecard_is_named(
        card in gen_card(),
        form in form(),
        fault in card_fault(),
        at in 0usize..8,
    ) {
        let file = format!("card.{}", form.ext());
        let mut value = card.to_value();
        let (tokens, names_rule) = apply_card_fault(&fault, &mut value, at);
        let text = form.render(&value);
        let errors = match parse_scorecard(Path::new(&file), &text, &plugins()) {
            Ok(_) => return Err(TestCaseError::fail(format!("{fault:?} accepted:\n{text}"))),
            Err(errors) => errors,
        };
        let mut tokens = tokens;
        // serde_json's messages carry the line but not the path within the document.
        if let Form::Json = form {
            tokens.retain(|t| !t.starts_with("rules["));
        }
        if names_rule {
            let rule = &card.rules[at % card.rules.len()].identifier;
            tokens.push(format!("scorecard `{}`, rule `{rule}`", card.identifier));
        }
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        some_names(&messages(&errors), &file, &tokens)?;
        // An unknown operator is reported at its own line.
        if let CardFault::UnknownOperator(op) = &fault {
            let want = key_value_line(&text, 1, "operator", op);
            let got = errors.iter().find(|e| e.to_string().contains("unknown operator"));
            prop_assert_eq!(got.and_then(StandardsError::line), want, "{}", text);
        }
    }
}

// ---------------------------------------------------------------- query primitives

/// The reference for [`PropertyPath::parse`]: which paths DESIGN.md §4 accepts.
fn path_is_valid(raw: &str) -> bool {
    if let Some(builtin) = raw.strip_prefix('$') {
        return matches!(builtin, "identifier" | "title" | "kind" | "team" | "tier");
    }
    let segments: Vec<&str> = raw.split('.').collect();
    if raw.is_empty() || segments.iter().any(|s| s.is_empty()) {
        return false;
    }
    match segments[0] {
        "facts" => segments.len() >= 2,
        "relations" => segments.len() == 2,
        _ => true,
    }
}

fn path_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        property_path(),
        prop::collection::vec(
            prop::sample::select(
                &[
                    "facts",
                    "relations",
                    "properties",
                    "$tier",
                    "$",
                    ".",
                    "..",
                    "0",
                    "x",
                    "é",
                    ""
                ][..]
            ),
            0..5
        )
        .prop_map(|parts| parts.join(".")),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    /// `PropertyPath::parse` accepts exactly the paths of the reference, and keeps them as written.
    #[test]
    fn property_paths_match_the_reference(raw in path_text()) {
        match PropertyPath::parse(&raw) {
            Ok(path) => {
                prop_assert!(path_is_valid(&raw), "accepted `{raw}`");
                prop_assert_eq!(path.as_str(), raw.as_str());
                prop_assert_eq!(path.to_string(), raw);
            }
            Err(message) => {
                prop_assert!(!path_is_valid(&raw), "refused `{raw}`: {message}");
                prop_assert!(!message.is_empty());
            }
        }
    }

    /// `Operator::parse` knows exactly the spellings of DESIGN.md §4.
    #[test]
    fn operators_match_their_spellings(
        s in prop_oneof![
            any::<String>(),
            prop::sample::select(Operator::ALL.to_vec()).prop_map(|o| o.as_str().to_owned()),
            prop::sample::select(Operator::ALL.to_vec())
                .prop_map(|o| format!(" {}", o.as_str().to_uppercase())),
        ],
    ) {
        let want = Operator::ALL.into_iter().find(|o| o.as_str() == s);
        prop_assert_eq!(Operator::parse(&s), want);
    }

    /// `parse_date` never panics on any text, and reads every real calendar date back.
    #[test]
    fn dates_parse_or_refuse(
        s in prop_oneof![
            any::<String>(),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}",
            "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})?",
            "[0-9]{4}-\\PC{0,12}",
        ],
        y in 1i32..9999,
        m in 1u32..=12,
        d in 1u32..=31,
    ) {
        let _ = parse_date(&s);
        let text = format!("{y:04}-{m:02}-{d:02}");
        let real = chrono::NaiveDate::from_ymd_opt(y, m, d);
        match (parse_date(&text), real) {
            (Some((t, date_only)), Some(date)) => {
                prop_assert!(date_only);
                prop_assert_eq!(t.date_naive(), date);
            }
            (None, None) => {}
            (got, want) => {
                return Err(TestCaseError::fail(format!("{text}: {got:?}, want {want:?}")));
            }
        }
    }

    /// `Query::from_value` (scorecards' and API queries' compiler) never panics on any tree, on
    /// condition-shaped trees with random operators and values, and refuses unknown operators.
    #[test]
    fn queries_compile_or_refuse(
        any_tree in json_value(),
        conditions in prop::collection::vec(
            (path_text(), prop_oneof![
                prop::sample::select(Operator::ALL.to_vec()).prop_map(|o| o.as_str().to_owned()),
                "[a-zA-Z<>=!]{1,6}",
            ], prop::option::of(json_value())),
            0..5,
        ),
        combinator in prop::sample::select(&["and", "or", "xor"][..]),
    ) {
        let _ = Query::from_value(&any_tree);
        let conds: Vec<Value> = conditions
            .iter()
            .map(|(p, o, v)| {
                let mut c = json!({"property": p, "operator": o});
                if let Some(v) = v {
                    c["value"] = v.clone();
                }
                c
            })
            .collect();
        let q = json!({"combinator": combinator, "conditions": conds});
        match Query::from_value(&q) {
            Ok(compiled) => {
                prop_assert!(combinator != "xor");
                prop_assert!(!conditions.is_empty());
                for (p, o, _) in &conditions {
                    prop_assert!(Operator::parse(o).is_some(), "{o}");
                    prop_assert!(path_is_valid(p), "{p}");
                }
                prop_assert_eq!(compiled.conditions.len(), conditions.len());
            }
            Err(faults) => {
                prop_assert!(!faults.is_empty());
                for (i, (_, o, _)) in conditions.iter().enumerate() {
                    if Operator::parse(o).is_none() && combinator != "xor" {
                        let at = format!("conditions[{i}]: unknown operator `{o}`");
                        prop_assert!(
                            faults.iter().any(|f| f.to_string().starts_with(&at)),
                            "{at} not in {faults:?}"
                        );
                    }
                }
            }
        }
    }

    /// A valid query compiles and serialises back exactly as written.
    #[test]
    fn valid_queries_round_trip(q in query()) {
        let compiled = Query::from_value(&q)
            .map_err(|f| TestCaseError::fail(format!("{f:?}\n{q}")))?;
        prop_assert_eq!(serde_json::to_value(&compiled).expect("serialises"), q);
    }
}

// ---------------------------------------------------------------- tiers and initiatives

/// A standards directory: valid scorecards, a tier policy naming them, an initiative.
#[derive(Clone, Debug)]
struct GenStandards {
    cards: Vec<GenCard>,
    /// Tier → (written key, name, require, task_due_days, alert).
    tiers: BTreeMap<u8, GenTier>,
    untiered: Option<GenTier>,
    initiative: GenInitiative,
}

#[derive(Clone, Debug)]
struct GenTier {
    key: Value,
    name: Option<String>,
    require: BTreeMap<String, String>,
    task_due_days: Option<u32>,
    alert: Vec<String>,
}

#[derive(Clone, Debug)]
struct GenInitiative {
    identifier: String,
    owner: String,
    deadline: chrono::NaiveDate,
    /// (scorecard, Ok(level) | Err(rules)).
    targets: Vec<(String, Result<String, Vec<String>>)>,
    filter: Option<Value>,
}

impl GenTier {
    fn to_value(&self) -> Value {
        let mut spec = Map::new();
        if let Some(n) = &self.name {
            spec.insert("name".into(), json!(n));
        }
        if !self.require.is_empty() {
            spec.insert("require".into(), json!(self.require));
        }
        if let Some(d) = self.task_due_days {
            spec.insert("task_due_days".into(), json!(d));
        }
        if !self.alert.is_empty() {
            spec.insert("alert".into(), json!(self.alert));
        }
        Value::Object(spec)
    }
}

impl GenStandards {
    /// The tier policy's text (YAML: tier keys may be numbers).
    fn tiers_text(&self) -> String {
        let mut out = String::from("tiers:\n");
        for t in self.tiers.values() {
            let key = match &t.key {
                Value::String(s) => format!("\"{s}\""),
                other => other.to_string(),
            };
            out.push_str(&format!("  {key}: {}\n", t.to_value()));
        }
        if let Some(u) = &self.untiered {
            out.push_str(&format!("untiered: {}\n", u.to_value()));
        }
        out
    }

    fn initiative_value(&self) -> Value {
        let i = &self.initiative;
        let targets: Vec<Value> = i
            .targets
            .iter()
            .map(|(card, goal)| match goal {
                Ok(level) => json!({"scorecard": card, "level": level}),
                Err(rules) => json!({"scorecard": card, "rules": rules}),
            })
            .collect();
        let mut v = json!({
            "identifier": i.identifier,
            "owner": i.owner,
            "deadline": i.deadline.to_string(),
            "targets": targets,
        });
        if let Some(f) = &i.filter {
            v["filter"] = f.clone();
        }
        v
    }

    fn write_to(&self, dir: &Path) {
        for (i, card) in self.cards.iter().enumerate() {
            let form = if i % 2 == 0 { Form::Yaml } else { Form::Json };
            write(
                dir,
                &format!("scorecards/card-{i}.{}", form.ext()),
                &form.render(&card.to_value()),
            );
        }
        write(dir, "tiers.yaml", &self.tiers_text());
        write(
            dir,
            "initiatives/campaign.yaml",
            &to_yaml(&self.initiative_value()),
        );
    }
}

/// 1–3 valid scorecards with distinct identifiers.
fn gen_cards() -> impl Strategy<Value = Vec<GenCard>> {
    prop::collection::vec(gen_card(), 1..4).prop_map(|mut cards| {
        for (i, c) in cards.iter_mut().enumerate() {
            c.identifier = format!("{}-{i}", c.identifier);
        }
        cards
    })
}

fn gen_tier(cards: Vec<GenCard>, tier: u8) -> impl Strategy<Value = GenTier> {
    let pick = prop::collection::vec((0..cards.len(), any::<prop::sample::Index>()), 0..3);
    (
        pick,
        prop::option::of("[A-Z][a-z]{2,8}"),
        prop::option::of(1u32..90),
        prop::collection::vec("[a-z]{2,8}-slack", 0..2),
        0usize..3,
    )
        .prop_map(move |(picks, name, task_due_days, alert, form)| {
            let require = picks
                .into_iter()
                .map(|(c, level)| {
                    let card = &cards[c];
                    (card.identifier.clone(), level.get(&card.levels).clone())
                })
                .collect();
            let key = match form {
                0 => json!(tier),
                1 => json!(tier.to_string()),
                _ => json!(format!("tier-{tier}")),
            };
            GenTier {
                key,
                name,
                require,
                task_due_days,
                alert,
            }
        })
}

fn gen_standards() -> impl Strategy<Value = GenStandards> {
    gen_cards().prop_flat_map(|cards| {
        let tiers = prop::collection::btree_set(1u8..=3, 0..=3).prop_flat_map({
            let cards = cards.clone();
            move |set| {
                set.into_iter()
                    .map(|t| gen_tier(cards.clone(), t).prop_map(move |g| (t, g)))
                    .collect::<Vec<_>>()
            }
        });
        let untiered = prop::option::of(gen_tier(cards.clone(), 0).prop_map(|mut t| {
            t.key = json!("untiered");
            t
        }));
        let targets = prop::collection::vec(
            (0..cards.len(), any::<bool>(), any::<prop::sample::Index>()),
            1..4,
        )
        .prop_map({
            let cards = cards.clone();
            move |picks| {
                picks
                    .into_iter()
                    .map(|(c, by_level, index)| {
                        let card = &cards[c];
                        let goal = if by_level {
                            Ok(index.get(&card.levels).clone())
                        } else {
                            Err(vec![index.get(&card.rules).identifier.clone()])
                        };
                        (card.identifier.clone(), goal)
                    })
                    .collect::<Vec<_>>()
            }
        });
        let initiative = (
            identifier(),
            "[a-z]{2,8}",
            (2000i32..2100, 1u32..=12, 1u32..=28),
            targets,
            prop::option::of(query()),
        )
            .prop_map(
                |(identifier, owner, (y, m, d), targets, filter)| GenInitiative {
                    identifier,
                    owner,
                    deadline: chrono::NaiveDate::from_ymd_opt(y, m, d).expect("a real date"),
                    targets,
                    filter,
                },
            );
        (Just(cards), tiers, untiered, initiative).prop_map(
            |(cards, tiers, untiered, initiative)| GenStandards {
                cards,
                tiers: tiers.into_iter().collect(),
                untiered,
                initiative,
            },
        )
    })
}

/// A fault put into the tier policy or the initiative of a valid directory.
#[derive(Clone, Debug)]
enum PolicyFault {
    BadTierKey(Value),
    TierUnknownScorecard(String),
    TierUnknownLevel(String),
    TierZeroDueDays,
    TierDueDaysNotANumber(String),
    TierUnknownKey(String),
    /// The same tier written twice (`1` and `tier-1`).
    TierTwice,
    BadDeadline(&'static str),
    TargetUnknownScorecard(String),
    TargetLevelAndRules,
    TargetUnknownRule(String),
    TargetUnknownLevel(String),
    TargetNoRules,
    NoTargets,
    MissingOwner,
    EmptyOwner,
    InitiativeUnknownKey(String),
    DuplicateInitiative,
    InitiativeBadFilter(String),
}

fn policy_fault() -> impl Strategy<Value = PolicyFault> {
    use PolicyFault::*;
    prop_oneof![
        prop_oneof![
            Just(json!(0)),
            (4u32..100).prop_map(|n| json!(n)),
            Just(json!("tier-4")),
            Just(json!("gold")),
            Just(json!("-1")),
        ]
        .prop_map(BadTierKey),
        "zz-[a-z]{1,8}".prop_map(TierUnknownScorecard),
        "[A-Z][a-z]{9,12}".prop_map(TierUnknownLevel),
        Just(TierZeroDueDays),
        "[a-z]{2,6}".prop_map(TierDueDaysNotANumber),
        unknown_key(TIER_KEYS).prop_map(TierUnknownKey),
        Just(TierTwice),
        prop::sample::select(&["2025-13-01", "2025-02-30", "soon", "31/12/2025", ""][..])
            .prop_map(BadDeadline),
        "zz-[a-z]{1,8}".prop_map(TargetUnknownScorecard),
        Just(TargetLevelAndRules),
        "zz-[a-z]{1,8}".prop_map(TargetUnknownRule),
        "[A-Z][a-z]{9,12}".prop_map(TargetUnknownLevel),
        Just(TargetNoRules),
        Just(NoTargets),
        Just(MissingOwner),
        Just(EmptyOwner),
        unknown_key(INITIATIVE_KEYS).prop_map(InitiativeUnknownKey),
        Just(DuplicateInitiative),
        "[a-z]{2,8}"
            .prop_filter("not an operator", |o| Operator::parse(o).is_none())
            .prop_map(InitiativeBadFilter),
    ]
}

/// Writes the directory with `fault` applied; returns the file at fault and the tokens its
/// error must contain.
fn write_with_policy_fault(
    standards: &GenStandards,
    fault: &PolicyFault,
    dir: &Path,
) -> (String, Vec<String>) {
    use PolicyFault::*;
    standards.write_to(dir);
    let card = &standards.cards[0];
    let mut tiers = standards.clone();
    let first_tier = |t: &mut GenStandards| -> u8 {
        if t.tiers.is_empty() {
            t.tiers.insert(
                2,
                GenTier {
                    key: json!(2),
                    name: None,
                    require: BTreeMap::new(),
                    task_due_days: None,
                    alert: Vec::new(),
                },
            );
        }
        *t.tiers.keys().next().expect("a tier")
    };
    let tier_fault = |t: &GenStandards, tokens: Vec<String>| {
        write(dir, "tiers.yaml", &t.tiers_text());
        ("tiers.yaml".to_owned(), tokens)
    };
    let mut initiative = standards.initiative_value();
    let initiative_fault = |v: &Value, tokens: Vec<String>| {
        write(dir, "initiatives/campaign.yaml", &to_yaml(v));
        ("campaign.yaml".to_owned(), tokens)
    };
    let id = standards.initiative.identifier.clone();
    let named = |what: &str| vec![format!("initiative `{id}`"), what.to_owned()];
    match fault {
        BadTierKey(key) => {
            let t = first_tier(&mut tiers);
            let spec = tiers.tiers.get_mut(&t).expect("tier");
            spec.key = key.clone();
            let shown = match key {
                Value::String(s) => format!("\"{s}\""),
                other => other.to_string(),
            };
            tier_fault(&tiers, vec!["tier must be".into(), shown])
        }
        TierUnknownScorecard(name) => {
            let t = first_tier(&mut tiers);
            let spec = tiers.tiers.get_mut(&t).expect("tier");
            spec.require.insert(name.clone(), "Gold".into());
            tier_fault(
                &tiers,
                vec![format!("tier {t}:"), format!("unknown scorecard `{name}`")],
            )
        }
        TierUnknownLevel(level) => {
            let t = first_tier(&mut tiers);
            let spec = tiers.tiers.get_mut(&t).expect("tier");
            spec.require.insert(card.identifier.clone(), level.clone());
            tier_fault(
                &tiers,
                vec![
                    format!("tier {t}:"),
                    format!("scorecard `{}` has no level `{level}`", card.identifier),
                ],
            )
        }
        TierZeroDueDays => {
            let t = first_tier(&mut tiers);
            tiers.tiers.get_mut(&t).expect("tier").task_due_days = Some(0);
            tier_fault(
                &tiers,
                vec![
                    format!("tier {t}:"),
                    "task_due_days must be at least 1".into(),
                ],
            )
        }
        TierDueDaysNotANumber(word) => {
            let t = first_tier(&mut tiers);
            let mut text = tiers.tiers_text();
            let spec = tiers.tiers[&t].to_value();
            let mut bad = spec.clone();
            bad["task_due_days"] = json!(word);
            text = text.replacen(&spec.to_string(), &bad.to_string(), 1);
            write(dir, "tiers.yaml", &text);
            (
                "tiers.yaml".to_owned(),
                vec![
                    "task_due_days".into(),
                    "invalid type".into(),
                    format!("\"{word}\""),
                ],
            )
        }
        TierUnknownKey(key) => {
            let t = first_tier(&mut tiers);
            let spec = tiers.tiers[&t].to_value();
            let mut bad = spec.clone();
            bad[key.as_str()] = json!(1);
            let text = tiers
                .tiers_text()
                .replacen(&spec.to_string(), &bad.to_string(), 1);
            write(dir, "tiers.yaml", &text);
            (
                "tiers.yaml".to_owned(),
                vec![format!("unknown field `{key}`")],
            )
        }
        TierTwice => {
            let t = first_tier(&mut tiers);
            // The same tier under another spelling of its key.
            let other = match &tiers.tiers[&t].key {
                Value::Number(_) => format!("\"tier-{t}\""),
                _ => t.to_string(),
            };
            let text = tiers.tiers_text().replacen(
                "tiers:\n",
                &format!("tiers:\n  {other}: {{task_due_days: 3}}\n"),
                1,
            );
            write(dir, "tiers.yaml", &text);
            (
                "tiers.yaml".to_owned(),
                vec![format!("tier {t}"), "twice".into()],
            )
        }
        BadDeadline(d) => {
            initiative["deadline"] = json!(d);
            initiative_fault(&initiative, named(&format!("deadline `{d}` is not a date")))
        }
        TargetUnknownScorecard(name) => {
            initiative["targets"][0]["scorecard"] = json!(name);
            initiative_fault(&initiative, named(&format!("unknown scorecard `{name}`")))
        }
        TargetLevelAndRules => {
            let target = &mut initiative["targets"][0];
            target["level"] = json!("Gold");
            target["rules"] = json!(["r"]);
            initiative_fault(
                &initiative,
                named("needs exactly one of `level` and `rules`"),
            )
        }
        TargetUnknownRule(rule) => {
            let target = &mut initiative["targets"][0];
            target
                .as_object_mut()
                .expect("target")
                .shift_remove("level");
            target["rules"] = json!([rule]);
            let card = target["scorecard"].as_str().unwrap_or_default().to_owned();
            initiative_fault(
                &initiative,
                named(&format!("scorecard `{card}` has no rule `{rule}`")),
            )
        }
        TargetUnknownLevel(level) => {
            let target = &mut initiative["targets"][0];
            target
                .as_object_mut()
                .expect("target")
                .shift_remove("rules");
            target["level"] = json!(level);
            let card = target["scorecard"].as_str().unwrap_or_default().to_owned();
            initiative_fault(
                &initiative,
                named(&format!("scorecard `{card}` has no level `{level}`")),
            )
        }
        TargetNoRules => {
            let target = &mut initiative["targets"][0];
            target
                .as_object_mut()
                .expect("target")
                .shift_remove("level");
            target["rules"] = json!([]);
            initiative_fault(&initiative, named("lists no rules"))
        }
        NoTargets => {
            initiative["targets"] = json!([]);
            initiative_fault(&initiative, named("needs at least one target"))
        }
        MissingOwner => {
            initiative
                .as_object_mut()
                .expect("initiative")
                .shift_remove("owner");
            initiative_fault(&initiative, vec!["missing field `owner`".into()])
        }
        EmptyOwner => {
            initiative["owner"] = json!("  ");
            initiative_fault(&initiative, named("owner must not be empty"))
        }
        InitiativeUnknownKey(key) => {
            initiative[key.as_str()] = json!("x");
            initiative_fault(&initiative, vec![format!("unknown field `{key}`")])
        }
        DuplicateInitiative => {
            write(dir, "initiatives/zz-copy.json", &initiative.to_string());
            (
                "zz-copy.json".to_owned(),
                named("duplicate initiative identifier"),
            )
        }
        InitiativeBadFilter(op) => {
            initiative["filter"] = json!({"combinator": "and", "conditions": [
                {"property": "$tier", "operator": op, "value": 1}
            ]});
            initiative_fault(&initiative, named(&format!("unknown operator `{op}`")))
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// A valid directory loads to what was generated: scorecards, tiers, the initiative.
    #[test]
    fn valid_standards_round_trip(standards in gen_standards()) {
        let dir = tempfile::tempdir().expect("temp dir");
        standards.write_to(dir.path());
        let loaded: Standards = load_dir(dir.path(), &plugins())
            .map_err(|e| TestCaseError::fail(format!("{:?}", messages(&e))))?;
        let mut ids: Vec<&str> = standards.cards.iter().map(|c| c.identifier.as_str()).collect();
        ids.sort();
        let got: Vec<&str> = loaded.scorecards.iter().map(|c| c.identifier.as_str()).collect();
        prop_assert_eq!(got, ids);
        let tiers: Vec<u8> = loaded.tiers.tiers.keys().copied().collect();
        prop_assert_eq!(tiers, standards.tiers.keys().copied().collect::<Vec<_>>());
        for (t, want) in &standards.tiers {
            let got = &loaded.tiers.tiers[t];
            prop_assert_eq!(&got.require, &want.require);
            prop_assert_eq!(got.task_due_days, want.task_due_days.unwrap_or(30));
            prop_assert_eq!(&got.alert, &want.alert);
            prop_assert_eq!(&got.name, &want.name.clone().unwrap_or_else(|| format!("Tier {t}")));
        }
        if let Some(u) = &standards.untiered {
            prop_assert_eq!(&loaded.tiers.untiered.require, &u.require);
        }
        let i = &standards.initiative;
        let got = loaded.initiative(&i.identifier).expect("the initiative");
        prop_assert_eq!(got.deadline, i.deadline);
        prop_assert_eq!(&got.owner, &i.owner);
        prop_assert_eq!(got.targets.len(), i.targets.len());
        for (t, (card, goal)) in got.targets.iter().zip(&i.targets) {
            prop_assert_eq!(&t.scorecard, card);
            match goal {
                Ok(level) => prop_assert_eq!(t.level.as_ref(), Some(level)),
                Err(rules) => prop_assert_eq!(t.rules.as_ref(), Some(rules)),
            }
        }
        prop_assert_eq!(
            got.filter.as_ref().map(|q| serde_json::to_value(q).expect("serialises")),
            i.filter.clone()
        );
    }

    /// One fault in the tier policy or the initiative: the directory is refused, and an error
    /// names the file and the fault (and the tier or initiative).
    #[test]
    fn a_fault_in_tiers_or_initiatives_is_named(
        standards in gen_standards(),
        fault in policy_fault(),
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (file, tokens) = write_with_policy_fault(&standards, &fault, dir.path());
        let errors = match load_dir(dir.path(), &plugins()) {
            Ok(_) => {
                let tiers = std::fs::read_to_string(dir.path().join("tiers.yaml"))
                    .unwrap_or_default();
                return Err(TestCaseError::fail(format!("{fault:?} accepted:\n{tiers}")));
            }
            Err(errors) => errors,
        };
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        some_names(&messages(&errors), &file, &tokens)?;
    }

    /// N valid scorecards and one broken one: nothing loads and only the broken file is named;
    /// without it, everything loads.
    #[test]
    fn load_dir_is_all_or_nothing(
        standards in gen_standards(),
        broken in prop_oneof![
            definition_text().prop_filter("must be broken", |t| {
                parse_scorecard(Path::new("zz-broken.yaml"), t, &plugins()).is_err()
            }),
            (gen_card(), card_fault(), 0usize..8).prop_map(|(card, fault, at)| {
                let mut card = card;
                card.identifier = "zz-broken".into();
                let mut value = card.to_value();
                apply_card_fault(&fault, &mut value, at);
                to_yaml(&value)
            }),
        ],
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        standards.write_to(dir.path());
        write(dir.path(), "scorecards/.zz-broken.yaml.swp", "garbage: [");
        write(dir.path(), "scorecards/zz-broken.yaml", &broken);
        let broken_path = dir.path().join("scorecards/zz-broken.yaml");
        let errors = load_dir(dir.path(), &plugins())
            .err()
            .ok_or_else(|| TestCaseError::fail(format!("accepted:\n{broken}")))?;
        for e in &errors {
            prop_assert_eq!(e.file(), broken_path.as_path(), "{}", e);
        }
        std::fs::remove_file(&broken_path).expect("remove");
        let loaded = load_dir(dir.path(), &plugins())
            .map_err(|e| TestCaseError::fail(format!("{:?}", messages(&e))))?;
        prop_assert_eq!(loaded.scorecards.len(), standards.cards.len());
        prop_assert_eq!(loaded.initiatives.len(), 1);
    }

    /// Arbitrary text as the tier policy or an initiative never panics; faults name the file.
    #[test]
    fn tier_and_initiative_text_never_panics(
        tiers in prop_oneof![
            definition_text(),
            (json_value(), json_value()).prop_map(|(t, u)| to_yaml(&json!({"tiers": t, "untiered": u}))),
        ],
        initiative in prop_oneof![
            definition_text(),
            json_object().prop_map(|o| to_yaml(&o)),
        ],
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), "scorecards/s.yaml", "identifier: s\nlevels: [{title: A}, {title: B}]\n");
        write(dir.path(), "tiers.yaml", &tiers);
        write(dir.path(), "initiatives/i.yaml", &initiative);
        if let Err(errors) = load_dir(dir.path(), &plugins()) {
            for e in &errors {
                let text = e.to_string();
                prop_assert!(text.contains("tiers.yaml") || text.contains("i.yaml"), "{}", text);
            }
        }
    }
}

/// The demo organisation's standards load, and every scorecard file in it survives having any
/// one line removed without a panic.
#[test]
fn demo_standards_load_and_survive_line_removal() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/standards");
    let loaded = load_dir(&root, &AnyPlugins).expect("the demo standards load");
    assert!(!loaded.scorecards.is_empty());
    for card in &loaded.scorecards {
        let text = std::fs::read_to_string(&card.file).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        for skip in 0..lines.len() {
            let cut = super::without_line(&lines, skip);
            if let Err(errors) = parse_scorecard(&card.file, &cut, &AnyPlugins) {
                let name = card.file.display().to_string();
                assert!(
                    errors.iter().all(|e| e.to_string().contains(&name)),
                    "{:?}",
                    messages(&errors)
                );
            }
        }
    }
}

/// Found by `a_fault_in_tiers_or_initiatives_is_named`: `1` and `tier-1` (or `"1"`, or the same
/// JSON key twice) are the same tier, and the second silently replaced the first.
#[test]
fn a_tier_written_twice_is_refused() {
    for (file, text) in [
        (
            "tiers.yaml",
            "tiers:\n  1: {task_due_days: 7}\n  tier-1: {task_due_days: 3}\n",
        ),
        ("tiers.yaml", "tiers:\n  2: {}\n  \"2\": {}\n"),
        (
            "tiers.json",
            r#"{"tiers": {"3": {"task_due_days": 7}, "3": {"task_due_days": 3}}}"#,
        ),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        write(dir.path(), file, text);
        let errors = messages(&load_dir(dir.path(), &plugins()).unwrap_err());
        assert!(
            errors
                .iter()
                .any(|e| e.contains(file) && e.contains("is given twice")),
            "{errors:?}"
        );
    }
}
