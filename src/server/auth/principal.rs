//! Who is calling: resolved from a bearer token or the session cookie, with memberships.

use super::{secrets::secret_hash, SESSION_COOKIE};
use crate::{
    domain::role::Role,
    server::{
        error::AppError,
        state::AppState,
        store::accounts::{Credential, Membership},
    },
};
use axum::{
    extract::{FromRef, FromRequestParts, OptionalFromRequestParts},
    http::{header, request::Parts, HeaderMap},
};
use axum_extra::extract::CookieJar;

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthVia {
    /// Browser session; the hash identifies it for revocation.
    Session { id_hash: String },
    /// Bearer token with its scopes; the hash identifies it for revocation.
    Token {
        token_hash: String,
        scopes: Vec<String>,
    },
}

/// An authenticated caller and their memberships.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: i64,
    pub username: String,
    pub memberships: Vec<Membership>,
    pub via: AuthVia,
}

impl Principal {
    pub fn role_in(&self, org: &str) -> Option<Role> {
        self.memberships
            .iter()
            .find(|m| m.org_id == org)
            .map(|m| m.role)
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        matches!(&self.via, AuthVia::Token { scopes, .. } if scopes.iter().any(|s| s == scope))
    }

    /// The credential, to check again later (an open socket, at every heartbeat).
    pub fn credential(&self) -> Credential {
        match &self.via {
            AuthVia::Session { id_hash } => Credential::Session(id_hash.clone()),
            AuthVia::Token { token_hash, .. } => Credential::Token(token_hash.clone()),
        }
    }

    pub fn session_hash(&self) -> Option<&str> {
        match &self.via {
            AuthVia::Session { id_hash } => Some(id_hash),
            AuthVia::Token { .. } => None,
        }
    }
}

/// The bearer token of an `Authorization: Bearer …` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Resolves the caller from the request headers; `Ok(None)` when there are no (valid)
/// credentials.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Principal>, AppError> {
    let store = &state.store;
    let (user_id, via) = if let Some(token) = bearer_token(headers) {
        let token_hash = secret_hash(token);
        match store.token_user(&token_hash).await? {
            Some((user_id, scopes)) => {
                let scopes = scopes.split_whitespace().map(str::to_owned).collect();
                (user_id, AuthVia::Token { token_hash, scopes })
            }
            None => return Ok(None),
        }
    } else {
        let jar = CookieJar::from_headers(headers);
        let Some(cookie) = jar.get(SESSION_COOKIE) else {
            return Ok(None);
        };
        let id_hash = secret_hash(cookie.value());
        match store.session_user(&id_hash).await? {
            Some(user_id) => (user_id, AuthVia::Session { id_hash }),
            None => return Ok(None),
        }
    };
    let Some(user) = store.user_by_id(user_id).await? else {
        return Ok(None);
    };
    let memberships = store.memberships(user_id).await?;
    Ok(Some(Principal {
        user_id,
        username: user.username,
        memberships,
        via,
    }))
}

impl<S> FromRequestParts<S> for Principal
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        authenticate(&state, &parts.headers)
            .await?
            .ok_or(AppError::Unauthorized)
    }
}

impl<S> OptionalFromRequestParts<S> for Principal
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let state = AppState::from_ref(state);
        authenticate(&state, &parts.headers).await
    }
}
