-- Wayleaves: sites (one asset or a named group), the wayleave of an operator on a site, and
-- its append-only event history. The transition rules live in geo/wayleaves.py (one place);
-- the database guarantees what code alone could forget: the current status is always the
-- replay of the events, and events are never changed or deleted.

-- An operator key sees the wayleaves of its own operator (the name used in wayleaves.operator).
ALTER TABLE api_keys ADD COLUMN operator text CHECK (operator <> '');
ALTER TABLE api_keys ADD CONSTRAINT api_keys_operator_role CHECK (operator IS NULL OR role = 'operator');

CREATE TABLE wayleave_sites (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    borough_code text NOT NULL REFERENCES boroughs (code),
    name text NOT NULL CHECK (name <> ''),
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL DEFAULT 'system'
);
CREATE TABLE wayleave_site_assets (
    site_id bigint NOT NULL REFERENCES wayleave_sites (id) ON DELETE CASCADE,
    -- No foreign key to assets (they have none by design, see 0001); retired assets stay listed.
    asset_id bigint NOT NULL,
    PRIMARY KEY (site_id, asset_id)
);
-- Coverage asks "which wayleaves cover this asset": by asset.
CREATE INDEX wayleave_site_assets_asset_idx ON wayleave_site_assets (asset_id);

CREATE TABLE wayleaves (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id bigint NOT NULL REFERENCES wayleave_sites (id),
    -- Copied from the site: access checks and filters read it without a join.
    borough_code text NOT NULL REFERENCES boroughs (code),
    operator text NOT NULL CHECK (operator <> ''),
    template text NOT NULL CHECK (template IN ('standardised', 'bespoke')),
    template_version text,
    status text NOT NULL,
    status_since timestamptz NOT NULL,
    -- While on_hold: the status the wayleave returns to.
    resume_status text CHECK ((status = 'on_hold') = (resume_status IS NOT NULL)),
    requested_on date,
    surveyed_on date,
    terms_issued_on date,
    signed_on date,
    live_on date,
    expires_on date,
    reference text,
    operator_reference text,
    -- Restricted: internal notes and the landlord or site contact (personal data). Never in
    -- the map view below; removed for operator keys by geo.wayleaves.redact.
    notes text,
    contact_name text,
    contact_email text,
    contact_phone text,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL DEFAULT 'system'
);
CREATE INDEX wayleaves_site_idx ON wayleaves (site_id);
CREATE INDEX wayleaves_borough_status_idx ON wayleaves (borough_code, status);
CREATE INDEX wayleaves_operator_idx ON wayleaves (operator);
CREATE UNIQUE INDEX wayleaves_reference_key ON wayleaves (borough_code, reference) WHERE reference IS NOT NULL;

CREATE TABLE wayleave_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wayleave_id bigint NOT NULL REFERENCES wayleaves (id),
    seq integer NOT NULL,
    -- When it happened (may be backdated by admin imports); recorded_at is when it was written.
    at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    by text NOT NULL,
    from_status text,
    to_status text NOT NULL,
    resume_status text,
    note text,
    UNIQUE (wayleave_id, seq),
    CHECK ((to_status = 'on_hold') = (resume_status IS NOT NULL)),
    CHECK ((seq = 1) = (from_status IS NULL))
);

-- Events are append-only.
CREATE FUNCTION wayleave_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'wayleave events are append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER wayleave_events_no_update BEFORE UPDATE OR DELETE ON wayleave_events
    FOR EACH ROW EXECUTE FUNCTION wayleave_events_append_only();
CREATE TRIGGER wayleave_events_no_truncate BEFORE TRUNCATE ON wayleave_events
    FOR EACH STATEMENT EXECUTE FUNCTION wayleave_events_append_only();

-- An event must continue the chain: its from is the current status, its seq the next one,
-- its time not before the previous event's.
CREATE FUNCTION wayleave_events_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    current_status text;
    last record;
BEGIN
    SELECT status INTO current_status FROM wayleaves WHERE id = NEW.wayleave_id FOR UPDATE;
    SELECT seq, at INTO last FROM wayleave_events WHERE wayleave_id = NEW.wayleave_id
        ORDER BY seq DESC LIMIT 1;
    IF last.seq IS NULL THEN
        IF NEW.seq <> 1 OR NEW.to_status IS DISTINCT FROM current_status THEN
            RAISE EXCEPTION 'the first event of wayleave % must be seq 1 to its status %',
                NEW.wayleave_id, current_status USING ERRCODE = 'check_violation';
        END IF;
    ELSIF NEW.seq <> last.seq + 1 OR NEW.from_status IS DISTINCT FROM current_status THEN
        RAISE EXCEPTION 'event % of wayleave % does not continue its history (status %, last event %)',
            NEW.seq, NEW.wayleave_id, current_status, last.seq USING ERRCODE = 'check_violation';
    ELSIF NEW.at < last.at THEN
        RAISE EXCEPTION 'event of wayleave % at % is before its previous event at %',
            NEW.wayleave_id, NEW.at, last.at USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER wayleave_events_check BEFORE INSERT ON wayleave_events
    FOR EACH ROW EXECUTE FUNCTION wayleave_events_check();

