DROP INDEX structure_events_actor_seq_idx;
ALTER TABLE activity_logs DROP COLUMN actor;
ALTER TABLE structure_events DROP COLUMN actor_id;
ALTER TABLE structure_events DROP COLUMN actor;
ALTER TABLE live_events DROP COLUMN actor;
DROP TABLE sessions;
DROP TABLE api_keys;
