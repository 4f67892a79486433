-- The callbacks of OGC API Processes jobs (an execute request's `subscriber`): a webhook of the
-- key that ran the job, for that one job, whose delivery is the standard's document (the results
-- at successUri, the status at failedUri) rather than an event. The same sender posts it, signs
-- it, retries it and logs it (geo/webhooks). Not listed with the key's webhooks nor counted
-- against their limit: it ends with its job.
ALTER TABLE webhooks
    ADD COLUMN job_id bigint,
    ADD COLUMN job_callback text CHECK (job_callback IN ('success', 'failed')),
    ADD COLUMN job_base text CHECK (length(job_base) <= 2000),
    ADD CONSTRAINT webhooks_job_check
        CHECK ((job_id IS NULL) = (job_callback IS NULL) AND (job_id IS NULL) = (job_base IS NULL));
CREATE INDEX webhooks_job_idx ON webhooks (job_id) WHERE job_id IS NOT NULL;
