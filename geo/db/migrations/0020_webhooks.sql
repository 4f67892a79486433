-- Webhooks: a key registers a URL for events it may see; the service posts each event to it,
-- signed, and retries for up to a day (geo/webhooks).
--
-- webhooks: one registration, owned by the API key that made it. The secret signs the
-- deliveries, so it is kept (a hash could not sign); the API shows it once, at creation.
CREATE TABLE webhooks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_id bigint NOT NULL REFERENCES api_keys (id),
    url text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2000),
    events text[] NOT NULL CHECK (cardinality(events) > 0),
    secret text NOT NULL CHECK (length(secret) >= 32),
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    deleted_at timestamptz,
    deleted_by text,
    CHECK (active = (deleted_at IS NULL))
);
CREATE INDEX webhooks_key_idx ON webhooks (key_id, id);
-- The triggers below ask "does any live webhook want this event?" on every write.
CREATE INDEX webhooks_events_idx ON webhooks USING gin (events) WHERE active;

-- The outbox: an event is written by a trigger in the transaction of the write it reports,
-- so it commits with the write or not at all. The sender fans each event out to the webhooks
-- whose keys may see it (redacting per key, in geo/webhooks/fanout.py) and deletes it. Its data
-- is the object as written, without personal data (contacts, notes): a copy that no erasure
-- would reach. Nothing is written when no live webhook wants the event.
CREATE TABLE webhook_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    type text NOT NULL CHECK (type ~ '^[a-z_]+\.[a-z_]+$'),
    object_type text NOT NULL,
    object_id text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    data jsonb NOT NULL
);

-- One event to one webhook: its payload (already redacted for the webhook's key), its attempts
-- and where it stands. The sender claims due rows with FOR UPDATE SKIP LOCKED.
CREATE TABLE webhook_deliveries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id bigint NOT NULL REFERENCES webhooks (id),
    event_id uuid NOT NULL,
    event_type text NOT NULL,
    payload jsonb NOT NULL,
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed', 'cancelled')),
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    last_status_code integer,
    last_error text,
    delivered_at timestamptz,
    UNIQUE (webhook_id, event_id)
);
-- The sender's queue: due pending deliveries, oldest first.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at, id) WHERE state = 'pending';
-- The delivery log of one webhook, newest first (keyset paging on id).
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (webhook_id, id DESC);
-- The retention purge of finished deliveries.
CREATE INDEX webhook_deliveries_finished_idx ON webhook_deliveries (created_at) WHERE state <> 'pending';

