//! Routing: which configured channels receive an event.
//!
//! A route matches an event when each of its non-empty selectors matches (`events` by kind,
//! `tiers`, `teams` and `kinds` by the entity, `scorecards` by the event's scorecard or any of
//! its blocking rules' scorecards); an empty selector matches everything, and a selector that
//! needs an entity never matches an event without one. A matching route sends to its `channels`
//! and, with `team_channel = true`, to the channel of the event's team (`teams.<team>.channel`).
//! On top of the routes, `entity.degraded` and `entity.recovered` go to the tier policy's `alert`
//! channels of the entity's tier. The result is deduplicated, in first-seen order, and holds only
//! channels that exist in the configuration. This module never performs I/O.

use crate::config::Config;
use crate::config::RouteConfig;

use super::events::{Event, EventKind};

/// The channels that must receive `event`. `tier_alert` is the `alert` list of the entity's
/// tier spec (empty when it has none); it applies to `entity.degraded` / `entity.recovered` only.
pub fn channels_for(event: &Event, config: &Config, tier_alert: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |name: &str| {
        if config.channels.contains_key(name) && !out.iter().any(|c| c == name) {
            out.push(name.to_owned());
        } else if !config.channels.contains_key(name) {
            // Tier policies live in the standards, channels in readyd.toml: the two are validated
            // apart, so a tier may name a channel this daemon does not have.
            tracing::warn!(channel = name, event = %event.kind, "unknown channel; skipped");
        }
    };
    for route in config.routes.iter().filter(|r| route_matches(r, event)) {
        for channel in &route.channels {
            push(channel);
        }
        if route.team_channel
            && let Some(channel) = team_channel(config, event)
        {
            push(channel);
        }
    }
    if matches!(
        event.kind,
        EventKind::EntityDegraded | EventKind::EntityRecovered
    ) {
        for channel in tier_alert {
            push(channel);
        }
    }
    out
}

/// The configured channel of the event's team, if any.
pub fn team_channel<'c>(config: &'c Config, event: &Event) -> Option<&'c str> {
    let team = event.team.as_deref()?;
    config.teams.get(team)?.channel.as_deref()
}

/// Whether every non-empty selector of `route` matches `event`.
pub fn route_matches(route: &RouteConfig, event: &Event) -> bool {
    let entity = event.entity.as_ref();
    let events_ok =
        route.events.is_empty() || route.events.iter().any(|k| k == event.kind.as_str());
    let tiers_ok = route.tiers.is_empty()
        || entity
            .and_then(|e| e.tier)
            .is_some_and(|t| route.tiers.contains(&t));
    let teams_ok = route.teams.is_empty()
        || event
            .team
            .as_deref()
            .is_some_and(|t| route.teams.iter().any(|r| r == t));
    let kinds_ok = route.kinds.is_empty() || entity.is_some_and(|e| route.kinds.contains(&e.kind));
    let scorecards_ok = route.scorecards.is_empty()
        || event
            .scorecards()
            .any(|s| route.scorecards.iter().any(|r| r == s));
    events_ok && tiers_ok && teams_ok && kinds_ok && scorecards_ok
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Utc;

    use super::*;
    use crate::automation::events::{BlockingRule, EntitySummary};
    use crate::config::{ChannelConfig, ChannelKind, TeamConfig};
    use crate::model::RuleStatus;

    fn config() -> Config {
        let mut c = Config::default();
        for name in ["sre", "tracker", "pay-chan", "all"] {
            c.channels.insert(
                name.into(),
                ChannelConfig {
                    kind: ChannelKind::Webhook,
                    url: format!("http://127.0.0.1:1/{name}"),
                    secret: None,
                    secret_env: None,
                },
            );
        }
        c.teams = BTreeMap::from([(
            "payments".to_owned(),
            TeamConfig {
                channel: Some("pay-chan".into()),
            },
        )]);
        c
    }

    fn event(kind: EventKind, tier: Option<u8>, team: Option<&str>) -> Event {
        Event {
            id: "x".into(),
            kind,
            at: Utc::now(),
            entity: Some(EntitySummary {
                identifier: "pay".into(),
                title: "Pay".into(),
                kind: "service".into(),
                team: team.map(str::to_owned),
                tier,
            }),
            team: team.map(str::to_owned),
            scorecard: Some("prod".into()),
            rule: None,
            from_level: None,
            to_level: None,
            blocking: vec![BlockingRule {
                scorecard: "security".into(),
                rule: "r".into(),
                title: "R".into(),
                status: RuleStatus::Fail,
                message: None,
            }],
            message: String::new(),
            link: String::new(),
            data: serde_json::Value::Null,
        }
    }

    #[test]
    fn every_non_empty_selector_must_match() {
        let mut c = config();
        c.routes = vec![
            RouteConfig {
                events: vec!["entity.degraded".into()],
                tiers: vec![1],
                channels: vec!["sre".into()],
                ..Default::default()
            },
            RouteConfig {
                events: vec!["task.created".into()],
                teams: vec!["payments".into()],
                kinds: vec!["service".into()],
                channels: vec!["tracker".into()],
                ..Default::default()
            },
            RouteConfig {
                scorecards: vec!["security".into()],
                channels: vec!["all".into()],
                ..Default::default()
            },
        ];
        let degraded_t1 = event(EventKind::EntityDegraded, Some(1), Some("payments"));
        assert_eq!(channels_for(&degraded_t1, &c, &[]), ["sre", "all"]);
        let degraded_t2 = event(EventKind::EntityDegraded, Some(2), Some("payments"));
        assert_eq!(channels_for(&degraded_t2, &c, &[]), ["all"]);
        let untiered = event(EventKind::EntityDegraded, None, Some("payments"));
        assert_eq!(channels_for(&untiered, &c, &[]), ["all"]);
        let task = event(EventKind::TaskCreated, Some(3), Some("payments"));
        assert_eq!(channels_for(&task, &c, &[]), ["tracker", "all"]);
        let task_other_team = event(EventKind::TaskCreated, Some(3), Some("identity"));
        assert_eq!(channels_for(&task_other_team, &c, &[]), ["all"]);
        let mut no_entity = event(EventKind::InitiativeDeadlineApproaching, None, None);
        no_entity.entity = None;
        no_entity.blocking.clear();
        no_entity.scorecard = None;
        assert!(channels_for(&no_entity, &c, &[]).is_empty());
    }

    #[test]
    fn team_channel_tier_alerts_are_added_and_everything_is_deduplicated() {
        let mut c = config();
        c.routes = vec![
            RouteConfig {
                events: vec!["entity.degraded".into(), "entity.recovered".into()],
                team_channel: true,
                channels: vec!["sre".into()],
                ..Default::default()
            },
            RouteConfig {
                channels: vec!["sre".into()],
                ..Default::default()
            },
        ];
        let e = event(EventKind::EntityDegraded, Some(1), Some("payments"));
        let alert = ["sre".to_owned(), "tracker".to_owned(), "nope".to_owned()];
        assert_eq!(channels_for(&e, &c, &alert), ["sre", "pay-chan", "tracker"]);
        // Tier alerts only concern degradation and recovery.
        let f = event(EventKind::RuleFailed, Some(1), Some("payments"));
        assert_eq!(channels_for(&f, &c, &alert), ["sre"]);
        // A team without a channel adds nothing.
        let g = event(EventKind::EntityRecovered, Some(1), Some("identity"));
        assert_eq!(channels_for(&g, &c, &[]), ["sre"]);
    }
}
