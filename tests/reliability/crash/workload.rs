//! The write load of one daemon life: concurrent workers that keep the daemon busy with writes
//! until the test kills it, recording every acknowledged answer in the [`Ledger`].
//!
//! - two owners (one per team) request exemptions and tier changes;
//! - an approver approves, denies and revokes exemptions and decides tier requests (each
//!   decision re-evaluates the entity and queues notifications in the same transaction);
//! - an evaluator changes the on-call facts the data source reports and asks for a refresh
//!   (fact collection through the real plugin, then an evaluation pass), or nudges a team;
//! - a catalog editor adds or removes a runbook in the catalog file and asks for a reload (an
//!   evaluation pass over what changed: level changes, tier alerts, tasks).
//!
//! A request that fails while nobody has killed the daemon fails the test (the daemon cut it off
//! or died on its own). After the kill, a request without a complete answer is counted as cut off
//! and what it asked for is recorded as uncertain.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use readyd::model::{Exemption, ExemptionStatus, TierRequest, TierRequestStatus};
use serde_json::json;

use super::Rng;
use super::ledger::{ExemptionRecord, Ledger, TierRecord};
use super::net::{CallError, Reply, Server, call};
use super::org;

/// What the workers of one life share.
#[derive(Clone)]
pub struct Load {
    pub addr: SocketAddr,
    pub ledger: Arc<Mutex<Ledger>>,
    pub server: Arc<Server>,
    /// Set just before the kill: failures after it are the kill's doing.
    pub stop: Arc<AtomicBool>,
    /// Requests sent and not yet completely answered.
    pub in_flight: Arc<AtomicUsize>,
    /// The organisation's root (the catalog file lives there).
    pub root: PathBuf,
}

fn admin() -> &'static str {
    readyd_tests::token_for("admin")
}

fn approver() -> &'static str {
    readyd_tests::token_for("approver")
}

