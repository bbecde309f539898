//! Tests of reading and validating standards: every fault DESIGN.md §4 names is rejected with
//! its file, line, scorecard and rule; valid definitions compile; the diff sees what changed.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::*;

const DESIGN_SCORECARD: &str = r#"identifier: production-readiness
title: Production readiness
filter:                      # optional: which entities it applies to
  combinator: and
  conditions:
    - { property: $kind, operator: "=", value: service }
levels:
  - { title: Basic }         # first level: no rules
  - { title: Bronze }
  - { title: Silver }
  - { title: Gold }
rules:
  - identifier: has-owner
    title: Has an owning team
    level: Bronze
    query:
      combinator: and
      conditions:
        - { property: $team, operator: isNotEmpty }
  - identifier: has-oncall
    title: On-call rotation assigned
    level: Silver
    due_days: 14             # optional: deadline for the task when it fails
    weight: 2                # optional
    filter: { combinator: and, conditions: [ { property: $tier, operator: "<=", value: 2 } ] }
    query:
      combinator: or
      conditions:
        - { property: facts.pagerduty.oncall_count, operator: ">", value: 0 }
        - { combinator: and, conditions: [ { property: oncall_exempt_reason, operator: isNotEmpty } ] }
  - identifier: slo-budget
    title: Error budget not exhausted
    level: Gold
    check: { plugin: slo-budget, params: { objective: 99.9 } }   # a check plugin instead of a query
"#;

const DESIGN_TIERS: &str = r#"tiers:
  1: { name: Critical, require: { production-readiness: Gold, security: Silver }, task_due_days: 7,  alert: [sre-slack] }
  2: { name: Major,    require: { production-readiness: Silver },                 task_due_days: 14 }
  3: { name: Minor,    require: { production-readiness: Bronze },                 task_due_days: 30 }
untiered: { require: { production-readiness: Bronze } }
"#;

const SECURITY: &str = "identifier: security\nlevels: [{title: Basic}, {title: Bronze}, {title: Silver}]\nrules:\n  - identifier: r1\n    level: Bronze\n    query: {combinator: and, conditions: [{property: scanned, operator: '=', value: true}]}\n";

fn plugins() -> BTreeMap<String, PluginKind> {
    BTreeMap::from([
        ("slo-budget".to_owned(), PluginKind::Check),
        ("pagerduty".to_owned(), PluginKind::DataSource),
    ])
}

fn parse(text: &str) -> Result<Scorecard, Vec<StandardsError>> {
    parse_scorecard(Path::new("sc.yaml"), text, &plugins())
}

/// The faults' messages, for assertions.
fn faults(text: &str) -> Vec<String> {
    parse(text)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

#[test]
fn the_design_example_compiles() {
    let card = parse(DESIGN_SCORECARD).unwrap();
    assert_eq!(card.identifier, "production-readiness");
    assert_eq!(card.levels.len(), 4);
    assert_eq!(card.rules.len(), 3);
    let oncall = card.rule("has-oncall").unwrap();
    assert_eq!(
        (oncall.level_index, oncall.weight, oncall.due_days),
        (2, 2.0, Some(14))
    );
    assert!(oncall.filter.is_some() && oncall.query.is_some() && oncall.check.is_none());
    let slo = card.rule("slo-budget").unwrap();
    assert_eq!(slo.check.as_ref().unwrap().plugin, "slo-budget");
    assert_eq!(slo.check.as_ref().unwrap().params["objective"], 99.9);
    assert_eq!(slo.weight, 1.0);
    assert_eq!(card.rule("has-owner").unwrap().title, "Has an owning team");
}

#[test]
fn json_scorecards_are_accepted() {
    let json = r#"{"identifier": "docs", "levels": [{"title": "None"}, {"title": "Some"}],
        "rules": [{"identifier": "readme", "level": "Some",
                   "query": {"combinator": "and", "conditions": [{"property": "readme", "operator": "isNotEmpty"}]}}]}"#;
    let card = parse_scorecard(Path::new("docs.json"), json, &NoPlugins).unwrap();
    assert_eq!(card.title, "docs");
    assert_eq!(card.rules[0].title, "readme");
}