-- Every attempt of a delivery: when, the answer's status (or the error) and how long it took.
CREATE TABLE webhook_attempts (
    delivery_id bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    status_code integer,
    error text,
    duration_ms integer NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- Write one event to the outbox if a live webhook wants its type.
CREATE FUNCTION webhook_enqueue(event_type text, object_type text, object_id text, data jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhooks WHERE active AND events @> ARRAY[event_type]) THEN
        INSERT INTO webhook_events (type, object_type, object_id, data)
        VALUES (event_type, object_type, object_id, data);
    END IF;
END;
$$;

-- A wayleave as the API reads it (geo/wayleaves/queries.py SELECT), without personal data.
CREATE FUNCTION webhook_wayleave(wayleave_id bigint) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT (to_jsonb(w) - ARRAY['notes', 'contact_name', 'contact_email', 'contact_phone'])
           || jsonb_build_object(
                  'site_name', s.name,
                  'asset_ids', (SELECT coalesce(jsonb_agg(sa.asset_id ORDER BY sa.asset_id), '[]')
                                FROM wayleave_site_assets sa WHERE sa.site_id = w.site_id))
    FROM wayleaves w JOIN wayleave_sites s ON s.id = w.site_id
    WHERE w.id = wayleave_id
$$;

-- Created (the first event) or transitioned (any later one). Fires after wayleave_events_apply
-- (triggers of one timing run in name order), so the wayleave has already moved.
CREATE FUNCTION wayleave_events_webhook() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq = 1 THEN
        PERFORM webhook_enqueue('wayleave.created', 'wayleave', NEW.wayleave_id::text,
            jsonb_build_object('wayleave', webhook_wayleave(NEW.wayleave_id)));
    ELSE
        PERFORM webhook_enqueue('wayleave.transitioned', 'wayleave', NEW.wayleave_id::text,
            jsonb_build_object(
                'wayleave', webhook_wayleave(NEW.wayleave_id),
                'transition', jsonb_build_object(
                    'seq', NEW.seq, 'at', NEW.at, 'from', NEW.from_status, 'to', NEW.to_status, 'by', NEW."by")));
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER wayleave_events_webhook AFTER INSERT ON wayleave_events
    FOR EACH ROW EXECUTE FUNCTION wayleave_events_webhook();

-- Edited: any change of a detail (the list of geo/wayleaves/details.py EDITABLE, as in 0007).
-- The field names only: their values are in GET /wayleaves/{id}/changes.
CREATE FUNCTION wayleaves_webhook() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_row jsonb := to_jsonb(OLD);
    new_row jsonb := to_jsonb(NEW);
    col text;
    changed text[] := '{}';
BEGIN
    FOREACH col IN ARRAY ARRAY['template', 'template_version', 'reference', 'operator_reference',
                               'expires_on', 'notes', 'contact_name', 'contact_email', 'contact_phone']
    LOOP
        IF old_row -> col IS DISTINCT FROM new_row -> col THEN
            changed := changed || col;
        END IF;
    END LOOP;
    IF cardinality(changed) > 0 THEN
        PERFORM webhook_enqueue('wayleave.edited', 'wayleave', NEW.id::text,
            jsonb_build_object(
                'wayleave', webhook_wayleave(NEW.id),
                'edit', jsonb_build_object(
                    'version', NEW.version, 'fields', to_jsonb(changed),
                    'by', coalesce(nullif(current_setting('connectivity.actor', true), ''),
                                   'database user ' || session_user))));
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER wayleaves_webhook AFTER UPDATE ON wayleaves
    FOR EACH ROW EXECUTE FUNCTION wayleaves_webhook();

-- An upload's end: previewed, applied, rejected, failed (or interrupted: failed). The columns
-- of GET /uploads/{id} a subscriber needs; the rest (report, mapping) is one GET away.
CREATE FUNCTION uploads_webhook() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM webhook_enqueue(
        'upload.' || CASE NEW.state WHEN 'interrupted' THEN 'failed' ELSE NEW.state END,
        'upload', NEW.id::text,
        jsonb_build_object('upload', jsonb_build_object(
            'id', NEW.id, 'borough_code', NEW.borough_code, 'kind', NEW.kind, 'mode', NEW.mode,
            'dry_run', NEW.dry_run, 'skip_invalid', NEW.skip_invalid, 'layer', NEW.layer,
            'file_name', NEW.file_name, 'size_bytes', NEW.size_bytes, 'sha256', NEW.sha256,
            'state', NEW.state, 'format', NEW.format, 'crs', NEW.crs, 'counts', NEW.counts,
            'changed_fields', NEW.changed_fields, 'message', NEW.message, 'load_id', NEW.load_id,
            'created_by', NEW.created_by, 'applied_by', NEW.applied_by, 'created_at', NEW.created_at,
            'started_at', NEW.started_at, 'finished_at', NEW.finished_at, 'applied_at', NEW.applied_at)));
    RETURN NULL;
END;
$$;
CREATE TRIGGER uploads_webhook AFTER UPDATE OF state ON uploads
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state
          AND NEW.state IN ('previewed', 'applied', 'rejected', 'failed', 'interrupted'))
    EXECUTE FUNCTION uploads_webhook();

-- A coverage report's end: done, or failed (interrupted too). key_id decides who sees it
-- (geo/coverage/results.py: admins and the key that asked); the fan-out removes it.
CREATE FUNCTION coverage_reports_webhook() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM webhook_enqueue(
        CASE NEW.state WHEN 'done' THEN 'report.done' ELSE 'report.failed' END,
        'report', NEW.id::text,
        jsonb_build_object('key_id', NEW.key_id, 'report', jsonb_build_object(
            'id', NEW.id, 'state', NEW.state, 'data_version', NEW.data_version, 'summary', NEW.summary,
            'message', NEW.message, 'created_by', NEW.created_by, 'created_at', NEW.created_at,
            'started_at', NEW.started_at, 'finished_at', NEW.finished_at)));
    RETURN NULL;
END;
$$;
CREATE TRIGGER coverage_reports_webhook AFTER UPDATE OF state ON coverage_reports
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state AND NEW.state IN ('done', 'failed', 'interrupted'))
    EXECUTE FUNCTION coverage_reports_webhook();

-- A Pipeline import's end: done (applied or previewed) or failed (rejected, failed, interrupted).
CREATE FUNCTION pipeline_imports_webhook() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM webhook_enqueue(
        CASE WHEN NEW.state IN ('applied', 'previewed') THEN 'pipeline_import.done' ELSE 'pipeline_import.failed' END,
        'pipeline_import', NEW.id::text,
        jsonb_build_object('import', jsonb_build_object(
            'id', NEW.id, 'file_name', NEW.file_name, 'sha256', NEW.sha256, 'size_bytes', NEW.size_bytes,
            'format', NEW.format, 'dry_run', NEW.dry_run, 'skip_invalid', NEW.skip_invalid,
            'state', NEW.state, 'counts', NEW.counts, 'message', NEW.message, 'created_by', NEW.created_by,
            'created_at', NEW.created_at, 'finished_at', NEW.finished_at)));
    RETURN NULL;
END;
$$;
CREATE TRIGGER pipeline_imports_webhook AFTER UPDATE OF state ON pipeline_imports
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state
          AND NEW.state IN ('applied', 'previewed', 'rejected', 'failed', 'interrupted'))
    EXECUTE FUNCTION pipeline_imports_webhook();
