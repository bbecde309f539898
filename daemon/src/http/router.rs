//! The route table: every endpoint readyd serves, once, with its method, path pattern, required
//! [`Permission`], accepted query parameters, body and answer.
//!
//! [`ROUTES`] is the single source that request matching ([`resolve`]), the OpenAPI document
//! (`http::openapi`) and the route × role integration test all read, so an endpoint cannot be
//! served without being documented or documented without being served. Matching is a plain walk
//! over path segments: the table is small and the walk allocates only the captured parameters.
//! This module never calls the engine.

use http::Method;

use super::errors::ApiError;
use super::query::{ParamKind, QueryParam};

/// Who may call a route. The full table (role × class) is in the `http` module's documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// No token needed: probes, metrics, the API description and the dashboard's static files.
    Public,
    /// Every token; anonymous callers when `anonymous_read` is on.
    Read,
    /// The deploy gate. Granted like [`Permission::Read`] (DESIGN.md: `ci` = read + gate); it is
    /// its own class so that the gate can be narrowed without touching the routes.
    Gate,
    /// `owner:<team>` and `admin`: exemption and tier requests, locks, refresh, nudge. The engine
    /// checks that an owner acts on its own team's entities.
    OwnerAction,
    /// `approver` and `admin`: approve, deny or revoke exemptions and tier requests.
    Decide,
    /// `admin` only: catalog writes and reload.
    Admin,
}

impl Permission {
    /// The name used in the OpenAPI document (`x-readyd-permission`) and the docs.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Public => "public",
            Permission::Read => "read",
            Permission::Gate => "gate",
            Permission::OwnerAction => "owner-action",
            Permission::Decide => "decide",
            Permission::Admin => "admin",
        }
    }
}

/// What a route does; [`super::handlers::dispatch`] maps each to engine calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    ListEntities,
    GetEntity,
    PutEntity,
    DeleteEntity,
    EntityScores,
    EntityFacts,
    EntityHistory,
    Refresh,
    Nudge,
    Lock,
    Unlock,
    ListScorecards,
    GetScorecard,
    Scores,
    Gate,
    RequestExemption,
    ListExemptions,
    GetExemption,
    ApproveExemption,
    DenyExemption,
    RevokeExemption,
    RequestTierChange,
    ListTierRequests,
    ApproveTierRequest,
    DenyTierRequest,
    ListTasks,
    ListInitiatives,
    GetInitiative,
    DeadLetters,
    Status,
    Reload,
    Livez,
    Readyz,
    Metrics,
    OpenApi,
    Dashboard,
    Asset,
}

