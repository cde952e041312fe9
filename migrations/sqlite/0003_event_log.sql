-- The per-organization event log: every published SyncEvent with its seq, serialized once.
-- Replay (?since=N) reads it; retention (count and age) prunes it.
CREATE TABLE events (
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    payload     TEXT NOT NULL,                 -- the JSON frame exactly as sent
    created_at  INTEGER NOT NULL,              -- unix milliseconds
    PRIMARY KEY (org_id, seq)
) WITHOUT ROWID;
CREATE INDEX events_by_age ON events(created_at);