#[test]
fn unknown_keys_are_rejected_with_their_line() {
    let text = "identifier: x\nlevels: [{title: A}, {title: B}]\nrules:\n  - identifier: r\n    level: B\n    qeury: {combinator: and, conditions: []}\n";
    let errors = parse(text).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(matches!(errors[0], StandardsError::Syntax { .. }));
    assert_eq!(errors[0].line(), Some(6), "{}", errors[0]);
    assert!(
        errors[0].to_string().contains("unknown field `qeury`"),
        "{}",
        errors[0]
    );
    // Inside a condition too.
    let text = "identifier: x\nlevels: [{title: A}, {title: B}]\nrules:\n  - identifier: r\n    level: B\n    query:\n      combinator: and\n      conditions:\n        - {property: a, operator: '=', valeu: 1}\n";
    let errors = faults(text);
    assert!(errors[0].contains("unknown field `valeu`"), "{errors:?}");
    assert!(errors[0].starts_with("sc.yaml:9:"), "{errors:?}");
    // A combinator that is not and/or.
    let text = "identifier: x\nfilter: {combinator: xor, conditions: []}\nlevels: [{title: A}]\n";
    assert!(faults(text)[0].contains("unknown variant `xor`"));
}

#[test]
fn every_semantic_fault_is_reported_at_once() {
    let text = r#"identifier: sec
levels:
  - { title: Basic }
  - { title: Bronze }
  - { title: Bronze }
rules:
  - identifier: on-first
    level: Basic
    query: { combinator: and, conditions: [ { property: a, operator: isEmpty } ] }
  - identifier: bad-level
    level: Platinum
    query: { combinator: and, conditions: [ { property: a, operator: isEmpty } ] }
  - identifier: both
    level: Bronze
    query: { combinator: and, conditions: [ { property: a, operator: isEmpty } ] }
    check: { plugin: slo-budget }
  - identifier: neither
    level: Bronze
  - identifier: bad-op
    level: Bronze
    query:
      combinator: and
      conditions:
        - { property: a, operator: isEmpty }
        - { property: b, operator: greaterThan, value: 1 }
  - identifier: bad-values
    level: Bronze
    weight: 0
    query:
      combinator: or
      conditions:
        - { property: a, operator: in, value: x }
        - { property: b, operator: matchesRegex, value: "(" }
        - { property: c, operator: satisfiesVersion, value: "~>1" }
        - { property: d, operator: between, value: { from: "2024-01-01", to: "soon" } }
  - identifier: no-plugin
    level: Bronze
    check: { plugin: nope }
  - identifier: data-source
    level: Bronze
    check: { plugin: pagerduty }
  - identifier: both
    level: Bronze
    query: { combinator: and, conditions: [ { property: a, operator: isEmpty } ] }
  - identifier: Bad/Id
    level: Bronze
    query: { combinator: and, conditions: [ { property: a, operator: isEmpty } ] }
"#;
    let errors = faults(text);
    let expect = [
        "sc.yaml:5: scorecard `sec`: duplicate level `Bronze`",
        "sc.yaml:8: scorecard `sec`, rule `on-first`: rules cannot be on the first level `Basic`",
        "sc.yaml:11: scorecard `sec`, rule `bad-level`: unknown level `Platinum` (levels: Basic, Bronze, Bronze)",
        "sc.yaml:13: scorecard `sec`, rule `both`: a rule has a query or a check, not both",
        "sc.yaml:17: scorecard `sec`, rule `neither`: a rule needs a query or a check",
        "sc.yaml:25: scorecard `sec`, rule `bad-op`: query.conditions[1]: unknown operator `greaterThan`",
        "sc.yaml:28: scorecard `sec`, rule `bad-values`: weight must be a number greater than 0",
        "sc.yaml:32: scorecard `sec`, rule `bad-values`: query.conditions[0]: operator `in` needs a list",
        "sc.yaml:33: scorecard `sec`, rule `bad-values`: query.conditions[1]: operator `matchesRegex`: invalid regular expression `(`: unclosed group",
        "sc.yaml:34: scorecard `sec`, rule `bad-values`: query.conditions[2]: operator `satisfiesVersion`: invalid version requirement `~>1`",
        "sc.yaml:35: scorecard `sec`, rule `bad-values`: query.conditions[3]: operator `between`: `to` `soon` is not an ISO date",
        "sc.yaml:38: scorecard `sec`, rule `no-plugin`: unknown check plugin `nope`",
        "sc.yaml:41: scorecard `sec`, rule `data-source`: plugin `pagerduty` is a data source, not a check",
        "sc.yaml:42: scorecard `sec`, rule `both`: duplicate rule identifier",
        "sc.yaml:45: scorecard `sec`, rule `Bad/Id`: identifier `Bad/Id` is not valid",
    ];
    for (i, want) in expect.iter().enumerate() {
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "expected #{i} {want:?} among:\n{}",
            errors.join("\n")
        );
    }
    assert_eq!(errors.len(), expect.len(), "{}", errors.join("\n"));
}

