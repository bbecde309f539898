//! The engine on the example organisation: real plugins, real redb, the demo stand-in.
//! Levels, exemptions with approval and expiry, tier changes, locks and the gate, incremental
//! evaluation, reloads that refuse bad files, and state that survives a restart.

use chrono::{Duration, Utc};
use readyd::clock::Clock;
use readyd::engine::{DecisionInput, EngineError, ExemptionInput, LockInput, TierRequestInput};
use readyd::model::{ExemptionStatus, RuleStatus};
use readyd_tests::{DemoOrg, actor, start_engine, write_file};

fn level(engine: &readyd::engine::Engine, id: &str, scorecard: &str) -> String {
    engine
        .entity_scores(id)
        .unwrap()
        .into_iter()
        .find(|r| r.scorecard == scorecard)
        .unwrap_or_else(|| panic!("{id} has no {scorecard} result"))
        .level
        .to_string()
}

fn rule_status(
    engine: &readyd::engine::Engine,
    id: &str,
    scorecard: &str,
    rule: &str,
) -> RuleStatus {
    let r = rule_result(engine, id, scorecard, rule);
    eprintln!("{id} {scorecard}/{rule}: {:?} {:?}", r.status, r.message);
    r.status
}

fn rule_result(
    engine: &readyd::engine::Engine,
    id: &str,
    scorecard: &str,
    rule: &str,
) -> readyd::model::RuleResult {
    engine
        .entity_scores(id)
        .unwrap()
        .into_iter()
        .find(|r| r.scorecard == scorecard)
        .unwrap()
        .rules
        .into_iter()
        .find(|r| *r.rule == *rule)
        .unwrap_or_else(|| panic!("no rule {rule}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_the_example_organisation_with_real_plugins() {
    let org = DemoOrg::new().await;
    let engine = start_engine(org.config(), Clock::system()).await;
    engine.collect_once().await;
    let entities = engine.entities(&Default::default());
    assert!(entities.len() >= 28, "{} entities", entities.len());
    let status = engine.status();
    assert!(
        status["standards"]["errors"].as_array().unwrap().is_empty(),
        "{status}"
    );
    for p in status["plugins"].as_array().unwrap() {
        assert_eq!(
            p["state"]["state"].as_str().or(p["state"].as_str()),
            Some("active"),
            "{p}"
        );
    }
    // repo-scan facts reached the evaluator: payments-api has a README, CI and tests.
    assert_eq!(
        rule_status(
            &engine,
            "payments-api",
            "production-readiness",
            "has-readme"
        ),
        RuleStatus::Pass
    );
    assert_eq!(
        rule_status(&engine, "payments-api", "production-readiness", "has-tests"),
        RuleStatus::Pass
    );
    // http-json on-call facts: sso-gateway has nobody on call.
    assert_eq!(
        rule_status(&engine, "sso-gateway", "production-readiness", "has-oncall"),
        RuleStatus::Fail
    );
    assert_eq!(
        rule_status(
            &engine,
            "payments-api",
            "production-readiness",
            "has-oncall"
        ),
        RuleStatus::Pass
    );
    // The slo-budget check plugin: legacy-billing burnt its budget.
    assert_eq!(
        rule_status(
            &engine,
            "legacy-billing",
            "production-readiness",
            "slo-budget"
        ),
        RuleStatus::Fail
    );
    assert_eq!(
        rule_status(
            &engine,
            "payments-api",
            "production-readiness",
            "slo-budget"
        ),
        RuleStatus::Pass
    );
    // dependency-policy: landing-pages ships left-pad.
    assert_eq!(
        rule_status(&engine, "landing-pages", "security", "dependency-policy"),
        RuleStatus::Fail
    );
    // Missing data fails with a message that says so.
    let scores = engine.entity_scores("experiments-sandbox").unwrap();
    let owner = scores[0]
        .rules
        .iter()
        .find(|r| &*r.rule == "has-owner")
        .unwrap();
    assert_eq!(owner.status, RuleStatus::Fail);
    assert!(
        owner.message.as_deref().unwrap_or("").contains("missing"),
        "{owner:?}"
    );
    // payments-api reaches Gold; payments-ledger lacks automated rollback: Silver.
    assert_eq!(
        level(&engine, "payments-api", "production-readiness"),
        "Gold"
    );
    assert_eq!(
        level(&engine, "payments-ledger", "production-readiness"),
        "Silver"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exemption_approval_raises_the_level_and_expiry_lowers_it() {
    let org = DemoOrg::new().await;
    let clock = Clock::manual(Utc::now());
    let engine = start_engine(org.config(), clock.clone()).await;
    engine.collect_once().await;
    let owner = actor("pat", "owner:payments");
    let approver = actor("sam", "approver");
    assert_eq!(
        level(&engine, "payments-ledger", "production-readiness"),
        "Silver"
    );
    let gate = engine.gate("payments-ledger").unwrap();
    assert!(!gate.allowed);
    assert!(
        gate.reasons
            .iter()
            .any(|r| r.contains("automated-rollback")),
        "{gate:?}"
    );

    let request = |until| ExemptionInput {
        entity: "payments-ledger".into(),
        scorecard: "production-readiness".into(),
        rule: Some("automated-rollback".into()),
        reason: "rollback automation lands in Q1".into(),
        until,
    };
    // Bad requests change nothing.
    let past = engine
        .request_exemption(&owner, request(clock.now() - Duration::hours(1)))
        .await;
    assert!(matches!(past, Err(EngineError::BadRequest(_))), "{past:?}");
    let mut unknown = request(clock.now() + Duration::days(30));
    unknown.rule = Some("no-such-rule".into());
    assert!(matches!(
        engine.request_exemption(&owner, unknown).await,
        Err(EngineError::BadRequest(_))
    ));
    let other_team = actor("ines", "owner:identity");
    assert!(matches!(
        engine
            .request_exemption(&other_team, request(clock.now() + Duration::days(30)))
            .await,
        Err(EngineError::Forbidden(_))
    ));
    assert!(engine.exemptions(None).is_empty());

    let ex = engine
        .request_exemption(&owner, request(clock.now() + Duration::days(30)))
        .await
        .unwrap();
    assert_eq!(ex.status, ExemptionStatus::Pending);
    // Pending changes nothing; the requester cannot approve; an owner is no approver.
    assert_eq!(
        level(&engine, "payments-ledger", "production-readiness"),
        "Silver"
    );
    let admin_requester = actor("pat", "admin");
    assert!(matches!(
        engine
            .approve_exemption(&admin_requester, &ex.id, DecisionInput::default())
            .await,
        Err(EngineError::Forbidden(_))
    ));
    assert!(matches!(
        engine
            .approve_exemption(&owner, &ex.id, DecisionInput::default())
            .await,
        Err(EngineError::Forbidden(_))
    ));
    let approved = engine
        .approve_exemption(
            &approver,
            &ex.id,
            DecisionInput {
                note: Some("ok for Q1".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(approved.status, ExemptionStatus::Approved);
    assert_eq!(
        rule_status(
            &engine,
            "payments-ledger",
            "production-readiness",
            "automated-rollback"
        ),
        RuleStatus::Exempt
    );
    assert_eq!(
        level(&engine, "payments-ledger", "production-readiness"),
        "Gold"
    );
    // Approving twice, or denying an approved one, is a conflict.
    assert!(matches!(
        engine
            .approve_exemption(&approver, &ex.id, DecisionInput::default())
            .await,
        Err(EngineError::Conflict(_))
    ));
    assert!(matches!(
        engine
            .deny_exemption(&approver, &ex.id, DecisionInput::default())
            .await,
        Err(EngineError::Conflict(_))
    ));
    let audit = engine.audit("exemption", &ex.id);
    assert_eq!(
        audit.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(),
        ["requested", "approved"]
    );

    // Expiry at `until`, without any request arriving: the tick expires it.
    clock.advance(Duration::days(31));
    engine.tick().await.unwrap();
    assert_eq!(
        engine.exemption(&ex.id).unwrap().status,
        ExemptionStatus::Expired
    );
    assert_eq!(
        level(&engine, "payments-ledger", "production-readiness"),
        "Silver"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_denial_locks_tier_changes_and_restart() {
    let org = DemoOrg::new().await;
    let config = org.config();
    let clock = Clock::manual(Utc::now());
    let engine = start_engine(config.clone(), clock.clone()).await;
    engine.collect_once().await;
    let owner = actor("pat", "owner:payments");
    let approver = actor("sam", "approver");

    // Revoke moves the level back.
    let ex = engine
        .request_exemption(
            &owner,
            ExemptionInput {
                entity: "payments-ledger".into(),
                scorecard: "production-readiness".into(),
                rule: None,
                reason: "whole scorecard".into(),
                until: clock.now() + Duration::days(10),
            },
        )
        .await
        .unwrap();
    engine
        .approve_exemption(&approver, &ex.id, DecisionInput::default())
        .await
        .unwrap();
    assert_eq!(
        level(&engine, "payments-ledger", "production-readiness"),
        "Gold"
    );
    engine
        .revoke_exemption(&approver, &ex.id, DecisionInput::default())
        .await
        .unwrap();
    assert_eq!(
        level(&engine, "payments-ledger", "production-readiness"),
        "Silver"
    );

    // A denied request cannot be approved later.
    let ex2 = engine
        .request_exemption(
            &owner,
            ExemptionInput {
                entity: "payments-api".into(),
                scorecard: "security".into(),
                rule: Some("recent-pentest".into()),
                reason: "r".into(),
                until: clock.now() + Duration::days(10),
            },
        )
        .await
        .unwrap();
    engine
        .deny_exemption(&approver, &ex2.id, DecisionInput::default())
        .await
        .unwrap();
    assert!(matches!(
        engine
            .approve_exemption(&approver, &ex2.id, DecisionInput::default())
            .await,
        Err(EngineError::Conflict(_))
    ));

    // A lock closes the gate with its reason.
    engine
        .lock(
            &owner,
            "payments-api",
            LockInput {
                reason: "incident INC-42".into(),
            },
        )
        .await
        .unwrap();
    let gate = engine.gate("payments-api").unwrap();
    assert!(!gate.allowed);
    assert!(gate.reasons[0].contains("INC-42"), "{gate:?}");
    assert!(matches!(
        engine
            .lock(
                &owner,
                "payments-api",
                LockInput {
                    reason: "again".into()
                }
            )
            .await,
        Err(EngineError::Conflict(_))
    ));

    // Tier change: payments-ledger to tier 3 needs approval, then its tier applies at once.
    let tr = engine
        .request_tier_change(
            &owner,
            TierRequestInput {
                entity: "payments-ledger".into(),
                to: Some(3),
                reason: "being retired".into(),
            },
        )
        .await
        .unwrap();
    assert!(!engine.gate("payments-ledger").unwrap().allowed);
    engine
        .approve_tier_request(&approver, &tr.id, DecisionInput::default())
        .await
        .unwrap();
    assert_eq!(
        engine.entity("payments-ledger").unwrap().entity.tier,
        Some(3)
    );
    assert!(
        engine.gate("payments-ledger").unwrap().allowed,
        "{:?}",
        engine.gate("payments-ledger")
    );
    engine.shutdown().await;
    drop(engine);

    // Everything people did is there after a restart on the same file.
    let engine = start_engine(config, clock.clone()).await;
    assert_eq!(
        engine.exemption(&ex.id).unwrap().status,
        ExemptionStatus::Revoked
    );
    assert_eq!(
        engine.exemption(&ex2.id).unwrap().status,
        ExemptionStatus::Denied
    );
    assert!(!engine.gate("payments-api").unwrap().allowed);
    assert_eq!(
        engine.entity("payments-ledger").unwrap().entity.tier,
        Some(3)
    );
    engine
        .unlock(&owner, "payments-api", DecisionInput::default())
        .await
        .unwrap();
    assert!(
        engine
            .gate("payments-api")
            .unwrap()
            .reasons
            .iter()
            .all(|r| !r.contains("INC-42"))
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_reevaluate_one_entity_and_reloads_refuse_bad_files() {
    let org = DemoOrg::new().await;
    let engine = start_engine(org.config(), Clock::system()).await;
    engine.collect_once().await;
    let before_other = engine.entity_scores("search-api").unwrap();
    assert_eq!(
        rule_status(&engine, "sso-gateway", "production-readiness", "has-oncall"),
        RuleStatus::Fail
    );
    // The scorecard's aggregate view (kept between passes) counts the rule's passing entities.
    let passing = |engine: &readyd::engine::Engine| {
        let view = engine.scorecard("production-readiness").unwrap();
        let listed = engine
            .scorecards()
            .into_iter()
            .find(|v| v.identifier == "production-readiness")
            .unwrap();
        let count = |v: &readyd::engine::ScorecardView| {
            v.rules
                .iter()
                .find(|r| r.identifier == "has-oncall")
                .unwrap()
                .passing
        };
        assert_eq!(count(&view), count(&listed));
        count(&view)
    };
    let passing_before = passing(&engine);
    let mut facts = serde_json::Map::new();
    facts.insert("oncall_count".into(), 3.into());
    engine
        .ingest_facts("oncall", vec![("sso-gateway".into(), facts)])
        .await
        .unwrap();
    assert_eq!(
        rule_status(&engine, "sso-gateway", "production-readiness", "has-oncall"),
        RuleStatus::Pass
    );
    assert_eq!(
        passing(&engine),
        passing_before + 1,
        "the view follows the new results"
    );
    // Another entity was not re-evaluated.
    assert_eq!(engine.entity_scores("search-api").unwrap(), before_other);

    // A broken scorecard is refused whole; the old standards stay active.
    let revision = engine.status()["standards"]["revision"].clone();
    write_file(
        org.path(),
        "standards/scorecards/broken.yaml",
        "identifier: broken\ntitle: Broken\nlevels: [{title: Basic}, {title: Bronze}]\nrules:\n  - identifier: r\n    title: R\n    level: Bronze\n    query: {combinator: and, conditions: [{property: x, operator: looksLike, value: 1}]}\n",
    );
    let report = engine.reload_standards("test").await;
    assert!(
        report.errors.iter().any(|e| e.contains("looksLike")),
        "{report:?}"
    );
    assert_eq!(engine.status()["standards"]["revision"], revision);
    assert!(
        engine.status()["standards"]["last_error"]
            .as_str()
            .unwrap()
            .contains("broken.yaml")
    );

    // A good new rule is in force for exactly the entities its scorecard applies to.
    std::fs::remove_file(org.path().join("standards/scorecards/broken.yaml")).unwrap();
    write_file(
        org.path(),
        "standards/scorecards/docs.yaml",
        "identifier: docs\ntitle: Documentation\nfilter: {combinator: and, conditions: [{property: $team, operator: \"=\", value: payments}]}\nlevels: [{title: None}, {title: Documented}]\nrules:\n  - identifier: readme\n    title: README\n    level: Documented\n    query: {combinator: and, conditions: [{property: facts.repo-scan.has_readme, operator: \"=\", value: true}]}\n",
    );
    let report = engine.reload_standards("test").await;
    assert!(report.errors.is_empty(), "{report:?}");
    let payments = engine.entities(&readyd::engine::EntityFilter {
        team: Some("payments".into()),
        ..Default::default()
    });
    assert_eq!(report.reevaluated, payments.len(), "{report:?}");
    assert_eq!(level(&engine, "payments-api", "docs"), "Documented");
    assert!(
        engine
            .entity_scores("search-api")
            .unwrap()
            .iter()
            .all(|r| r.scorecard != "docs")
    );

    // A broken catalog file changes nothing; a good edit applies.
    write_file(
        org.path(),
        "catalog/new.yaml",
        "- identifier: Bad Id\n  kind: service\n",
    );
    let report = engine.reload_catalog("test").await;
    assert!(!report.errors.is_empty());
    assert!(engine.entity("new-service").is_err());
    write_file(
        org.path(),
        "catalog/new.yaml",
        "- identifier: new-service\n  kind: service\n  team: search\n  tier: 3\n",
    );
    let report = engine.reload_catalog("test").await;
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(report.reevaluated, 1, "{report:?}");
    // No checkout, so no README: it stays at the first level.
    assert_eq!(
        level(&engine, "new-service", "production-readiness"),
        "Basic"
    );
    engine.shutdown().await;
}