impl Load {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// One request. `None`: the daemon was killed under it (counted if it was cut off).
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> Option<Reply> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = call(self.addr, method, path, Some(token), body.as_ref()).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        match result {
            Ok(reply) => Some(reply),
            Err(e) => {
                assert!(
                    self.stopped(),
                    "{method} {path} failed while nobody had killed the daemon: {e}"
                );
                if let CallError::CutOff(_) = e {
                    self.ledger.lock().unwrap().cut_off += 1;
                }
                None
            }
        }
    }

    fn acked(&self) {
        self.ledger.lock().unwrap().acked += 1;
    }

    /// Spawn every worker; each runs until the kill.
    pub fn spawn(&self, rng: &mut Rng) -> Vec<tokio::task::JoinHandle<()>> {
        let mut workers = Vec::new();
        for team in ["payments", "identity"] {
            let (load, rng) = (self.clone(), rng.fork());
            workers.push(tokio::spawn(async move { load.owner(team, rng).await }));
        }
        let (load, rng_a) = (self.clone(), rng.fork());
        workers.push(tokio::spawn(async move { load.approver(rng_a).await }));
        for _ in 0..2 {
            let (load, rng) = (self.clone(), rng.fork());
            workers.push(tokio::spawn(async move { load.evaluator(rng).await }));
        }
        let (load, rng_c) = (self.clone(), rng.fork());
        workers.push(tokio::spawn(async move { load.catalog(rng_c).await }));
        workers
    }

    // ---- owners

    async fn owner(self, team: &'static str, mut rng: Rng) {
        let mine: Vec<usize> = (0..org::ENTITIES)
            .filter(|i| org::team_of(*i) == team)
            .collect();
        while !self.stopped() {
            let i = mine[rng.below(mine.len() as u64) as usize];
            let done = if rng.chance(0.75) {
                self.request_exemption(team, i, &mut rng).await
            } else {
                self.request_tier_change(team, i, &mut rng).await
            };
            if !done {
                return;
            }
        }
    }

    async fn request_exemption(&self, team: &str, i: usize, rng: &mut Rng) -> bool {
        let entity = org::entity_id(i);
        let rule = org::EXEMPTABLE[rng.below(org::EXEMPTABLE.len() as u64) as usize];
        let mut body = json!({
            "entity": entity,
            "scorecard": org::SCORECARD,
            "reason": "crash test",
            // Within `exemptions.max_days` (365 by default).
            "until": (chrono::Utc::now() + chrono::Duration::days(300)).to_rfc3339(),
        });
        if let Some(rule) = rule {
            body["rule"] = json!(rule);
        }
        let Some(reply) = self
            .call("POST", "/v1/exemptions", org::owner_token(team), Some(body))
            .await
        else {
            self.ledger.lock().unwrap().maybe_exemptions += 1;
            return false;
        };
        assert_eq!(reply.status, 201, "request an exemption: {}", reply.text());
        let exemption: Exemption = serde_json::from_value(reply.json()).expect("an exemption");
        assert_eq!(exemption.status, ExemptionStatus::Pending);
        self.ledger.lock().unwrap().exemptions.insert(
            exemption.id.clone(),
            ExemptionRecord {
                status: ExemptionStatus::Pending,
                maybe: None,
                busy: false,
            },
        );
        self.acked();
        true
    }

    async fn request_tier_change(&self, team: &str, i: usize, rng: &mut Rng) -> bool {
        let entity = org::entity_id(i);
        let to = {
            let mut ledger = self.ledger.lock().unwrap();
            if !ledger.tier_free(&entity) {
                None
            } else {
                let current = ledger.tiers[&entity];
                let others: Vec<u8> = (1..=3).filter(|t| Some(*t) != current).collect();
                let to = others[rng.below(others.len() as u64) as usize];
                ledger.tier_creating.insert(entity.clone());
                Some(to)
            }
        };
        let Some(to) = to else {
            // Busy: ask for an exemption instead.
            return self.request_exemption(team, i, rng).await;
        };
        let body = json!({ "entity": entity, "to": to, "reason": "crash test" });
        let Some(reply) = self
            .call(
                "POST",
                "/v1/tier-requests",
                org::owner_token(team),
                Some(body),
            )
            .await
        else {
            self.ledger.lock().unwrap().maybe_tier_requests += 1;
            return false;
        };
        assert_eq!(reply.status, 201, "request a tier change: {}", reply.text());
        let request: TierRequest = serde_json::from_value(reply.json()).expect("a tier request");
        assert_eq!(request.status, TierRequestStatus::Pending);
        {
            let mut ledger = self.ledger.lock().unwrap();
            ledger.tier_creating.remove(&entity);
            ledger.tier_requests.insert(
                request.id.clone(),
                TierRecord {
                    entity,
                    to: Some(to),
                    status: TierRequestStatus::Pending,
                    maybe: None,
                    busy: false,
                },
            );
        }
        self.acked();
        true
    }

    // ---- the approver

    async fn approver(self, mut rng: Rng) {
        while !self.stopped() {
            let done = match self.pick_decision(&mut rng) {
                Some(Decision::Exemption(id, to)) => self.decide_exemption(&id, to).await,
                Some(Decision::Tier(id, approve)) => self.decide_tier(&id, approve).await,
                None => {
                    let i = rng.below(org::ENTITIES as u64) as usize;
                    self.refresh(i).await
                }
            };
            if !done {
                return;
            }
        }
    }

    fn pick_decision(&self, rng: &mut Rng) -> Option<Decision> {
        let mut ledger = self.ledger.lock().unwrap();
        let mut options: Vec<Decision> = Vec::new();
        for (id, e) in &ledger.exemptions {
            if e.busy || e.maybe.is_some() {
                continue;
            }
            match e.status {
                ExemptionStatus::Pending => {
                    let to = if rng.chance(0.6) {
                        ExemptionStatus::Approved
                    } else {
                        ExemptionStatus::Denied
                    };
                    options.push(Decision::Exemption(id.clone(), to));
                }
                ExemptionStatus::Approved if rng.chance(0.3) => {
                    options.push(Decision::Exemption(id.clone(), ExemptionStatus::Revoked));
                }
                _ => {}
            }
        }
        for (id, r) in &ledger.tier_requests {
            if r.status == TierRequestStatus::Pending && !r.busy && r.maybe.is_none() {
                options.push(Decision::Tier(id.clone(), rng.chance(0.6)));
            }
        }
        if options.is_empty() {
            return None;
        }
        let chosen = options.swap_remove(rng.below(options.len() as u64) as usize);
        match &chosen {
            Decision::Exemption(id, _) => ledger.exemptions.get_mut(id).unwrap().busy = true,
            Decision::Tier(id, _) => ledger.tier_requests.get_mut(id).unwrap().busy = true,
        }
        Some(chosen)
    }

    async fn decide_exemption(&self, id: &str, to: ExemptionStatus) -> bool {
        let verb = match to {
            ExemptionStatus::Approved => "approve",
            ExemptionStatus::Denied => "deny",
            _ => "revoke",
        };
        let path = format!("/v1/exemptions/{id}/{verb}");
        let Some(reply) = self.call("POST", &path, approver(), None).await else {
            self.ledger
                .lock()
                .unwrap()
                .exemptions
                .get_mut(id)
                .unwrap()
                .maybe = Some(to);
            return false;
        };
        // A refusal (409) would mean the daemon lost the state it acknowledged earlier.
        assert_eq!(reply.status, 200, "{verb} exemption {id}: {}", reply.text());
        let exemption: Exemption = serde_json::from_value(reply.json()).expect("an exemption");
        assert_eq!(exemption.status, to);
        {
            let mut ledger = self.ledger.lock().unwrap();
            let record = ledger.exemptions.get_mut(id).unwrap();
            record.status = to;
            record.busy = false;
        }
        self.acked();
        true
    }

    async fn decide_tier(&self, id: &str, approve: bool) -> bool {
        let verb = if approve { "approve" } else { "deny" };
        let to = if approve {
            TierRequestStatus::Approved
        } else {
            TierRequestStatus::Denied
        };
        let path = format!("/v1/tier-requests/{id}/{verb}");
        let Some(reply) = self.call("POST", &path, approver(), None).await else {
            self.ledger
                .lock()
                .unwrap()
                .tier_requests
                .get_mut(id)
                .unwrap()
                .maybe = Some(to);
            return false;
        };
        assert_eq!(
            reply.status,
            200,
            "{verb} tier request {id}: {}",
            reply.text()
        );
        let request: TierRequest = serde_json::from_value(reply.json()).expect("a tier request");
        assert_eq!(request.status, to);
        {
            let mut ledger = self.ledger.lock().unwrap();
            let record = ledger.tier_requests.get_mut(id).unwrap();
            record.status = to;
            record.busy = false;
            if approve {
                let (entity, tier) = (record.entity.clone(), record.to);
                ledger.tiers.insert(entity, tier);
            }
        }
        self.acked();
        true
    }

    // ---- evaluation passes

    async fn evaluator(self, mut rng: Rng) {
        while !self.stopped() {
            let i = rng.below(org::ENTITIES as u64) as usize;
            let done = if rng.chance(0.65) {
                self.server
                    .set_fact(&org::entity_id(i), rng.below(3) as u32);
                self.refresh(i).await
            } else {
                self.nudge(i).await
            };
            if !done {
                return;
            }
        }
    }

    async fn refresh(&self, i: usize) -> bool {
        let path = format!("/v1/entities/{}/refresh", org::entity_id(i));
        let Some(reply) = self.call("POST", &path, admin(), None).await else {
            return false;
        };
        assert_eq!(reply.status, 200, "refresh: {}", reply.text());
        self.acked();
        true
    }

    async fn nudge(&self, i: usize) -> bool {
        let entity = org::entity_id(i);
        let path = format!("/v1/entities/{entity}/nudge");
        let Some(reply) = self.call("POST", &path, admin(), None).await else {
            self.ledger
                .lock()
                .unwrap()
                .nudges
                .entry(entity)
                .or_default()
                .1 += 1;
            return false;
        };
        assert_eq!(reply.status, 200, "nudge: {}", reply.text());
        assert_eq!(
            reply.json()["channels"],
            json!(["team"]),
            "{}",
            reply.text()
        );
        self.ledger
            .lock()
            .unwrap()
            .nudges
            .entry(entity)
            .or_default()
            .0 += 1;
        self.acked();
        true
    }

    // ---- catalog edits

    async fn catalog(self, mut rng: Rng) {
        while !self.stopped() {
            {
                let mut ledger = self.ledger.lock().unwrap();
                let i = rng.below(org::ENTITIES as u64) as usize;
                ledger.runbooks[i] = !ledger.runbooks[i];
                org::write_catalog(&self.root, &ledger.runbooks);
            }
            let Some(reply) = self.call("POST", "/v1/reload", admin(), None).await else {
                return;
            };
            assert_eq!(reply.status, 200, "reload: {}", reply.text());
            let report = reply.json();
            assert_eq!(report["errors"], json!([]), "reload: {report}");
            self.acked();
        }
    }
}

enum Decision {
    Exemption(String, ExemptionStatus),
    Tier(String, bool),
}
