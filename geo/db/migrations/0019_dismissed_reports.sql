-- OGC API Processes' Dismiss (DELETE /jobs/{id}, geo/coverage/processes.py): a queued or running
-- coverage report that is dismissed ends 'dismissed' (its computation stops at its next step and
-- stores nothing); a finished one is deleted with its results.
ALTER TABLE coverage_reports DROP CONSTRAINT coverage_reports_state_check;
ALTER TABLE coverage_reports ADD CONSTRAINT coverage_reports_state_check
    CHECK (state IN ('queued', 'running', 'done', 'failed', 'interrupted', 'dismissed'));
