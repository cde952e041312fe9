//! Origin checks: CSRF protection for state-changing requests and cross-site WebSocket
//! hijacking protection for the upgrade. SameSite=Lax on the cookie is the second layer.

use crate::server::{error::AppError, state::AppState};
use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, Method},
    middleware::Next,
    response::Response,
};

use super::SESSION_COOKIE;

/// The origin (`scheme://host[:port]`) a request claims to come from: `Origin`, else the
/// origin part of `Referer`.
pub fn request_origin(headers: &HeaderMap) -> Option<String> {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        return Some(origin.trim_end_matches('/').to_owned());
    }
    let referer = headers.get(header::REFERER)?.to_str().ok()?;
    let url = url::Url::parse(referer).ok()?;
    Some(url.origin().ascii_serialization())
}

/// Whether `origin` may act on this server: one of the configured origins, or (none
/// configured) the server's own origin as the `Host` header names it.
pub fn origin_allowed(origin: &str, headers: &HeaderMap, allowed: &[String]) -> bool {
    if !allowed.is_empty() {
        return allowed.iter().any(|a| a.trim_end_matches('/') == origin);
    }
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

fn sends_session_cookie(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(';')
                .any(|c| c.trim_start().starts_with(&format!("{SESSION_COOKIE}=")))
        })
}

/// Middleware for `/api`: a state-changing request must come from an allowed origin. Requests
/// that carry no ambient credential (no session cookie; bearer tokens are not ambient) and
/// name no origin are not forgeable by a browser and pass.
pub async fn guard(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe {
        let headers = request.headers();
        match request_origin(headers) {
            Some(origin) if !origin_allowed(&origin, headers, &state.config.allowed_origins) => {
                return Err(AppError::Forbidden(format!(
                    "cross-site request from {origin} refused"
                )));
            }
            None if sends_session_cookie(headers) => {
                return Err(AppError::Forbidden(
                    "a request with a session cookie must name its Origin".into(),
                ));
            }
            _ => {}
        }
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn same_origin_is_allowed_by_default_and_others_are_not() {
        let h = headers(&[("host", "localhost:3000")]);
        assert!(origin_allowed("http://localhost:3000", &h, &[]));
        assert!(!origin_allowed("http://evil.example", &h, &[]));
        assert!(!origin_allowed("http://localhost:3001", &h, &[]));
    }

    #[test]
    fn configured_origins_replace_the_default() {
        let h = headers(&[("host", "localhost:3000")]);
        let allowed = vec!["https://app.example".to_owned()];
        assert!(origin_allowed("https://app.example", &h, &allowed));
        assert!(!origin_allowed("http://localhost:3000", &h, &allowed));
    }

    #[test]
    fn referer_stands_in_for_a_missing_origin() {
        let h = headers(&[("referer", "http://localhost:3000/orgs/org-rio?x=1")]);
        assert_eq!(request_origin(&h).as_deref(), Some("http://localhost:3000"));
        assert_eq!(request_origin(&HeaderMap::new()), None);
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        assert!(sends_session_cookie(&headers(&[(
            "cookie",
            "a=1; pfa_session=xyz"
        )])));
        assert!(!sends_session_cookie(&headers(&[(
            "cookie",
            "xpfa_session=1"
        )])));
    }
}
