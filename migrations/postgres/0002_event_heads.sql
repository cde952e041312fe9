-- Each organization's head seq: the last seq assigned to one of its events. It is advanced in
-- the transaction that appends the events (the row lock orders the appends of concurrent
-- transactions, so seqs are committed in order and without gaps), and kept when retention
-- prunes the log, so a seq is never given twice.
CREATE TABLE event_heads (
    org_id  TEXT PRIMARY KEY REFERENCES organizations(id),
    head    BIGINT NOT NULL
);

INSERT INTO event_heads (org_id, head)
SELECT o.id, COALESCE((SELECT MAX(e.seq) FROM events e WHERE e.org_id = o.id), 0)
FROM organizations o;