#[test]
fn a_scorecard_needs_levels_and_a_valid_identifier() {
    let errors = faults("identifier: -sec\nlevels: []\n");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("identifier `-sec` is not valid")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("at least one level")),
        "{errors:?}"
    );
    let errors = faults(
        "identifier: s\nlevels: [{title: A}]\nfilter: {combinator: and, conditions: [{property: $owner, operator: isEmpty}]}\n",
    );
    assert!(
        errors[0]
            .contains("scorecard `s`: filter.conditions[0]: unknown built-in property `$owner`"),
        "{errors:?}"
    );
}

#[test]
fn validation_without_plugins() {
    let card = parse_scorecard(Path::new("sc.yaml"), DESIGN_SCORECARD, &AnyPlugins);
    assert!(card.is_ok());
    let errors = parse_scorecard(Path::new("sc.yaml"), DESIGN_SCORECARD, &NoPlugins).unwrap_err();
    assert!(
        errors[0]
            .to_string()
            .contains("unknown check plugin `slo-budget`")
    );
}

#[test]
fn load_dir_reads_the_whole_layout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "scorecards/production-readiness.yaml", DESIGN_SCORECARD);
    write(d, "scorecards/team-a/security.yml", SECURITY);
    write(d, "scorecards/.security.yaml.swp", "garbage");
    write(d, "tiers.yaml", DESIGN_TIERS);
    write(
        d,
        "initiatives/oncall.yaml",
        "identifier: oncall-2025\ntitle: Everyone on call\nowner: sre\ndeadline: 2025-06-30\ntargets:\n  - { scorecard: production-readiness, level: Silver }\n  - { scorecard: security, rules: [r1] }\nfilter: {combinator: and, conditions: [{property: $tier, operator: '<=', value: 2}]}\n",
    );
    write(d, "README.md", "not read");
    let standards = load_dir(d, &plugins()).unwrap();
    let ids: Vec<&str> = standards
        .scorecards
        .iter()
        .map(|s| s.identifier.as_str())
        .collect();
    assert_eq!(ids, ["production-readiness", "security"]);
    assert!(standards.scorecard("security").is_some());
    assert!(standards.scorecard("nope").is_none());
    let tier1 = &standards.tiers.tiers[&1];
    assert_eq!((tier1.name.as_str(), tier1.task_due_days), ("Critical", 7));
    assert_eq!(tier1.alert, ["sre-slack"]);
    assert_eq!(tier1.require["security"], "Silver");
    assert_eq!(
        standards.tiers.untiered.task_due_days,
        policy::DEFAULT_TASK_DUE_DAYS
    );
    assert_eq!(
        standards.tiers.for_tier(None).require["production-readiness"],
        "Bronze"
    );
    assert_eq!(standards.tiers.for_tier(Some(2)).name, "Major");
    let initiative = standards.initiative("oncall-2025").unwrap();
    assert_eq!(initiative.deadline.to_string(), "2025-06-30");
    assert_eq!(initiative.targets.len(), 2);
    assert!(initiative.filter.is_some());
    assert_eq!(standards.revision.len(), 16);
    assert_eq!(
        load_dir(d, &plugins()).unwrap().revision,
        standards.revision
    );
}

