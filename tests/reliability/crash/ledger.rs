//! What the daemon acknowledged: every exemption and tier request the test was answered 2xx for,
//! in the state that answer reported, and what a kill left uncertain (a request cut off by the
//! kill may or may not have been carried out).
//!
//! [`Ledger::check`] holds a daemon's view (the state file after a kill, the API after the
//! restart) against it: every acknowledged record is present in its acknowledged state, or in
//! the state the cut-off request asked for; a record the test never heard of can only come from
//! a cut-off request, and there are no more of them than such requests. [`Ledger::adopt`] then
//! takes the daemon's view as the new truth.

use std::collections::{BTreeMap, BTreeSet};

use readyd::model::{Exemption, ExemptionStatus, TierRequest, TierRequestStatus};

use super::org;

#[derive(Debug)]
pub struct ExemptionRecord {
    /// The state the last acknowledged answer reported.
    pub status: ExemptionStatus,
    /// The state a request cut off by the kill asked for.
    pub maybe: Option<ExemptionStatus>,
    /// A worker is deciding it.
    pub busy: bool,
}

#[derive(Debug)]
pub struct TierRecord {
    pub entity: String,
    pub to: Option<u8>,
    pub status: TierRequestStatus,
    pub maybe: Option<TierRequestStatus>,
    pub busy: bool,
}

#[derive(Debug, Default)]
pub struct Ledger {
    pub exemptions: BTreeMap<String, ExemptionRecord>,
    pub tier_requests: BTreeMap<String, TierRecord>,
    /// The effective tier of each entity, as acknowledged.
    pub tiers: BTreeMap<String, Option<u8>>,
    /// Entities with a tier request being created (or cut off while being created).
    pub tier_creating: BTreeSet<String>,
    /// Per entity: nudges acknowledged, and nudges cut off by a kill.
    pub nudges: BTreeMap<String, (usize, usize)>,
    /// Which entities have a runbook in the catalog file now.
    pub runbooks: Vec<bool>,
    // ---- this life
    /// Exemption requests cut off by the kill.
    pub maybe_exemptions: usize,
    /// Tier requests cut off by the kill.
    pub maybe_tier_requests: usize,
    /// Writes acknowledged.
    pub acked: usize,
    /// Requests the kill cut off (connected, no complete answer).
    pub cut_off: usize,
}

impl Ledger {
    pub fn new(runbooks: Vec<bool>) -> Ledger {
        Ledger {
            tiers: (0..org::ENTITIES)
                .map(|i| (org::entity_id(i), Some(org::catalog_tier(i))))
                .collect(),
            runbooks,
            ..Ledger::default()
        }
    }

    /// Whether a new tier request for `entity` may be made (none pending or uncertain).
    pub fn tier_free(&self, entity: &str) -> bool {
        !self.tier_creating.contains(entity)
            && !self.tier_requests.values().any(|r| {
                r.entity == entity
                    && (r.status == TierRequestStatus::Pending || r.maybe.is_some() || r.busy)
            })
    }

    /// Hold `exemptions`, `requests` and (when given) the effective `tiers` that daemon state
    /// `place` shows against what was acknowledged. Panics with the difference.
    pub fn check(
        &self,
        place: &str,
        exemptions: &[Exemption],
        requests: &[TierRequest],
        tiers: Option<&BTreeMap<String, Option<u8>>>,
    ) {
        let shown: BTreeMap<&str, &Exemption> =
            exemptions.iter().map(|e| (e.id.as_str(), e)).collect();
        for (id, record) in &self.exemptions {
            let exemption = shown.get(id.as_str()).unwrap_or_else(|| {
                panic!(
                    "{place}: acknowledged exemption {id} ({:?}) is missing",
                    record.status
                )
            });
            assert!(
                exemption.status == record.status || Some(exemption.status) == record.maybe,
                "{place}: exemption {id} is {:?}; acknowledged {:?} (a cut-off request asked \
                 for {:?})",
                exemption.status,
                record.status,
                record.maybe
            );
        }
        let unknown: Vec<&&Exemption> = shown
            .iter()
            .filter(|(id, _)| !self.exemptions.contains_key(**id))
            .map(|(_, e)| e)
            .collect();
        assert!(
            unknown.len() <= self.maybe_exemptions,
            "{place}: {} exemptions nobody was answered for, but only {} requests were cut off: \
             {unknown:?}",
            unknown.len(),
            self.maybe_exemptions
        );
        for e in unknown {
            assert_eq!(
                e.status,
                ExemptionStatus::Pending,
                "{place}: an exemption whose creation was cut off cannot have been decided: {e:?}"
            );
        }
        let shown: BTreeMap<&str, &TierRequest> =
            requests.iter().map(|r| (r.id.as_str(), r)).collect();
        for (id, record) in &self.tier_requests {
            let request = shown.get(id.as_str()).unwrap_or_else(|| {
                panic!(
                    "{place}: acknowledged tier request {id} ({:?}) is missing",
                    record.status
                )
            });
            assert!(
                request.status == record.status || Some(request.status) == record.maybe,
                "{place}: tier request {id} is {:?}; acknowledged {:?} (a cut-off request asked \
                 for {:?})",
                request.status,
                record.status,
                record.maybe
            );
        }
        let unknown: Vec<&&TierRequest> = shown
            .iter()
            .filter(|(id, _)| !self.tier_requests.contains_key(**id))
            .map(|(_, r)| r)
            .collect();
        assert!(
            unknown.len() <= self.maybe_tier_requests,
            "{place}: {} tier requests nobody was answered for, but only {} requests were cut \
             off: {unknown:?}",
            unknown.len(),
            self.maybe_tier_requests
        );
        for r in unknown {
            assert_eq!(r.status, TierRequestStatus::Pending, "{place}: {r:?}");
        }
        if let Some(tiers) = tiers {
            for (entity, acked) in &self.tiers {
                let tier = tiers
                    .get(entity)
                    .unwrap_or_else(|| panic!("{place}: entity {entity} is missing"));
                let cut_off_approval = self.tier_requests.values().any(|r| {
                    &r.entity == entity
                        && r.maybe == Some(TierRequestStatus::Approved)
                        && r.to == *tier
                });
                assert!(
                    tier == acked || cut_off_approval,
                    "{place}: {entity} is tier {tier:?}; the approvals acknowledged make it \
                     {acked:?}"
                );
            }
        }
    }

    /// Take the daemon's view as the truth of the next life, and reset the life's counters.
    pub fn adopt(
        &mut self,
        exemptions: &[Exemption],
        requests: &[TierRequest],
        tiers: &BTreeMap<String, Option<u8>>,
    ) {
        for e in exemptions {
            let record = self
                .exemptions
                .entry(e.id.clone())
                .or_insert_with(|| ExemptionRecord {
                    status: e.status,
                    maybe: None,
                    busy: false,
                });
            record.status = e.status;
            record.maybe = None;
            record.busy = false;
        }
        for r in requests {
            let record = self
                .tier_requests
                .entry(r.id.clone())
                .or_insert_with(|| TierRecord {
                    entity: r.entity.clone(),
                    to: r.to,
                    status: r.status,
                    maybe: None,
                    busy: false,
                });
            record.status = r.status;
            record.maybe = None;
            record.busy = false;
        }
        self.tiers = tiers.clone();
        self.tier_creating.clear();
        self.maybe_exemptions = 0;
        self.maybe_tier_requests = 0;
        self.acked = 0;
        self.cut_off = 0;
    }
}
