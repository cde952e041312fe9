-- Organizations are construction projects. The two of the product are reference data.
CREATE TABLE organizations (
    id            TEXT PRIMARY KEY NOT NULL,          -- e.g. org-rio
    code          TEXT NOT NULL UNIQUE,               -- e.g. RIO (the PEMS organization code)
    name          TEXT NOT NULL,
    sync_enabled  INTEGER NOT NULL DEFAULT 1,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

INSERT INTO organizations (id, code, name) VALUES
    ('org-rio', 'RIO', 'Rio Tinto Project'),
    ('org-portarthur', 'PORTARTHUR', 'Port Arthur Project');