#[test]
fn an_empty_directory_gives_empty_standards() {
    let dir = tempfile::tempdir().unwrap();
    let standards = load_dir(dir.path(), &NoPlugins).unwrap();
    assert!(standards.scorecards.is_empty());
    assert!(standards.tiers.tiers.is_empty());
    assert!(load_dir(&dir.path().join("missing"), &NoPlugins).is_err());
}

#[test]
fn cross_references_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "scorecards/pr.yaml", DESIGN_SCORECARD);
    write(
        d,
        "scorecards/zz-copy.json",
        r#"{"identifier": "production-readiness", "levels": [{"title": "A"}]}"#,
    );
    // `security` is unknown; Platinum is not a level; tier 4 does not exist.
    write(
        d,
        "tiers.yaml",
        "tiers:\n  1:\n    require:\n      production-readiness: Platinum\n      security: Silver\n  tier-2: { task_due_days: 0 }\n",
    );
    write(
        d,
        "initiatives/a.yaml",
        "identifier: a\nowner: sre\ndeadline: 2025-13-01\ntargets:\n  - { scorecard: production-readiness, level: Gold, rules: [has-owner] }\n  - { scorecard: production-readiness, rules: [has-owner, nope] }\n  - { scorecard: ghost, level: Gold }\n  - { scorecard: production-readiness, level: Diamond }\n",
    );
    write(
        d,
        "initiatives/b.yaml",
        "identifier: a\nowner: sre\ndeadline: 2025-01-01\ntargets: [{ scorecard: production-readiness, level: Gold }]\n",
    );
    write(d, "tier.yaml", "tiers: {}\n");
    let errors: Vec<String> = load_dir(d, &plugins())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    let expect = [
        "zz-copy.json:1: scorecard `production-readiness`: duplicate scorecard identifier, also defined in",
        "tiers.yaml:4: tier 1: scorecard `production-readiness` has no level `Platinum` (levels: Basic, Bronze, Silver, Gold)",
        "tiers.yaml:5: tier 1: unknown scorecard `security`",
        "tier 2: task_due_days must be at least 1",
        "a.yaml:3: initiative `a`: deadline `2025-13-01` is not a date",
        "a.yaml:5: initiative `a`: target `production-readiness` needs exactly one of `level` and `rules`",
        "a.yaml:6: initiative `a`: scorecard `production-readiness` has no rule `nope`",
        "a.yaml:7: initiative `a`: unknown scorecard `ghost`",
        "a.yaml:8: initiative `a`: scorecard `production-readiness` has no level `Diamond`",
        "b.yaml:1: initiative `a`: duplicate initiative identifier, also defined in",
        "tier.yaml: unexpected definition file",
    ];
    for want in expect {
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "expected {want:?} among:\n{}",
            errors.join("\n")
        );
    }
    assert_eq!(errors.len(), expect.len(), "{}", errors.join("\n"));
}

#[test]
fn a_broken_scorecard_is_not_also_reported_as_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "scorecards/security.yaml",
        "identifier: security\nlevels: [{title: A}, {title: B}]\nrules:\n  - {identifier: r, level: Z, query: {combinator: and, conditions: [{property: a, operator: isEmpty}]}}\n",
    );
    write(
        d,
        "tiers.yaml",
        "tiers: { 1: { require: { security: B } } }\n",
    );
    let errors = load_dir(d, &NoPlugins).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].to_string().contains("unknown level `Z`"));
}

