-- Login throttling shared by every instance: one GCRA state per key (`user:<name>`,
-- `addr:<ip>`), its theoretical arrival time in unix ms. A key whose time has passed is idle
-- and may be deleted.
CREATE TABLE login_throttle (
    key  TEXT PRIMARY KEY NOT NULL,
    tat  INTEGER NOT NULL
) WITHOUT ROWID;
