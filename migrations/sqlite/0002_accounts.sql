-- Accounts: users, their memberships (one role per organization), browser sessions and API
-- tokens. Session ids and tokens are stored only as SHA-256 hashes.
CREATE TABLE users (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    username       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash  TEXT NOT NULL,               -- argon2id PHC string
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE memberships (
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    org_id   TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    role     TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'planner', 'admin')),
    PRIMARY KEY (user_id, org_id)
);

CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY NOT NULL,     -- hex SHA-256 of the cookie value
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX sessions_by_user ON sessions(user_id);

CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash  TEXT NOT NULL UNIQUE,          -- hex SHA-256 of the bearer token
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scopes      TEXT NOT NULL DEFAULT '',      -- space-separated, e.g. 'publish'
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    revoked_at  TEXT
);
