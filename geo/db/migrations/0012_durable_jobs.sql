-- Jobs that survive faults: every job (an upload and its apply, a coverage report, a Pipeline
-- import) records the process that owns it and a heartbeat that process keeps fresh while the
-- job is queued or running (geo/jobs.py). A job whose owner is gone is marked 'interrupted',
-- with a message, by whichever process notices first: at its start and every half minute.
ALTER TABLE uploads ADD COLUMN owner text, ADD COLUMN heartbeat_at timestamptz;
ALTER TABLE coverage_reports ADD COLUMN owner text, ADD COLUMN heartbeat_at timestamptz;
ALTER TABLE pipeline_imports ADD COLUMN owner text, ADD COLUMN heartbeat_at timestamptz;

ALTER TABLE uploads DROP CONSTRAINT uploads_state_check;
ALTER TABLE uploads ADD CONSTRAINT uploads_state_check
    CHECK (state IN ('queued', 'running', 'previewed', 'applied', 'rejected', 'failed', 'interrupted'));
ALTER TABLE coverage_reports DROP CONSTRAINT coverage_reports_state_check;
ALTER TABLE coverage_reports ADD CONSTRAINT coverage_reports_state_check
    CHECK (state IN ('queued', 'running', 'done', 'failed', 'interrupted'));
ALTER TABLE pipeline_imports DROP CONSTRAINT pipeline_imports_state_check;
ALTER TABLE pipeline_imports ADD CONSTRAINT pipeline_imports_state_check
    CHECK (state IN ('running', 'previewed', 'applied', 'rejected', 'failed', 'interrupted'));

-- Unfinished jobs are what the reaper reads.
CREATE INDEX uploads_unfinished_idx ON uploads (id) WHERE state IN ('queued', 'running');
CREATE INDEX coverage_reports_unfinished_idx ON coverage_reports (id) WHERE state IN ('queued', 'running');
CREATE INDEX pipeline_imports_unfinished_idx ON pipeline_imports (id) WHERE state = 'running';

-- A dry run applied later is the applying key's write, not the uploader's.
ALTER TABLE uploads ADD COLUMN applied_by text, ADD COLUMN applied_key_id bigint REFERENCES api_keys (id);
