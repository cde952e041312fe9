//! The browser's one HTTP client: gloo-net's `fetch` wrapper, JSON in and out. `get` and `send`
//! answer `Ok(value)` for 2xx and `Err(ApiError)` with the server's message otherwise; `exchange`
//! is the raw call for the few callers that read an answer themselves (a 503 health report, the
//! records list decoded a slice at a time).

use serde::{de::DeserializeOwned, Serialize};

/// A failed API call: the status (0 when the request did not reach the server), the server's
/// message and, for 422, the per-field messages.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub fields: Option<serde_json::Value>,
}

impl ApiError {
    /// The request did not reach the server, or its answer could not be read.
    pub fn network(message: impl Into<String>) -> Self {
        Self {
            status: 0,
            message: message.into(),
            fields: None,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// An answer as it came: the status and the body's bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The value of a 2xx answer (an empty body reads as JSON `null`), or the error that any
    /// other status carries: the server's `message` and `fields`, or the status alone when
    /// the body says nothing.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.is_success() {
            self.value()
        } else {
            Err(self.error())
        }
    }

    /// The body as `T`, whatever the status (a 503 health report is still a report).
    pub fn value<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"null"
        } else {
            &self.body
        };
        serde_json::from_slice(body).map_err(|e| ApiError {
            status: self.status,
            message: format!("unexpected answer: {e}"),
            fields: None,
        })
    }

    /// The error a non-2xx answer carries.
    pub fn error(&self) -> ApiError {
        let body: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        ApiError {
            status: self.status,
            message: body
                .get("message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| format!("the server answered {}", self.status)),
            fields: body.get("fields").cloned(),
        }
    }
}

/// `method path` (relative to the page's origin), with a JSON body when there is one; cookies
/// go with it (same origin). `Err` only when no answer came (offline, server down, aborted).
#[cfg(feature = "hydrate")]
pub async fn exchange(method: &str, path: &str, json: Option<String>) -> Result<Answer, ApiError> {
    use gloo_net::http::{Method, RequestBuilder};

    /// A thrown `TypeError: Failed to fetch` reads as just that.
    fn described(error: gloo_net::Error) -> ApiError {
        ApiError::network(error.to_string())
    }

    let method: Method = method
        .parse()
        .map_err(|_| ApiError::network(format!("{method:?} is not an HTTP method")))?;
    let request = RequestBuilder::new(path).method(method);
    let request = match json {
        Some(json) => request
            .header("Content-Type", "application/json")
            .body(json),
        None => request.build(),
    }
    .map_err(described)?;
    let response = request.send().await.map_err(described)?;
    Ok(Answer {
        status: response.status(),
        body: response.binary().await.map_err(described)?,
    })
}

#[cfg(not(feature = "hydrate"))]
pub async fn exchange(method: &str, path: &str, json: Option<String>) -> Result<Answer, ApiError> {
    let _ = (method, path, json);
    Err(ApiError::network("runs in the browser"))
}

/// `GET path` (relative to the page's origin, e.g. `/api/orgs/org-rio/jobs`).
pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    exchange("GET", path, None).await?.decode()
}

/// `method path` with a JSON body (`POST`, `PUT`, `DELETE`).
pub async fn send<B: Serialize, T: DeserializeOwned>(
    method: &str,
    path: &str,
    body: &B,
) -> Result<T, ApiError> {
    let json = serde_json::to_string(body).map_err(|e| ApiError::network(e.to_string()))?;
    exchange(method, path, Some(json)).await?.decode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_success_is_its_value_and_an_empty_body_is_null() {
        assert_eq!(
            answer(200, r#"{"a":1}"#).decode::<Value>(),
            Ok(json!({"a": 1}))
        );
        assert_eq!(answer(204, "").decode::<Option<u8>>(), Ok(None));
        assert_eq!(answer(202, " \n").decode::<Value>(), Ok(Value::Null));
    }

    #[test]
    fn a_success_of_the_wrong_shape_says_so() {
        let error = answer(200, r#"{"a":1}"#).decode::<Vec<u8>>().unwrap_err();
        assert_eq!(error.status, 200);
        assert!(
            error
                .message
                .starts_with("unexpected answer: invalid type: map"),
            "{}",
            error.message
        );
    }

    #[test]
    fn an_error_carries_the_servers_message_and_fields() {
        let error = answer(
            422,
            r#"{"message":"invalid drafts","fields":{"notes":"too long"}}"#,
        )
        .decode::<Value>()
        .unwrap_err();
        assert_eq!(
            error,
            ApiError {
                status: 422,
                message: "invalid drafts".into(),
                fields: Some(json!({"notes": "too long"})),
            }
        );
    }

    #[test]
    fn an_error_without_a_message_names_the_status() {
        for body in ["", "<html>bad gateway</html>", r#"{"message":3}"#] {
            let error = answer(502, body).decode::<Value>().unwrap_err();
            assert_eq!(
                (error.status, error.message.as_str(), error.fields),
                (502, "the server answered 502", None)
            );
        }
    }

    #[test]
    fn a_report_is_read_whatever_the_status() {
        assert_eq!(
            answer(503, r#"{"status":"down"}"#).value::<Value>(),
            Ok(json!({"status": "down"}))
        );
    }
}
