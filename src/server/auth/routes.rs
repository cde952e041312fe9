//! `POST /api/auth/login`, `POST /api/auth/logout`, `GET /api/auth/me`.

use super::{
    secrets::{new_secret, secret_hash, verify_password},
    Principal, SESSION_COOKIE,
};
use crate::{
    protocol::auth::{LoginRequest, Me, MembershipSummary, UserSummary, SIGNED_IN_HINT_COOKIE},
    server::{error::AppError, state::AppState, store::accounts::Membership},
};
use axum::{
    extract::{ConnectInfo, FromRequest, Request, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Form, Json, Router,
};
use axum_extra::extract::{
    cookie::{Cookie, SameSite},
    CookieJar,
};
use std::net::{IpAddr, SocketAddr};

/// The client's address: the peer's, or, when the peer is a trusted proxy (a load balancer),
/// the nearest address in `X-Forwarded-For` that is not one of the trusted proxies. Entries a
/// client wrote itself come before those and are never used.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for entry in forwarded.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return ip,
            Err(_) => return peer,
        }
    }
    peer
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me))
}

pub fn me_of(principal: &Principal) -> Me {
    me_from(
        principal.user_id,
        &principal.username,
        &principal.memberships,
    )
}

fn me_from(user_id: i64, username: &str, memberships: &[Membership]) -> Me {
    Me {
        user: UserSummary {
            id: user_id,
            username: username.to_owned(),
        },
        memberships: memberships
            .iter()
            .map(|m| MembershipSummary {
                organization_id: m.org_id.clone(),
                code: m.org_code.clone(),
                name: m.org_name.clone(),
                role: m.role.as_str().to_owned(),
            })
            .collect(),
    }
}

/// Whether the request carries an HTML form (the sign-in page posts one before it has
/// hydrated, or without JavaScript).
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// `POST /api/auth/login`: JSON in, `Me` out (the page's script and API clients); or an HTML
/// form in, a redirect out: to `/orgs` when signed in, else back to `/login` with an error
/// code in the query (never a credential).
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    request: Request,
) -> Response {
    if is_form(&headers) {
        let signed_in = match Form::<LoginRequest>::from_request(request, &()).await {
            Ok(Form(credentials)) => sign_in(&state, peer, &headers, jar, credentials).await,
            Err(_) => Err(AppError::field("body", "username and password required")),
        };
        return match signed_in {
            Ok((jar, _)) => (jar, Redirect::to("/orgs")).into_response(),
            Err(e) => {
                let code = match e {
                    AppError::TooManyRequests(_) => "throttled",
                    AppError::InvalidCredentials | AppError::Validation(_) => "invalid",
                    _ => "unavailable",
                };
                Redirect::to(&format!("/login?error={code}")).into_response()
            }
        };
    }
    let signed_in = match Json::<LoginRequest>::from_request(request, &()).await {
        Ok(Json(credentials)) => sign_in(&state, peer, &headers, jar, credentials).await,
        Err(rejection) => Err(AppError::from(rejection)),
    };
    match signed_in {
        Ok((jar, me)) => (jar, Json(me)).into_response(),
        Err(e) => e.into_response(),
    }
}

#[tracing::instrument(skip_all, fields(username))]
async fn sign_in(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    jar: CookieJar,
    request: LoginRequest,
) -> Result<(CookieJar, Me), AppError> {
    let username = request.username.trim().to_owned();
    tracing::Span::current().record("username", username.as_str());
    if username.is_empty() || username.len() > 64 {
        return Err(AppError::field("username", "1 to 64 characters"));
    }
    if request.password.is_empty() || request.password.len() > 1024 {
        return Err(AppError::field("password", "1 to 1024 characters"));
    }
    let client = client_address(peer.ip(), headers, &state.config.trusted_proxies);
    state
        .login_throttle
        .check(&username, client)
        .await?
        .map_err(|wait| {
            tracing::warn!(%client, "login throttled");
            AppError::TooManyRequests(wait)
        })?;

    let user = state.store.user_by_name(&username).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    if !verify_password(request.password, hash).await {
        tracing::info!(%client, "login failed");
        state.login_throttle.failed(&username, client).await?;
        return Err(AppError::InvalidCredentials);
    }
    let user = user.expect("verified users exist");
    // The session this browser held until now (perhaps another user's) ends here.
    if let Some(old) = jar.get(SESSION_COOKIE) {
        let id_hash = secret_hash(old.value());
        if state.store.revoke_session(&id_hash).await? {
            state.hub.disconnect_session(&id_hash);
        }
    }

    let session = new_secret("");
    let ttl = state.config.session_ttl;
    let expires =
        chrono::Utc::now() + chrono::Duration::from_std(ttl).map_err(anyhow::Error::new)?;
    state
        .store
        .create_session(&secret_hash(&session), user.id, expires)
        .await?;
    let cookie = Cookie::build((SESSION_COOKIE, session))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.cookie_secure())
        .path("/")
        .max_age(time::Duration::seconds(ttl.as_secs() as i64));
    // A hint for the page, readable by scripts and worth nothing as a credential: the browser
    // asks `/api/auth/me` for the header only when it is set, so visitors cause no 401s.
    let hint = Cookie::build((SIGNED_IN_HINT_COOKIE, "1"))
        .same_site(SameSite::Lax)
        .secure(state.config.cookie_secure())
        .path("/")
        .max_age(time::Duration::seconds(ttl.as_secs() as i64));
    let memberships = state.store.memberships(user.id).await?;
    tracing::info!(%peer, "signed in");
    Ok((
        jar.add(cookie).add(hint),
        me_from(user.id, &user.username, &memberships),
    ))
}

async fn logout(
    State(state): State<AppState>,
    principal: Option<Principal>,
    jar: CookieJar,
) -> Result<(CookieJar, StatusCode), AppError> {
    if let Some(id_hash) = principal.as_ref().and_then(|p| p.session_hash()) {
        state.store.revoke_session(id_hash).await?;
        let closed = state.hub.disconnect_session(id_hash);
        tracing::info!(user = %principal.as_ref().map(|p| p.username.as_str()).unwrap_or(""), closed, "signed out");
    }
    let removal = Cookie::build((SESSION_COOKIE, "")).path("/");
    // Expired at once, whether or not the browser sent it.
    let hint = Cookie::build((SIGNED_IN_HINT_COOKIE, ""))
        .path("/")
        .max_age(time::Duration::ZERO);
    Ok((jar.remove(removal).add(hint), StatusCode::NO_CONTENT))
}

async fn me(principal: Principal) -> Json<Me> {
    Json(me_of(&principal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_trusted_proxy_may_name_the_client() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 1.2.3.4, 10.0.0.6".parse().unwrap(),
        );
        let proxies = [ip("10.0.0.5"), ip("10.0.0.6")];
        assert_eq!(
            client_address(ip("10.0.0.5"), &headers, &proxies),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_address(ip("9.9.9.9"), &headers, &proxies),
            ip("9.9.9.9"),
            "a direct client cannot pick its address"
        );
        assert_eq!(
            client_address(ip("10.0.0.5"), &HeaderMap::new(), &proxies),
            ip("10.0.0.5")
        );
        headers.insert("x-forwarded-for", "not-an-ip".parse().unwrap());
        assert_eq!(
            client_address(ip("10.0.0.5"), &headers, &proxies),
            ip("10.0.0.5")
        );
    }
}
