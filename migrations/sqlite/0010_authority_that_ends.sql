-- A removed user keeps their name and their place in jobs, history and the audit trail, but can
-- no longer sign in; their sessions and tokens are revoked and memberships deleted with it.
ALTER TABLE users ADD COLUMN removed_at TEXT;
-- A token may expire (RFC 3339, UTC); NULL: it lasts until revoked.
ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;
CREATE INDEX api_tokens_by_user ON api_tokens(user_id);
CREATE INDEX sessions_by_expiry ON sessions(expires_at);