/// The request body a route reads. Names refer to schemas of the OpenAPI document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodySpec {
    /// The route takes no body; a non-empty one is refused (400).
    None,
    /// A JSON body of this schema is required.
    Required(&'static str),
    /// A JSON body of this schema may be sent; an empty body means all fields default.
    Optional(&'static str),
}

/// The successful answer of a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// JSON of this schema.
    One(u16, &'static str),
    /// A JSON array of this schema.
    List(u16, &'static str),
    /// No body (204).
    Empty,
    /// Other media types (metrics text, HTML, dashboard assets).
    Media(&'static [&'static str]),
}

/// One row of the route table.
#[derive(Debug)]
pub struct Route {
    pub method: Method,
    /// `/v1/entities/{id}`; `{name}` captures one non-empty path segment. Also the metrics label.
    pub pattern: &'static str,
    pub permission: Permission,
    pub endpoint: Endpoint,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// The only query parameters accepted; any other is refused (400).
    pub query: &'static [QueryParam],
    pub body: BodySpec,
    pub answer: Answer,
}

const fn param(name: &'static str, kind: ParamKind, description: &'static str) -> QueryParam {
    QueryParam {
        name,
        kind,
        description,
    }
}

const NO_QUERY: &[QueryParam] = &[];

/// Every route readyd serves.
pub static ROUTES: &[Route] = &[
    // ---- catalog
    Route {
        method: Method::GET,
        pattern: "/v1/entities",
        permission: Permission::Read,
        endpoint: Endpoint::ListEntities,
        summary: "List catalog entities",
        query: &[
            param("kind", ParamKind::Text, "Only entities of this kind"),
            param("team", ParamKind::Text, "Only entities of this team"),
            param("tier", ParamKind::Tier, "Only entities of this tier"),
        ],
        body: BodySpec::None,
        answer: Answer::List(200, "Entity"),
    },
    Route {
        method: Method::GET,
        pattern: "/v1/entities/{id}",
        permission: Permission::Read,
        endpoint: Endpoint::GetEntity,
        summary: "One entity",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::One(200, "Entity"),
    },
    Route {
        method: Method::PUT,
        pattern: "/v1/entities/{id}",
        permission: Permission::Admin,
        endpoint: Endpoint::PutEntity,
        summary: "Create or replace an entity through the API",
        query: NO_QUERY,
        body: BodySpec::Required("EntityInput"),
        answer: Answer::One(200, "Entity"),
    },
    Route {
        method: Method::DELETE,
        pattern: "/v1/entities/{id}",
        permission: Permission::Admin,
        endpoint: Endpoint::DeleteEntity,
        summary: "Delete an entity created through the API, with its facts and results",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::Empty,
    },
    Route {
        method: Method::GET,
        pattern: "/v1/entities/{id}/scores",
        permission: Permission::Read,
        endpoint: Endpoint::EntityScores,
        summary: "The entity's result on every scorecard that applies to it",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::List(200, "ScorecardResult"),
    },
    Route {
        method: Method::GET,
        pattern: "/v1/entities/{id}/facts",
        permission: Permission::Read,
        endpoint: Endpoint::EntityFacts,
        summary: "The latest facts of the entity, by data source",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::One(200, "EntityFacts"),
    },
    Route {
        method: Method::GET,
        pattern: "/v1/entities/{id}/history",
        permission: Permission::Read,
        endpoint: Endpoint::EntityHistory,
        summary: "The entity's level changes",
        query: &[param(
            "scorecard",
            ParamKind::Text,
            "Only changes on this scorecard",
        )],
        body: BodySpec::None,
        answer: Answer::List(200, "LevelChange"),
    },
    Route {
        method: Method::POST,
        pattern: "/v1/entities/{id}/refresh",
        permission: Permission::OwnerAction,
        endpoint: Endpoint::Refresh,
        summary: "Collect the entity's facts now and re-evaluate it",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::One(200, "RefreshAnswer"),
    },
    Route {
        method: Method::POST,
        pattern: "/v1/entities/{id}/nudge",
        permission: Permission::OwnerAction,
        endpoint: Endpoint::Nudge,
        summary: "Send the owning team a summary of what the entity misses",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::One(200, "NudgeAnswer"),
    },
    Route {
        method: Method::POST,
        pattern: "/v1/entities/{id}/lock",
        permission: Permission::OwnerAction,
        endpoint: Endpoint::Lock,
        summary: "Lock deploys of the entity (the gate refuses while it holds)",
        query: NO_QUERY,
        body: BodySpec::Required("LockInput"),
        answer: Answer::One(200, "Lock"),
    },
    Route {
        method: Method::POST,
        pattern: "/v1/entities/{id}/unlock",
        permission: Permission::OwnerAction,
        endpoint: Endpoint::Unlock,
        summary: "Lift the entity's deploy lock",
        query: NO_QUERY,
        body: BodySpec::Optional("DecisionInput"),
        answer: Answer::Empty,
    },
    // ---- scores
    Route {
        method: Method::GET,
        pattern: "/v1/scorecards",
        permission: Permission::Read,
        endpoint: Endpoint::ListScorecards,
        summary: "Every scorecard with its level distribution",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::List(200, "Scorecard"),
    },
    Route {
        method: Method::GET,
        pattern: "/v1/scorecards/{id}",
        permission: Permission::Read,
        endpoint: Endpoint::GetScorecard,
        summary: "One scorecard with its level distribution and rules",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::One(200, "Scorecard"),
    },
    Route {
        method: Method::GET,
        pattern: "/v1/scores",
        permission: Permission::Read,
        endpoint: Endpoint::Scores,
        summary: "Results across entities",
        query: &[
            param("scorecard", ParamKind::Text, "Only this scorecard"),
            param("team", ParamKind::Text, "Only entities of this team"),
            param("tier", ParamKind::Tier, "Only entities of this tier"),
            param(
                "below",
                ParamKind::Text,
                "Only entities below this level (title) on the scorecard",
            ),
        ],
        body: BodySpec::None,
        answer: Answer::List(200, "ScorecardResult"),
    },
    // ---- gate
    Route {
        method: Method::GET,
        pattern: "/v1/gate/{id}",
        permission: Permission::Gate,
        endpoint: Endpoint::Gate,
        summary: "May the entity be deployed?",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::One(200, "GateAnswer"),
    },
    // ---- exemptions
    Route {
        method: Method::POST,
        pattern: "/v1/exemptions",
        permission: Permission::OwnerAction,
        endpoint: Endpoint::RequestExemption,
        summary: "Request an exemption (pending until an approver decides)",
        query: NO_QUERY,
        body: BodySpec::Required("ExemptionInput"),
        answer: Answer::One(201, "Exemption"),
    },
    Route {
        method: Method::GET,
        pattern: "/v1/exemptions",
        permission: Permission::Read,
        endpoint: Endpoint::ListExemptions,
        summary: "List exemptions",
        query: &[param(
            "status",
            ParamKind::ExemptionStatus,
            "Only exemptions in this state",
        )],
        body: BodySpec::None,
        answer: Answer::List(200, "Exemption"),
    },
    Route {
        method: Method::GET,
        pattern: "/v1/exemptions/{id}",
        permission: Permission::Read,
        endpoint: Endpoint::GetExemption,
        summary: "One exemption with its audit log",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::One(200, "Exemption"),
    },
    Route {
        method: Method::POST,
        pattern: "/v1/exemptions/{id}/approve",
        permission: Permission::Decide,
        endpoint: Endpoint::ApproveExemption,
        summary: "Approve a pending exemption (not one's own)",
        query: NO_QUERY,
        body: BodySpec::Optional("DecisionInput"),
        answer: Answer::One(200, "Exemption"),
    },
    Route {
        method: Method::POST,
        pattern: "/v1/exemptions/{id}/deny",
        permission: Permission::Decide,
        endpoint: Endpoint::DenyExemption,
        summary: "Deny a pending exemption",
        query: NO_QUERY,
        body: BodySpec::Optional("DecisionInput"),
        answer: Answer::One(200, "Exemption"),
    },
    Route {
        method: Method::POST,
        pattern: "/v1/exemptions/{id}/revoke",
        permission: Permission::Decide,
        endpoint: Endpoint::RevokeExemption,
        summary: "Revoke an approved exemption",
        query: NO_QUERY,
        body: BodySpec::Optional("DecisionInput"),
        answer: Answer::One(200, "Exemption"),
    },
    // ---- tier requests
    Route {
        method: Method::POST,
        pattern: "/v1/tier-requests",
        permission: Permission::OwnerAction,
        endpoint: Endpoint::RequestTierChange,
        summary: "Request a tier change (pending until an approver decides)",
        query: NO_QUERY,
        body: BodySpec::Required("TierRequestInput"),
        answer: Answer::One(201, "TierRequest"),
    },
    Route {
        method: Method::GET,
        pattern: "/v1/tier-requests",
        permission: Permission::Read,
        endpoint: Endpoint::ListTierRequests,
        summary: "List tier change requests",
        query: &[param(
            "status",
            ParamKind::TierRequestStatus,
            "Only requests in this state",
        )],
        body: BodySpec::None,
        answer: Answer::List(200, "TierRequest"),
    },
    Route {
        method: Method::POST,
        pattern: "/v1/tier-requests/{id}/approve",
        permission: Permission::Decide,
        endpoint: Endpoint::ApproveTierRequest,
        summary: "Approve a pending tier change (not one's own); the new tier applies at once",
        query: NO_QUERY,
        body: BodySpec::Optional("DecisionInput"),
        answer: Answer::One(200, "TierRequest"),
    },
    Route {
        method: Method::POST,
        pattern: "/v1/tier-requests/{id}/deny",
        permission: Permission::Decide,
        endpoint: Endpoint::DenyTierRequest,
        summary: "Deny a pending tier change",
        query: NO_QUERY,
        body: BodySpec::Optional("DecisionInput"),
        answer: Answer::One(200, "TierRequest"),
    },
    // ---- work
    Route {
        method: Method::GET,
        pattern: "/v1/tasks",
        permission: Permission::Read,
        endpoint: Endpoint::ListTasks,
        summary: "Tasks created by failing required rules",
        query: &[
            param("team", ParamKind::Text, "Only tasks of this team"),
            param("entity", ParamKind::Text, "Only tasks of this entity"),
            param("status", ParamKind::TaskStatus, "Only tasks in this state"),
        ],
        body: BodySpec::None,
        answer: Answer::List(200, "Task"),
    },
    Route {
        method: Method::GET,
        pattern: "/v1/initiatives",
        permission: Permission::Read,
        endpoint: Endpoint::ListInitiatives,
        summary: "Every initiative with its progress",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::List(200, "Initiative"),
    },
    Route {
        method: Method::GET,
        pattern: "/v1/initiatives/{id}",
        permission: Permission::Read,
        endpoint: Endpoint::GetInitiative,
        summary: "One initiative: progress overall and per team, entities not meeting it yet",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::One(200, "Initiative"),
    },
    // ---- operations
    Route {
        method: Method::GET,
        pattern: "/v1/dead-letters",
        permission: Permission::Read,
        endpoint: Endpoint::DeadLetters,
        summary: "Notifications that could not be delivered",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::List(200, "DeadLetter"),
    },
    Route {
        method: Method::GET,
        pattern: "/v1/status",
        permission: Permission::Read,
        endpoint: Endpoint::Status,
        summary: "Plugins, standards and catalog revisions, last errors",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::One(200, "Status"),
    },
    Route {
        method: Method::POST,
        pattern: "/v1/reload",
        permission: Permission::Admin,
        endpoint: Endpoint::Reload,
        summary: "Rescan the plugins, standards and catalog directories",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::One(200, "ReloadAnswer"),
    },
    Route {
        method: Method::GET,
        pattern: "/livez",
        permission: Permission::Public,
        endpoint: Endpoint::Livez,
        summary: "Liveness: the process answers",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::One(200, "Liveness"),
    },
    Route {
        method: Method::GET,
        pattern: "/readyz",
        permission: Permission::Public,
        endpoint: Endpoint::Readyz,
        summary: "Readiness: 503 until the first evaluation is committed",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::One(200, "Readiness"),
    },
    Route {
        method: Method::GET,
        pattern: "/metrics",
        permission: Permission::Public,
        endpoint: Endpoint::Metrics,
        summary: "Prometheus metrics (OpenMetrics text)",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::Media(&[super::OPENMETRICS_CONTENT_TYPE]),
    },
    Route {
        method: Method::GET,
        pattern: "/openapi.json",
        permission: Permission::Public,
        endpoint: Endpoint::OpenApi,
        summary: "This document",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::Media(&["application/json"]),
    },
    Route {
        method: Method::GET,
        pattern: "/",
        permission: Permission::Public,
        endpoint: Endpoint::Dashboard,
        summary: "The dashboard (it reads the /v1 API with the caller's credentials)",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::Media(&["text/html"]),
    },
    Route {
        method: Method::GET,
        pattern: "/assets/{file}",
        permission: Permission::Public,
        endpoint: Endpoint::Asset,
        summary: "The dashboard's static files",
        query: NO_QUERY,
        body: BodySpec::None,
        answer: Answer::Media(&["text/css", "text/javascript", "image/svg+xml"]),
    },
];

/// The path parameters captured by a match, in pattern order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PathParams(Vec<(&'static str, String)>);

impl PathParams {
    /// The value of `{name}`. Every handler asks only for names its own pattern has, so a
    /// missing one is a bug in the table, reported as a 500 rather than a panic.
    pub fn get(&self, name: &str) -> Result<&str, ApiError> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| ApiError::Internal(format!("route has no path parameter `{name}`")))
    }
}

