//! Bodies of `/api/auth/*`.

use serde::{Deserialize, Serialize};

/// Cookie set beside the (HttpOnly) session cookie at sign-in and removed at sign-out. Scripts
/// can read it; it only tells the page that asking `/api/auth/me` is worth it.
pub const SIGNED_IN_HINT_COOKIE: &str = "pfa_signed_in";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// The caller and their organizations: answer of login and `GET /api/auth/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    pub user: UserSummary,
    pub memberships: Vec<MembershipSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSummary {
    pub id: i64,
    pub username: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipSummary {
    pub organization_id: String,
    pub code: String,
    pub name: String,
    /// viewer, editor, planner or admin.
    pub role: String,
}
