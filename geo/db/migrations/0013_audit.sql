-- An audit trail of every write, and history that a write changing nothing leaves alone.
--
-- audit_events: who (the API key's id and label, or the CLI's operating-system user), when,
-- what (action, object type and id) and the change (field names and versions, or a reference
-- to the history row that holds the values). Written by geo/audit.py in the same transaction
-- as the write it records, so one never commits without the other. Append-only: the service's
-- role may only insert and read it (geo/database.py), and this trigger refuses any change; the
-- erasure of personal data runs through gdpr_erase (0015), which records itself here.
CREATE TABLE audit_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor text NOT NULL CHECK (actor <> ''),
    actor_key_id bigint,
    actor_role text,
    action text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
    object_type text NOT NULL,
    object_id text,
    details jsonb NOT NULL DEFAULT '{}',
    request_id text
);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_key_id, id);
CREATE INDEX audit_events_object_idx ON audit_events (object_type, object_id, id);
CREATE INDEX audit_events_action_idx ON audit_events (action, id);
CREATE INDEX audit_events_at_idx ON audit_events (at);

-- One function for every append-only table. Only the erasure of personal data changes their
-- rows: gdpr_erase (0015), which runs as the tables' owner and switches these triggers off for
-- its own transaction; the service's role may do neither.
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- History tables are append-only too (wayleave events and changes already were, 0004/0007:
-- they move to the same function, so the erasure path passes them as well).
DROP TRIGGER wayleave_events_no_update ON wayleave_events;
DROP TRIGGER wayleave_events_no_truncate ON wayleave_events;
CREATE TRIGGER wayleave_events_no_update BEFORE UPDATE OR DELETE ON wayleave_events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER wayleave_events_no_truncate BEFORE TRUNCATE ON wayleave_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
DROP TRIGGER wayleave_changes_no_update ON wayleave_changes;
DROP TRIGGER wayleave_changes_no_truncate ON wayleave_changes;
CREATE TRIGGER wayleave_changes_no_update BEFORE UPDATE OR DELETE ON wayleave_changes
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER wayleave_changes_no_truncate BEFORE TRUNCATE ON wayleave_changes
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
DROP FUNCTION wayleave_events_append_only();
DROP FUNCTION wayleave_changes_append_only();
CREATE TRIGGER asset_versions_append_only BEFORE UPDATE OR DELETE ON asset_versions
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER asset_versions_no_truncate BEFORE TRUNCATE ON asset_versions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER pipeline_project_versions_append_only BEFORE UPDATE OR DELETE ON pipeline_project_versions
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER pipeline_project_versions_no_truncate BEFORE TRUNCATE ON pipeline_project_versions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- A write that changes no data keeps the record of who last changed it: the history trigger
-- (0001) makes no version then, and this one keeps changed_by, load_id and valid_from as they
-- were, so no write path can re-attribute a version it did not make.
CREATE FUNCTION assets_keep_attribution() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed_by := OLD.changed_by;
    NEW.load_id := OLD.load_id;
    NEW.valid_from := OLD.valid_from;
    NEW.version := OLD.version;
    RETURN NEW;
END;
$$;
CREATE TRIGGER assets_keep_attribution
    BEFORE UPDATE ON assets
    FOR EACH ROW
    WHEN (
        (OLD.borough_code, OLD.kind, OLD.subtype, OLD.source_id, OLD.name, OLD.owner, OLD.status,
         OLD.height_m, OLD.power_available, OLD.power_source, OLD.duct_diameter_mm,
         OLD.duct_spare_capacity_pct, OLD.rooftop_access, OLD.listed_building,
         OLD.conservation_area, OLD.positional_accuracy_m, OLD.survey_quality, OLD.last_surveyed,
         OLD.provenance, OLD.extra, OLD.geom, OLD.retired_at)
        IS NOT DISTINCT FROM
        (NEW.borough_code, NEW.kind, NEW.subtype, NEW.source_id, NEW.name, NEW.owner, NEW.status,
         NEW.height_m, NEW.power_available, NEW.power_source, NEW.duct_diameter_mm,
         NEW.duct_spare_capacity_pct, NEW.rooftop_access, NEW.listed_building,
         NEW.conservation_area, NEW.positional_accuracy_m, NEW.survey_quality, NEW.last_surveyed,
         NEW.provenance, NEW.extra, NEW.geom, NEW.retired_at))
    EXECUTE FUNCTION assets_keep_attribution();

CREATE FUNCTION pipeline_projects_keep_attribution() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed_by := OLD.changed_by;
    NEW.source := OLD.source;
    NEW.import_id := OLD.import_id;
    NEW.valid_from := OLD.valid_from;
    NEW.version := OLD.version;
    RETURN NEW;
END;
$$;
CREATE TRIGGER pipeline_projects_keep_attribution
    BEFORE UPDATE ON pipeline_projects
    FOR EACH ROW
    WHEN (
        (OLD.pipeline_id, OLD.title, OLD.tags, OLD.content, OLD.created_by, OLD.created_on,
         OLD.modified_by, OLD.modified_on, OLD.project_start, OLD.project_end, OLD.estimated_time,
         OLD.status, OLD.phase, OLD.organisation, OLD.organisation_id, OLD.organisation_url,
         OLD.organisation_email, OLD.organisation_twitter, OLD.department, OLD.owner, OLD.owner_email,
         OLD.allow_external_collaboration, OLD.funding_band, OLD.collaboration_level, OLD.last_updated,
         OLD.borough_code, OLD.london_wide, OLD.placement, OLD.unplaced_reason, OLD.location)
        IS NOT DISTINCT FROM
        (NEW.pipeline_id, NEW.title, NEW.tags, NEW.content, NEW.created_by, NEW.created_on,
         NEW.modified_by, NEW.modified_on, NEW.project_start, NEW.project_end, NEW.estimated_time,
         NEW.status, NEW.phase, NEW.organisation, NEW.organisation_id, NEW.organisation_url,
         NEW.organisation_email, NEW.organisation_twitter, NEW.department, NEW.owner, NEW.owner_email,
         NEW.allow_external_collaboration, NEW.funding_band, NEW.collaboration_level, NEW.last_updated,
         NEW.borough_code, NEW.london_wide, NEW.placement, NEW.unplaced_reason, NEW.location))
    EXECUTE FUNCTION pipeline_projects_keep_attribution();

-- API keys: an expiry, and when a key's secret was last replaced.
ALTER TABLE api_keys ADD COLUMN expires_at timestamptz, ADD COLUMN rotated_at timestamptz;