#[test]
fn syntax_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "scorecards/x.yaml",
        "identifier: x\nlevels:\n  - title: [A\n",
    );
    write(
        dir.path(),
        "scorecards/y.json",
        "{\"identifier\": \"y\",\n \"levels\": 3}",
    );
    let errors = load_dir(dir.path(), &NoPlugins).unwrap_err();
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|e| e.line().is_some()), "{errors:?}");
    let y = errors
        .iter()
        .find(|e| e.file().ends_with("y.json"))
        .unwrap();
    assert_eq!(y.line(), Some(2), "{y}");
}

fn standards_of(files: &[(&str, &str)]) -> Standards {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        write(dir.path(), rel, text);
    }
    load_dir(dir.path(), &plugins()).unwrap()
}

#[test]
fn diff_names_what_changed() {
    let old = standards_of(&[
        ("scorecards/pr.yaml", DESIGN_SCORECARD),
        ("scorecards/security.yaml", SECURITY),
        ("tiers.yaml", DESIGN_TIERS),
    ]);
    let same = standards_of(&[
        // Moving a scorecard to another file changes nothing.
        ("scorecards/moved/pr.yaml", DESIGN_SCORECARD),
        ("scorecards/security.yaml", SECURITY),
        ("tiers.yaml", DESIGN_TIERS),
    ]);
    let diff = Standards::diff(&old, &same);
    assert!(diff.is_empty(), "{diff}");

    let changed_pr = DESIGN_SCORECARD
        .replace("value: 0 }", "value: 1 }")
        .replace("  - identifier: slo-budget", "  - identifier: slo-budget-2");
    let security_r3 = format!(
        "{SECURITY}  - identifier: r3\n    level: Silver\n    query: {{combinator: and, conditions: [{{property: x, operator: isEmpty}}]}}\n"
    );
    let new = standards_of(&[
        ("scorecards/pr.yaml", &changed_pr),
        ("scorecards/security.yaml", &security_r3),
        (
            "scorecards/docs.yaml",
            "identifier: docs\nlevels: [{title: A}]\n",
        ),
        (
            "tiers.yaml",
            &DESIGN_TIERS.replace("task_due_days: 7", "task_due_days: 5"),
        ),
    ]);
    let diff = Standards::diff(&old, &new);
    assert_eq!(diff.scorecards_added, ["docs"]);
    assert!(diff.scorecards_removed.is_empty());
    assert!(diff.tiers_changed);
    assert_eq!(
        diff.affected_scorecards(),
        ["docs", "production-readiness", "security"]
    );
    let lines = diff.describe();
    for want in [
        "scorecard docs added",
        "scorecard production-readiness: rule slo-budget-2 added",
        "scorecard production-readiness: rule slo-budget removed",
        "scorecard production-readiness: rule has-oncall changed",
        "scorecard security: rule r3 added",
        "tier policy changed",
    ] {
        assert!(lines.iter().any(|l| l == want), "{want:?} not in {lines:?}");
    }
    assert_eq!(lines.len(), 6, "{lines:?}");

    let reversed = Standards::diff(&new, &old);
    assert_eq!(reversed.scorecards_removed, ["docs"]);
    // A filter change is a definition change.
    let filtered = SECURITY.replace(
        "levels:",
        "filter: {combinator: and, conditions: [{property: $kind, operator: '=', value: service}]}\nlevels:",
    );
    let diff = Standards::diff(
        &standards_of(&[("scorecards/s.yaml", SECURITY)]),
        &standards_of(&[("scorecards/s.yaml", &filtered)]),
    );
    assert_eq!(diff.describe(), ["scorecard security: definition changed"]);
}

#[test]
fn scorecards_serialize_as_written() {
    let card = parse(DESIGN_SCORECARD).unwrap();
    let json = serde_json::to_value(&card).unwrap();
    assert_eq!(
        json["rules"][1]["filter"]["conditions"][0]["operator"],
        "<="
    );
    assert_eq!(
        json["rules"][1]["query"]["conditions"][0]["property"],
        "facts.pagerduty.oncall_count"
    );
    assert_eq!(json["rules"][2]["check"]["plugin"], "slo-budget");
    assert!(json.get("file").is_none());
}

