-- Each organization's head seq: the last seq assigned to one of its events. It is advanced in
-- the transaction that appends the events, and kept when retention prunes the log, so a seq is
-- never given twice (a client's `since` from before a prune is answered with RESYNC_REQUIRED,
-- never with other events under the same numbers).
CREATE TABLE event_heads (
    org_id  TEXT PRIMARY KEY NOT NULL REFERENCES organizations(id),
    head    INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO event_heads (org_id, head)
SELECT o.id, COALESCE((SELECT MAX(e.seq) FROM events e WHERE e.org_id = o.id), 0)
FROM organizations o;