-- Appending an event is what moves the wayleave (one write path: nothing to forget).
CREATE FUNCTION wayleave_events_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq > 1 THEN
        UPDATE wayleaves
           SET status = NEW.to_status, status_since = NEW.at, resume_status = NEW.resume_status,
               version = version + 1,
               -- Key dates: the first arrival in the status, as a London calendar date.
               requested_on = CASE WHEN NEW.to_status = 'requested'
                   THEN coalesce(requested_on, (NEW.at AT TIME ZONE 'Europe/London')::date) ELSE requested_on END,
               surveyed_on = CASE WHEN NEW.to_status = 'surveyed'
                   THEN coalesce(surveyed_on, (NEW.at AT TIME ZONE 'Europe/London')::date) ELSE surveyed_on END,
               terms_issued_on = CASE WHEN NEW.to_status = 'terms_issued'
                   THEN coalesce(terms_issued_on, (NEW.at AT TIME ZONE 'Europe/London')::date) ELSE terms_issued_on END,
               signed_on = CASE WHEN NEW.to_status = 'signed'
                   THEN coalesce(signed_on, (NEW.at AT TIME ZONE 'Europe/London')::date) ELSE signed_on END,
               live_on = CASE WHEN NEW.to_status = 'live'
                   THEN coalesce(live_on, (NEW.at AT TIME ZONE 'Europe/London')::date) ELSE live_on END
         WHERE id = NEW.wayleave_id;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER wayleave_events_apply AFTER INSERT ON wayleave_events
    FOR EACH ROW EXECUTE FUNCTION wayleave_events_apply();

-- Nothing else may move a wayleave: after any update its status is the latest event's.
CREATE FUNCTION wayleaves_status_follows_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last record;
BEGIN
    IF (NEW.status, NEW.status_since, NEW.resume_status)
       IS NOT DISTINCT FROM (OLD.status, OLD.status_since, OLD.resume_status) THEN
        RETURN NEW;
    END IF;
    SELECT to_status, at, resume_status INTO last FROM wayleave_events
     WHERE wayleave_id = NEW.id ORDER BY seq DESC LIMIT 1;
    IF (last.to_status, last.at, last.resume_status)
       IS DISTINCT FROM (NEW.status, NEW.status_since, NEW.resume_status) THEN
        RAISE EXCEPTION 'the status of wayleave % changes only by appending an event', NEW.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER wayleaves_status_follows_events BEFORE UPDATE ON wayleaves
    FOR EACH ROW EXECUTE FUNCTION wayleaves_status_follows_events();

-- A wayleave is created with its first event in the same transaction (checked at commit).
CREATE FUNCTION wayleaves_have_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM wayleave_events e JOIN wayleaves w ON w.id = e.wayleave_id
                   WHERE e.wayleave_id = NEW.id AND e.seq = 1) THEN
        RAISE EXCEPTION 'wayleave % was created without its first event', NEW.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER wayleaves_have_history AFTER INSERT ON wayleaves
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION wayleaves_have_history();

INSERT INTO data_versions (layer) VALUES ('wayleaves');
CREATE TRIGGER wayleaves_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON wayleaves
    FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version('wayleaves');
CREATE TRIGGER wayleave_site_assets_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON wayleave_site_assets
    FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version('wayleaves');

-- The map layer: no restricted column (notes, contacts) exists here, so features and tiles
-- cannot leak them. A site of mixed geometry types becomes points on its assets, since MVT
-- cannot carry a geometry collection. geom_3857 is computed, not stored: wayleave layers are
-- thousands of rows, not millions.
CREATE VIEW wayleave_features AS
SELECT w.id, w.site_id, s.name AS site_name, w.borough_code, w.operator, w.status, w.template,
       w.template_version, w.status_since,
       floor(extract(epoch FROM now() - w.status_since) / 86400)::integer AS days_in_status,
       g.geom, ST_Transform(g.geom, 3857) AS geom_3857
FROM wayleaves w
JOIN wayleave_sites s ON s.id = w.site_id
CROSS JOIN LATERAL (
    SELECT CASE WHEN count(DISTINCT ST_Dimension(a.geom)) = 1 THEN ST_Multi(ST_Collect(a.geom))
                ELSE ST_Multi(ST_Collect(ST_PointOnSurface(a.geom))) END AS geom
    FROM wayleave_site_assets sa JOIN assets a ON a.id = sa.asset_id
    WHERE sa.site_id = w.site_id
) g
WHERE g.geom IS NOT NULL;

-- For coverage: per asset, the most advanced status of its wayleaves and whether it can be
-- built on now (an agreement is signed, or rights imposed, and not expired). The order
-- repeats geo.wayleaves.PROGRESS; a test checks they agree.
CREATE VIEW asset_wayleave_status AS
SELECT sa.asset_id,
       (array_agg(w.status ORDER BY array_position(ARRAY[
           'live', 'installing', 'signed', 'rights_imposed', 'approved', 'tribunal', 'in_negotiation',
           'code_notice_served', 'terms_issued', 'surveyed', 'survey_scheduled', 'requested', 'identified',
           'on_hold', 'refused', 'withdrawn', 'expired']::text[], w.status)))[1] AS best_status,
       bool_or(w.status IN ('signed', 'installing', 'live', 'rights_imposed')) AS ready_now,
       count(*)::integer AS wayleaves
FROM wayleave_site_assets sa
JOIN wayleaves w ON w.site_id = sa.site_id
GROUP BY sa.asset_id;