/// Issue 17: `tiers.yaml` requiring a scorecard that does not exist is a definition error
/// naming the file and the line, in the flow style the examples use, for a tier and for
/// `untiered`; the whole set is refused.
#[test]
fn tiers_requiring_an_unknown_scorecard_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "scorecards/pr.yaml", DESIGN_SCORECARD);
    write(
        d,
        "tiers.yaml",
        "# the example's layout\ntiers:\n  1: { name: Critical, require: { production-readiness: Gold, security: Silver }, task_due_days: 7 }\n  2: { name: Major, require: { production-readiness: Silver } }\nuntiered: { require: { ghost: Bronze } }\n",
    );
    let errors = load_dir(d, &plugins()).unwrap_err();
    let found: Vec<(String, Option<usize>, String)> = errors
        .iter()
        .map(|e| {
            (
                e.file().file_name().unwrap().to_string_lossy().into_owned(),
                e.line(),
                e.to_string(),
            )
        })
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].0, "tiers.yaml");
    assert_eq!(found[0].1, Some(3));
    assert!(
        found[0]
            .2
            .ends_with("tiers.yaml:3: tier 1: unknown scorecard `security`"),
        "{found:?}"
    );
    assert_eq!(found[1].1, Some(5));
    assert!(
        found[1]
            .2
            .ends_with("tiers.yaml:5: untiered: unknown scorecard `ghost`"),
        "{found:?}"
    );
    // With the scorecard present the same policy loads.
    write(
        d,
        "tiers.yaml",
        "tiers:\n  1: { require: { production-readiness: Gold } }\n",
    );
    assert!(load_dir(d, &plugins()).is_ok());
}

/// A set compiled again from the texts kept in [`Standards::sources`] (what the store keeps)
/// is the same set, with the same revision; a path that is no part of a standards set is
/// refused.
#[test]
fn a_set_compiles_again_from_its_sources() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "scorecards/pr.yaml", DESIGN_SCORECARD);
    write(
        d,
        "scorecards/team/other.json",
        r#"{"identifier": "other", "levels": [{"title": "A"}]}"#,
    );
    write(
        d,
        "tiers.yaml",
        "tiers:\n  1: { require: { production-readiness: Gold } }\n",
    );
    write(
        d,
        "initiatives/a.yaml",
        "identifier: a\nowner: sre\ndeadline: 2030-01-01\ntargets: [{ scorecard: production-readiness, level: Gold }]\n",
    );
    let set = load_dir(d, &plugins()).unwrap();
    let paths: Vec<&str> = set.sources.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "scorecards/pr.yaml",
            "scorecards/team/other.json",
            "initiatives/a.yaml",
            "tiers.yaml"
        ]
    );
    // Elsewhere, without the files: the same set.
    let elsewhere = tempfile::tempdir().unwrap();
    let again = load_sources(elsewhere.path(), &set.sources, &plugins()).unwrap();
    assert_eq!(again.revision, set.revision);
    assert_eq!(
        again.scorecards,
        set.scorecards
            .iter()
            .map(|c| {
                let mut c = (**c).clone();
                c.file = elsewhere.path().join(c.file.strip_prefix(d).unwrap());
                Arc::new(c)
            })
            .collect::<Vec<_>>()
    );
    assert_eq!(again.tiers, set.tiers);
    assert_eq!(again.initiatives, set.initiatives);
    let mut odd = (*set.sources).clone();
    odd.push(SourceFile {
        path: "notes.yaml".into(),
        text: "x: 1\n".into(),
    });
    let errors = load_sources(elsewhere.path(), &odd, &plugins()).unwrap_err();
    assert!(errors[0].to_string().contains("notes.yaml"), "{:?}", errors);
}
