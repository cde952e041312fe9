-- PFA records with a version each, the history of every accepted write, drafts, sync jobs with
-- one queue item per record, conflicts with both sides, and the audit trail.

CREATE TABLE pfa_records (
    org_id          TEXT NOT NULL REFERENCES organizations(id),
    pfa_id          TEXT NOT NULL,
    data            TEXT NOT NULL,       -- the whole PfaRecord as JSON
    category        TEXT NOT NULL,       -- copies of data fields, for filters and sorting
    source          TEXT NOT NULL,
    dor             TEXT NOT NULL,
    forecast_start  TEXT NOT NULL,
    forecast_end    TEXT NOT NULL,
    monthly_rate    REAL,
    is_discontinued INTEGER NOT NULL,
    search          TEXT NOT NULL,       -- lowercased text for search
    version         INTEGER NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (org_id, pfa_id)
) WITHOUT ROWID;
CREATE INDEX pfa_records_category ON pfa_records(org_id, category);

CREATE TABLE pfa_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id      TEXT NOT NULL,
    pfa_id      TEXT NOT NULL,
    version     INTEGER NOT NULL,        -- the version this write produced
    data        TEXT NOT NULL,           -- the record as of this version
    changes     TEXT NOT NULL,           -- {"field": {"from": …, "to": …}}
    changed_by  TEXT NOT NULL,
    reason      TEXT,
    kind        TEXT NOT NULL CHECK (kind IN ('created', 'sync', 'pems', 'rollback')),
    job_id      TEXT,
    created_at  TEXT NOT NULL,
    UNIQUE (org_id, pfa_id, version)
);

CREATE TABLE drafts (
    org_id        TEXT NOT NULL,
    pfa_id        TEXT NOT NULL,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    changes       TEXT NOT NULL,         -- the changed fields only
    base_version  INTEGER NOT NULL,
    reason        TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (org_id, user_id, pfa_id),
    FOREIGN KEY (org_id, pfa_id) REFERENCES pfa_records(org_id, pfa_id)
);

CREATE TABLE sync_jobs (
    id            TEXT PRIMARY KEY NOT NULL,
    org_id        TEXT NOT NULL REFERENCES organizations(id),
    user_id       INTEGER NOT NULL REFERENCES users(id),
    username      TEXT NOT NULL,
    kind          TEXT NOT NULL DEFAULT 'commit' CHECK (kind IN ('commit', 'rollback', 'resolution')),
    status        TEXT NOT NULL CHECK (status IN ('queued', 'running', 'paused', 'completed',
                      'completed_with_conflicts', 'failed', 'cancelled')),
    total         INTEGER NOT NULL,
    synced        INTEGER NOT NULL DEFAULT 0,
    conflicts     INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    retries       INTEGER NOT NULL DEFAULT 0,
    reason        TEXT,
    created_at    TEXT NOT NULL,
    started_at    TEXT,
    completed_at  TEXT
);
CREATE INDEX sync_jobs_by_org ON sync_jobs(org_id, created_at);

CREATE TABLE sync_queue (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id           TEXT NOT NULL REFERENCES sync_jobs(id),
    org_id           TEXT NOT NULL,
    pfa_id           TEXT NOT NULL,
    user_id          INTEGER NOT NULL,
    changes          TEXT NOT NULL,
    base_version     INTEGER NOT NULL,
    reason           TEXT,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'in_flight', 'synced', 'conflict',
                         'failed', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL DEFAULT 0,   -- unix ms
    error_code       TEXT,
    last_error       TEXT,
    idempotency_key  TEXT NOT NULL UNIQUE,
    updated_at       TEXT NOT NULL,
    UNIQUE (job_id, pfa_id)
);
CREATE INDEX sync_queue_by_job ON sync_queue(job_id, status);

CREATE TABLE conflicts (
    id              TEXT PRIMARY KEY NOT NULL,
    org_id          TEXT NOT NULL,
    pfa_id          TEXT NOT NULL,
    job_id          TEXT NOT NULL,
    queue_item_id   INTEGER NOT NULL,
    user_id         INTEGER NOT NULL,
    fields          TEXT NOT NULL,     -- ["forecastStart", …]
    local_values    TEXT NOT NULL,     -- {field: value} of the draft
    remote_values   TEXT NOT NULL,     -- {field: value} in PEMS
    changes         TEXT NOT NULL,     -- the whole local change
    base_version    INTEGER NOT NULL,
    remote_version  INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    resolution      TEXT CHECK (resolution IN ('use_local', 'use_pems', 'merge')),
    resolved_values TEXT,
    resolved_by     TEXT,
    resolved_at     TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX conflicts_by_org ON conflicts(org_id, status);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id      TEXT NOT NULL,
    user_id     INTEGER,
    username    TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL
);
CREATE INDEX audit_by_org ON audit_log(org_id, id);
