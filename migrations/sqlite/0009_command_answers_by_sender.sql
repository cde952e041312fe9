-- A command's recorded answer belongs to the member who sent it and to what it asked (the
-- command and the job): another member's command id, or the same id reused for another job or
-- command, is a new command. Answers recorded under the old key (organization and command id
-- only) cannot be given a sender and are dropped; a repeat of one of them is applied again,
-- which every command allows (pausing a paused job, resuming a running one, cancelling a
-- cancelled one answer ok and change nothing).
DROP TABLE command_results;
CREATE TABLE command_results (
    org_id      TEXT NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    command_id  TEXT NOT NULL,
    command     TEXT NOT NULL,           -- PAUSE_SYNC, RESUME_SYNC, CANCEL_SYNC, RETRY_SYNC
    job_id      TEXT NOT NULL,
    answer      TEXT NOT NULL,           -- {"ok": …, "message": …} of the COMMAND_RESULT
    created_at  INTEGER NOT NULL,        -- unix ms
    PRIMARY KEY (org_id, user_id, command_id, command, job_id)
) WITHOUT ROWID;
CREATE INDEX command_results_by_age ON command_results(created_at);
CREATE INDEX command_results_by_sender ON command_results(user_id, created_at);