/// What the table says about a method and a path.
#[derive(Debug)]
pub enum Resolution {
    Found(&'static Route, PathParams),
    /// The path exists with other methods (for the `Allow` header).
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

/// Find the route serving `method` on `path` (the raw, percent-encoded path of the URI).
pub fn resolve(method: &Method, path: &str) -> Resolution {
    let mut allowed = Vec::new();
    for route in ROUTES {
        if let Some(params) = match_pattern(route.pattern, path) {
            if route.method == *method {
                return Resolution::Found(route, params);
            }
            allowed.push(route.method.clone());
        }
    }
    if allowed.is_empty() {
        Resolution::NotFound
    } else {
        Resolution::MethodNotAllowed(allowed)
    }
}

/// Match one pattern against a path; `{name}` takes one non-empty, percent-decoded segment.
fn match_pattern(pattern: &'static str, path: &str) -> Option<PathParams> {
    let mut params = PathParams::default();
    let mut segments = path.split('/');
    for expected in pattern.split('/') {
        let segment = segments.next()?;
        match expected.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) => {
                if segment.is_empty() {
                    return None;
                }
                // A segment that does not decode to UTF-8 cannot name anything readyd holds.
                let value = percent_encoding::percent_decode_str(segment)
                    .decode_utf8()
                    .ok()?;
                params.0.push((name, value.into_owned()));
            }
            None if expected == segment => {}
            None => return None,
        }
    }
    match segments.next() {
        None => Some(params),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn found(method: Method, path: &str) -> (&'static str, PathParams) {
        match resolve(&method, path) {
            Resolution::Found(route, params) => (route.pattern, params),
            other => panic!("{method} {path}: {other:?}"),
        }
    }

    #[test]
    fn resolves_patterns_and_captures_parameters() {
        let (pattern, params) = found(Method::GET, "/v1/entities/payments-api/scores");
        assert_eq!(pattern, "/v1/entities/{id}/scores");
        assert_eq!(params.get("id").unwrap(), "payments-api");
        assert!(params.get("other").is_err());
        let (pattern, params) = found(Method::POST, "/v1/exemptions/ex%2D1/approve");
        assert_eq!(pattern, "/v1/exemptions/{id}/approve");
        assert_eq!(params.get("id").unwrap(), "ex-1");
        assert_eq!(found(Method::GET, "/").0, "/");
        assert_eq!(found(Method::GET, "/v1/entities").0, "/v1/entities");
    }

    #[test]
    fn unknown_paths_and_methods() {
        for path in [
            "/v1/entities/",
            "/v1/entities//scores",
            "/v1/entities/a/b",
            "/v1",
            "",
            "/nope",
            "/v1/entities/%FF",
        ] {
            assert!(
                matches!(resolve(&Method::GET, path), Resolution::NotFound),
                "{path}"
            );
        }
        match resolve(&Method::PATCH, "/v1/entities/x") {
            Resolution::MethodNotAllowed(allow) => {
                assert_eq!(allow, vec![Method::GET, Method::PUT, Method::DELETE]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn table_is_unambiguous() {
        let mut seen = HashSet::new();
        for route in ROUTES {
            assert!(
                seen.insert((route.method.clone(), route.pattern)),
                "{} {} twice",
                route.method,
                route.pattern
            );
            assert!(route.pattern.starts_with('/'), "{}", route.pattern);
            // A concrete path built from the pattern must resolve to this very route, so that no
            // earlier row shadows it.
            let concrete = route
                .pattern
                .split('/')
                .map(|s| if s.starts_with('{') { "x" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let (pattern, _) = found(route.method.clone(), &concrete);
            assert_eq!(pattern, route.pattern);
            // Bodies only where a method carries one.
            if route.method == Method::GET {
                assert_eq!(route.body, BodySpec::None, "{}", route.pattern);
            }
        }
        let endpoints: HashSet<_> = ROUTES.iter().map(|r| r.endpoint).collect();
        assert_eq!(endpoints.len(), ROUTES.len(), "an endpoint is routed twice");
    }
}
