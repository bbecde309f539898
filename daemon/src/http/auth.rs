//! Who is calling, and may they call this route.
//!
//! [`Authenticator`] holds the SHA-256 digest of every configured token (tokens given in plain are
//! hashed once at start). A presented bearer token is hashed and compared against every digest
//! with [`subtle::ConstantTimeEq`], without stopping at the first match, so the answer time says
//! nothing about how close a guess was. [`Authenticator::authorize`] then checks the caller's role
//! against the route's [`Permission`] and yields the [`Actor`] the engine records. This module
//! never keeps a plain token after start and never logs one.

use http::HeaderMap;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::errors::ApiError;
use super::router::Permission;
use crate::config::{Role, TokenConfig};
use crate::engine::Actor;

/// Why the token configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("token `{name}`: {message}")]
    Token { name: String, message: String },
}

/// The name recorded for calls without a token.
pub const ANONYMOUS: &str = "anonymous";

struct KnownToken {
    name: String,
    role: Role,
    digest: [u8; 32],
}

/// The configured tokens, as digests.
pub struct Authenticator {
    tokens: Vec<KnownToken>,
    anonymous_read: bool,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.len())
            .field("anonymous_read", &self.anonymous_read)
            .finish()
    }
}

/// Who a request comes from, before the route is considered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No `Authorization` header.
    Anonymous,
    /// A configured token.
    Token(Actor),
}

impl Authenticator {
    /// Digest the configured tokens. `anonymous_read` lets calls without a token read.
    pub fn new(tokens: &[TokenConfig], anonymous_read: bool) -> Result<Authenticator, AuthError> {
        let fail = |name: &str, message: String| AuthError::Token {
            name: name.to_owned(),
            message,
        };
        let mut known = Vec::with_capacity(tokens.len());
        for token in tokens {
            let role = Role::parse(&token.role).map_err(|m| fail(&token.name, m))?;
            let digest = match (&token.token, &token.sha256) {
                (Some(plain), None) => Sha256::digest(plain.as_bytes()).into(),
                (None, Some(hex_digest)) => {
                    let bytes = hex::decode(hex_digest)
                        .map_err(|e| fail(&token.name, format!("sha256: {e}")))?;
                    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                        fail(
                            &token.name,
                            "sha256 must be 32 bytes (64 hex digits)".into(),
                        )
                    })?
                }
                _ => {
                    return Err(fail(
                        &token.name,
                        "give exactly one of `token` and `sha256`".into(),
                    ));
                }
            };
            known.push(KnownToken {
                name: token.name.clone(),
                role,
                digest,
            });
        }
        Ok(Authenticator {
            tokens: known,
            anonymous_read,
        })
    }

    /// Identify the caller from the `Authorization` header. A header that is present but not a
    /// known bearer token is refused outright, whatever the route: a wrong token is a mistake
    /// the caller must hear about, not a silent downgrade to anonymous.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Ok(Caller::Anonymous);
        };
        let invalid = |message: &str| ApiError::Unauthenticated {
            message: message.to_owned(),
            invalid_token: true,
        };
        if values.next().is_some() {
            return Err(invalid("more than one Authorization header"));
        }
        let value = value
            .to_str()
            .map_err(|_| invalid("the Authorization header is not ASCII"))?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(invalid("expected `Authorization: Bearer <token>`")),
        };
        if token.is_empty() {
            return Err(invalid("empty bearer token"));
        }
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut matched = None;
        // Every digest is compared; only the index of a match is remembered.
        for (index, known) in self.tokens.iter().enumerate() {
            if bool::from(known.digest.ct_eq(&presented)) && matched.is_none() {
                matched = Some(index);
            }
        }
        match matched {
            Some(index) => Ok(Caller::Token(Actor {
                name: self.tokens[index].name.clone(),
                role: self.tokens[index].role.clone(),
            })),
            None => Err(invalid("unknown token")),
        }
    }

    /// Whether the caller may use a route of `permission`; the actor the engine records.
    /// Anonymous callers read as a `viewer` named [`ANONYMOUS`] when anonymous reads are on.
    pub fn authorize(&self, permission: Permission, caller: Caller) -> Result<Actor, ApiError> {
        let actor = match caller {
            Caller::Token(actor) => actor,
            Caller::Anonymous => {
                let anonymous = Actor {
                    name: ANONYMOUS.to_owned(),
                    role: Role::Viewer,
                };
                let allowed = match permission {
                    Permission::Public => true,
                    Permission::Read | Permission::Gate => self.anonymous_read,
                    Permission::OwnerAction | Permission::Decide | Permission::Admin => false,
                };
                return if allowed {
                    Ok(anonymous)
                } else {
                    Err(ApiError::Unauthenticated {
                        message: "this endpoint needs a bearer token".into(),
                        invalid_token: false,
                    })
                };
            }
        };
        if role_allows(&actor.role, permission) {
            Ok(actor)
        } else {
            Err(ApiError::Forbidden(format!(
                "role `{}` may not do this ({} needed)",
                role_name(&actor.role),
                permission.as_str()
            )))
        }
    }
}

