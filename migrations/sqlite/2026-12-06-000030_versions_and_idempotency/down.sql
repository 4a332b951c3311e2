DROP TABLE idempotency_keys;
ALTER TABLE workspaces DROP COLUMN version;
