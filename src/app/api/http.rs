//! Generic JSON calls used by the area modules: GET and a body-carrying request, both
//! answering `Ok(value)` for 2xx and `Err(ApiError)` with the server's message otherwise.

use serde::{de::DeserializeOwned, Serialize};

/// A failed API call: the status (0 when the request did not reach the server), the server's
/// message and, for 422, the per-field messages.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub fields: Option<serde_json::Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(feature = "hydrate")]
async fn decode<T: DeserializeOwned>(response: gloo_net::http::Response) -> Result<T, ApiError> {
    let status = response.status();
    let text = response.text().await.map_err(|e| ApiError {
        status,
        message: e.to_string(),
        fields: None,
    })?;
    if (200..300).contains(&status) {
        let text = if text.trim().is_empty() {
            "null"
        } else {
            &text
        };
        serde_json::from_str(text).map_err(|e| ApiError {
            status,
            message: format!("unexpected answer: {e}"),
            fields: None,
        })
    } else {
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        Err(ApiError {
            status,
            message: body
                .get("message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| format!("the server answered {status}")),
            fields: body.get("fields").cloned(),
        })
    }
}

#[cfg(not(feature = "hydrate"))]
fn browser_only() -> ApiError {
    ApiError {
        status: 0,
        message: "runs in the browser".into(),
        fields: None,
    }
}

/// `GET path` (relative to the page's origin, e.g. `/api/orgs/org-rio/jobs`).
pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    #[cfg(feature = "hydrate")]
    {
        let response = gloo_net::http::Request::get(path)
            .send()
            .await
            .map_err(|e| ApiError {
                status: 0,
                message: e.to_string(),
                fields: None,
            })?;
        decode(response).await
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = path;
        Err(browser_only())
    }
}

/// `method path` with a JSON body (`POST`, `PUT`, `DELETE`).
pub async fn send<B: Serialize, T: DeserializeOwned>(
    method: &str,
    path: &str,
    body: &B,
) -> Result<T, ApiError> {
    #[cfg(feature = "hydrate")]
    {
        let builder = match method {
            "PUT" => gloo_net::http::Request::put(path),
            "DELETE" => gloo_net::http::Request::delete(path),
            _ => gloo_net::http::Request::post(path),
        };
        let response = builder
            .json(body)
            .map_err(|e| ApiError {
                status: 0,
                message: e.to_string(),
                fields: None,
            })?
            .send()
            .await
            .map_err(|e| ApiError {
                status: 0,
                message: e.to_string(),
                fields: None,
            })?;
        decode(response).await
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (method, path, serde_json::to_value(body));
        Err(browser_only())
    }
}