/// The permission table for token holders (see the `http` module's documentation).
pub fn role_allows(role: &Role, permission: Permission) -> bool {
    match permission {
        Permission::Public | Permission::Read | Permission::Gate => true,
        Permission::OwnerAction => matches!(role, Role::Owner(_) | Role::Admin),
        Permission::Decide => matches!(role, Role::Approver | Role::Admin),
        Permission::Admin => matches!(role, Role::Admin),
    }
}

fn role_name(role: &Role) -> String {
    match role {
        Role::Viewer => "viewer".into(),
        Role::Ci => "ci".into(),
        Role::Owner(team) => format!("owner:{team}"),
        Role::Approver => "approver".into(),
        Role::Admin => "admin".into(),
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn token(name: &str, role: &str, plain: &str) -> TokenConfig {
        TokenConfig {
            name: name.into(),
            role: role.into(),
            token: Some(plain.into()),
            sha256: None,
        }
    }

    fn authenticator(anonymous_read: bool) -> Authenticator {
        let hashed = TokenConfig {
            name: "hashed".into(),
            role: "approver".into(),
            token: None,
            sha256: Some(hex::encode(Sha256::digest(b"hashed-secret"))),
        };
        Authenticator::new(
            &[
                token("v", "viewer", "viewer-secret"),
                token("o", "owner:payments", "owner-secret"),
                token("root", "admin", "admin-secret"),
                hashed,
            ],
            anonymous_read,
        )
        .unwrap()
    }

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn unauthenticated(result: Result<Caller, ApiError>) -> bool {
        matches!(
            result,
            Err(ApiError::Unauthenticated {
                invalid_token: true,
                ..
            })
        )
    }

    #[test]
    fn plain_and_hashed_tokens_identify_their_holder() {
        let auth = authenticator(false);
        assert_eq!(
            auth.authenticate(&with_auth("Bearer owner-secret"))
                .unwrap(),
            Caller::Token(Actor {
                name: "o".into(),
                role: Role::Owner("payments".into())
            })
        );
        assert_eq!(
            auth.authenticate(&with_auth("bearer hashed-secret"))
                .unwrap(),
            Caller::Token(Actor {
                name: "hashed".into(),
                role: Role::Approver
            })
        );
        assert_eq!(
            auth.authenticate(&HeaderMap::new()).unwrap(),
            Caller::Anonymous
        );
    }

    #[test]
    fn bad_headers_are_refused() {
        let auth = authenticator(true);
        for value in [
            "Bearer nope",
            "Bearer ",
            "Basic dmlld2VyLXNlY3JldA==",
            "viewer-secret",
            "Bearer viewer-secre",
        ] {
            assert!(
                unauthenticated(auth.authenticate(&with_auth(value))),
                "{value}"
            );
        }
        let mut twice = with_auth("Bearer viewer-secret");
        twice.append(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer admin-secret"),
        );
        assert!(unauthenticated(auth.authenticate(&twice)));
    }

    #[test]
    fn roles_against_permissions() {
        use Permission::*;
        let all = [Public, Read, Gate, OwnerAction, Decide, Admin];
        let table: [(Role, &[Permission]); 5] = [
            (Role::Viewer, &[Public, Read, Gate]),
            (Role::Ci, &[Public, Read, Gate]),
            (Role::Owner("t".into()), &[Public, Read, Gate, OwnerAction]),
            (Role::Approver, &[Public, Read, Gate, Decide]),
            (Role::Admin, &all),
        ];
        for (role, allowed) in table {
            for permission in all {
                assert_eq!(
                    role_allows(&role, permission),
                    allowed.contains(&permission),
                    "{role:?} {permission:?}"
                );
            }
        }
    }

    #[test]
    fn anonymous_callers() {
        let open = authenticator(true);
        let closed = authenticator(false);
        for permission in [Permission::Read, Permission::Gate] {
            let actor = open.authorize(permission, Caller::Anonymous).unwrap();
            assert_eq!(actor.name, ANONYMOUS);
            assert_eq!(actor.role, Role::Viewer);
            assert!(matches!(
                closed.authorize(permission, Caller::Anonymous),
                Err(ApiError::Unauthenticated {
                    invalid_token: false,
                    ..
                })
            ));
        }
        assert!(
            closed
                .authorize(Permission::Public, Caller::Anonymous)
                .is_ok()
        );
        for permission in [
            Permission::OwnerAction,
            Permission::Decide,
            Permission::Admin,
        ] {
            assert!(matches!(
                open.authorize(permission, Caller::Anonymous),
                Err(ApiError::Unauthenticated { .. })
            ));
        }
        let viewer = Caller::Token(Actor {
            name: "v".into(),
            role: Role::Viewer,
        });
        match open.authorize(Permission::Admin, viewer) {
            Err(ApiError::Forbidden(m)) => assert!(m.contains("viewer"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_configuration_is_named() {
        let bad = TokenConfig {
            name: "x".into(),
            role: "admin".into(),
            token: None,
            sha256: Some("zz".repeat(32)),
        };
        let err = Authenticator::new(&[bad], false).unwrap_err().to_string();
        assert!(err.contains("token `x`"), "{err}");
    }
}
