-- One process serves a SQLite file, so it assigns its events' seqs from heads it holds in
-- memory, and appending is a single INSERT into the log: these triggers make that statement
-- advance the stored head itself (atomically with the rows), and refuse a seq at or below the
-- stored head, so a seq is never given twice even if a head held in memory went stale.
CREATE TRIGGER events_seq_above_head BEFORE INSERT ON events
WHEN NEW.seq <= COALESCE((SELECT head FROM event_heads WHERE org_id = NEW.org_id), 0)
BEGIN
    SELECT RAISE(ABORT, 'event seq at or below the organization''s head');
END;

CREATE TRIGGER events_advance_head AFTER INSERT ON events
BEGIN
    INSERT INTO event_heads (org_id, head) VALUES (NEW.org_id, NEW.seq)
    ON CONFLICT (org_id) DO UPDATE SET head = excluded.head;
END;
