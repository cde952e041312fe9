-- A job runs on one instance at a time: the one that holds its lease (`owner`, an instance id,
-- until `lease_until`, unix ms). The runner renews it; when an instance dies, another takes the
-- job over once the lease has run out.
ALTER TABLE sync_jobs ADD COLUMN owner TEXT;
ALTER TABLE sync_jobs ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
CREATE INDEX sync_jobs_runnable ON sync_jobs(status, lease_until);

-- Sync commands applied, by the client's command id: a repeat, sent to any instance, gets the
-- first answer again and changes nothing.
CREATE TABLE command_results (
    org_id      TEXT NOT NULL,
    command_id  TEXT NOT NULL,
    answer      TEXT NOT NULL,           -- {"ok": …, "message": …} of the COMMAND_RESULT
    created_at  BIGINT NOT NULL,         -- unix ms
    PRIMARY KEY (org_id, command_id)
);
CREATE INDEX command_results_by_age ON command_results(created_at);
