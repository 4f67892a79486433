-- Personal data: erasure everywhere (history, events and the audit trail included) through one
-- privileged function, and retention (raw upload files, row errors, premises points).
-- data/personal-data.md lists every field this reaches, and why it is held.

-- Case-insensitive, literal replacement of each needle by '[erased]'.
CREATE FUNCTION erase_text(t text, needles text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    needle text;
BEGIN
    IF t IS NULL THEN
        RETURN NULL;
    END IF;
    FOREACH needle IN ARRAY needles LOOP
        -- ***= makes the rest of the pattern a literal string (PostgreSQL's AREs).
        t := regexp_replace(t, '***=' || needle, '[erased]', 'gi');
    END LOOP;
    RETURN t;
END;
$$;

-- Whether a text holds one of the needles (case-insensitive).
CREATE FUNCTION holds_any(t text, needles text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT t IS NOT NULL AND EXISTS (SELECT 1 FROM unnest(needles) n WHERE strpos(lower(t), lower(n)) > 0)
$$;

-- The string values of a flat JSON object with the needles erased.
CREATE FUNCTION erase_json(j jsonb, needles text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(k, CASE WHEN jsonb_typeof(v) = 'string'
                                             THEN to_jsonb(erase_text(v #>> '{}', needles)) ELSE v END), '{}'::jsonb)
    FROM jsonb_each(j) AS e(k, v)
$$;

-- While an erasure runs, history triggers record nothing: a version or change row would keep
-- the very values being erased. (connectivity.erasing is set only inside gdpr_erase; the
-- service's role cannot update history rows whatever it sets.)
CREATE FUNCTION erasing() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('connectivity.erasing', true), '') = 'on'
$$;

DROP TRIGGER assets_history_on_update ON assets;
CREATE TRIGGER assets_history_on_update
    BEFORE UPDATE ON assets
    FOR EACH ROW
    WHEN (NOT erasing() AND
        (OLD.borough_code, OLD.kind, OLD.subtype, OLD.source_id, OLD.name, OLD.owner, OLD.status,
         OLD.height_m, OLD.power_available, OLD.power_source, OLD.duct_diameter_mm,
         OLD.duct_spare_capacity_pct, OLD.rooftop_access, OLD.listed_building,
         OLD.conservation_area, OLD.positional_accuracy_m, OLD.survey_quality, OLD.last_surveyed,
         OLD.provenance, OLD.extra, OLD.geom, OLD.retired_at)
        IS DISTINCT FROM
        (NEW.borough_code, NEW.kind, NEW.subtype, NEW.source_id, NEW.name, NEW.owner, NEW.status,
         NEW.height_m, NEW.power_available, NEW.power_source, NEW.duct_diameter_mm,
         NEW.duct_spare_capacity_pct, NEW.rooftop_access, NEW.listed_building,
         NEW.conservation_area, NEW.positional_accuracy_m, NEW.survey_quality, NEW.last_surveyed,
         NEW.provenance, NEW.extra, NEW.geom, NEW.retired_at))
    EXECUTE FUNCTION assets_keep_history();

DROP TRIGGER assets_keep_attribution ON assets;
CREATE TRIGGER assets_keep_attribution
    BEFORE UPDATE ON assets
    FOR EACH ROW
    WHEN (NOT erasing() AND
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

DROP TRIGGER pipeline_projects_history_on_update ON pipeline_projects;
CREATE TRIGGER pipeline_projects_history_on_update
    BEFORE UPDATE ON pipeline_projects
    FOR EACH ROW
    WHEN (NOT erasing() AND
        (OLD.pipeline_id, OLD.title, OLD.tags, OLD.content, OLD.created_by, OLD.created_on,
         OLD.modified_by, OLD.modified_on, OLD.project_start, OLD.project_end, OLD.estimated_time,
         OLD.status, OLD.phase, OLD.organisation, OLD.organisation_id, OLD.organisation_url,
         OLD.organisation_email, OLD.organisation_twitter, OLD.department, OLD.owner, OLD.owner_email,
         OLD.allow_external_collaboration, OLD.funding_band, OLD.collaboration_level, OLD.last_updated,
         OLD.borough_code, OLD.london_wide, OLD.placement, OLD.unplaced_reason, OLD.location)
        IS DISTINCT FROM
        (NEW.pipeline_id, NEW.title, NEW.tags, NEW.content, NEW.created_by, NEW.created_on,
         NEW.modified_by, NEW.modified_on, NEW.project_start, NEW.project_end, NEW.estimated_time,
         NEW.status, NEW.phase, NEW.organisation, NEW.organisation_id, NEW.organisation_url,
         NEW.organisation_email, NEW.organisation_twitter, NEW.department, NEW.owner, NEW.owner_email,
         NEW.allow_external_collaboration, NEW.funding_band, NEW.collaboration_level, NEW.last_updated,
         NEW.borough_code, NEW.london_wide, NEW.placement, NEW.unplaced_reason, NEW.location))
    EXECUTE FUNCTION pipeline_projects_keep_history();

DROP TRIGGER pipeline_projects_keep_attribution ON pipeline_projects;
CREATE TRIGGER pipeline_projects_keep_attribution
    BEFORE UPDATE ON pipeline_projects
    FOR EACH ROW
    WHEN (NOT erasing() AND
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

-- The wayleave details trigger (0007) records every edit with its old value: not an erasure's.
CREATE OR REPLACE FUNCTION wayleaves_record_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_row jsonb := to_jsonb(OLD);
    new_row jsonb := to_jsonb(NEW);
    col text;
    changed text[] := '{}';
    actor text := coalesce(nullif(current_setting('connectivity.actor', true), ''),
                           'database user ' || session_user);
BEGIN
    IF erasing() THEN
        RETURN NEW;
    END IF;
    FOREACH col IN ARRAY ARRAY['template', 'template_version', 'reference', 'operator_reference',
                               'expires_on', 'notes', 'contact_name', 'contact_email', 'contact_phone']
    LOOP
        IF old_row -> col IS DISTINCT FROM new_row -> col THEN
            changed := changed || col;
        END IF;
    END LOOP;
    IF cardinality(changed) = 0 THEN
        RETURN NEW;
    END IF;
    NEW.version := OLD.version + 1;
    INSERT INTO wayleave_changes (wayleave_id, version, by, field, old_value, new_value)
    SELECT NEW.id, NEW.version, actor, c, old_row ->> c, new_row ->> c FROM unnest(changed) AS c;
    RETURN NEW;
END;
$$;

-- Erase a person everywhere they appear: every value equal to or holding one of ``needles``
-- (an e-mail address, a name) becomes '[erased]' (or NULL where a field is the person alone),
-- in the current rows, their history, the wayleave events and changes, the upload errors, the
-- key labels and the audit trail. Runs as the owner (SECURITY DEFINER) with the erasure flag
-- that the append-only triggers let through; records the erasure itself in the audit trail,
-- with the counts and a digest of what was erased, never the values. Returns the counts.
CREATE FUNCTION gdpr_erase(needles text[], p_actor text, p_actor_key bigint, p_actor_role text, p_request text)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    counts jsonb := '{}';
    n bigint;
BEGIN
    IF cardinality(needles) = 0 OR EXISTS (SELECT 1 FROM unnest(needles) x WHERE length(x) < 3) THEN
        RAISE EXCEPTION 'erasure needs an e-mail address or a name of at least 3 characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM set_config('connectivity.erasing', 'on', true);

    UPDATE wayleaves SET
        contact_name = CASE WHEN holds_any(contact_name, needles) THEN NULL ELSE contact_name END,
        contact_email = CASE WHEN holds_any(contact_email, needles) THEN NULL ELSE contact_email END,
        contact_phone = CASE WHEN holds_any(contact_name, needles) OR holds_any(contact_email, needles)
                             THEN NULL ELSE contact_phone END,
        notes = erase_text(notes, needles),
        created_by = erase_text(created_by, needles)
    WHERE holds_any(contact_name, needles) OR holds_any(contact_email, needles) OR holds_any(notes, needles)
       OR holds_any(created_by, needles);
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('wayleaves', n);

    UPDATE wayleave_changes SET old_value = erase_text(old_value, needles), new_value = erase_text(new_value, needles),
                                by = erase_text(by, needles)
    WHERE holds_any(old_value, needles) OR holds_any(new_value, needles) OR holds_any(by, needles);
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('wayleave_changes', n);

    UPDATE wayleave_events SET note = erase_text(note, needles), by = erase_text(by, needles)
    WHERE holds_any(note, needles) OR holds_any(by, needles);
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('wayleave_events', n);

    UPDATE wayleave_sites SET created_by = erase_text(created_by, needles) WHERE holds_any(created_by, needles);

    UPDATE pipeline_projects SET
        owner = CASE WHEN holds_any(owner, needles) OR holds_any(owner_email, needles) THEN NULL ELSE owner END,
        owner_email = CASE WHEN holds_any(owner, needles) OR holds_any(owner_email, needles) THEN NULL ELSE owner_email END,
        created_by = erase_text(created_by, needles), modified_by = erase_text(modified_by, needles),
        organisation_email = erase_text(organisation_email, needles), content = erase_text(content, needles),
        changed_by = erase_text(changed_by, needles)
    WHERE holds_any(owner, needles) OR holds_any(owner_email, needles) OR holds_any(created_by, needles)
       OR holds_any(modified_by, needles) OR holds_any(organisation_email, needles) OR holds_any(content, needles)
       OR holds_any(changed_by, needles);
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('pipeline_projects', n);

    UPDATE pipeline_project_versions SET
        owner = CASE WHEN holds_any(owner, needles) OR holds_any(owner_email, needles) THEN NULL ELSE owner END,
        owner_email = CASE WHEN holds_any(owner, needles) OR holds_any(owner_email, needles) THEN NULL ELSE owner_email END,
        created_by = erase_text(created_by, needles), modified_by = erase_text(modified_by, needles),
        organisation_email = erase_text(organisation_email, needles), content = erase_text(content, needles),
        changed_by = erase_text(changed_by, needles)
    WHERE holds_any(owner, needles) OR holds_any(owner_email, needles) OR holds_any(created_by, needles)
       OR holds_any(modified_by, needles) OR holds_any(organisation_email, needles) OR holds_any(content, needles)
       OR holds_any(changed_by, needles);
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('pipeline_project_versions', n);

    UPDATE assets SET extra = erase_json(extra, needles), changed_by = erase_text(changed_by, needles)
    WHERE holds_any(extra::text, needles) OR holds_any(changed_by, needles);
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('assets', n);

    UPDATE asset_versions SET extra = erase_json(extra, needles), changed_by = erase_text(changed_by, needles)
    WHERE holds_any(extra::text, needles) OR holds_any(changed_by, needles);
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('asset_versions', n);

    UPDATE upload_errors SET value = erase_text(value, needles), source_id = erase_text(source_id, needles),
                             message = erase_text(message, needles)
    WHERE holds_any(value, needles) OR holds_any(source_id, needles) OR holds_any(message, needles);
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('upload_errors', n);

    UPDATE pipeline_import_errors SET value = erase_text(value, needles), source_id = erase_text(source_id, needles)
    WHERE holds_any(value, needles) OR holds_any(source_id, needles);
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('pipeline_import_errors', n);

    UPDATE uploads SET created_by = erase_text(created_by, needles), applied_by = erase_text(applied_by, needles),
                       file_name = erase_text(file_name, needles)
    WHERE holds_any(created_by, needles) OR holds_any(applied_by, needles) OR holds_any(file_name, needles);
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('uploads', n);

    UPDATE loads SET created_by = erase_text(created_by, needles), description = erase_text(description, needles)
    WHERE holds_any(created_by, needles) OR holds_any(description, needles);
    UPDATE coverage_reports SET created_by = erase_text(created_by, needles) WHERE holds_any(created_by, needles);
    UPDATE pipeline_imports SET created_by = erase_text(created_by, needles), file_name = erase_text(file_name, needles)
    WHERE holds_any(created_by, needles) OR holds_any(file_name, needles);
    UPDATE coverage_report_points SET label = '[erased]' WHERE holds_any(label, needles);

    UPDATE api_keys SET label = erase_text(label, needles) WHERE holds_any(label, needles);
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('api_keys', n);

    UPDATE audit_events SET actor = erase_text(actor, needles), details = erase_json(details, needles)
    WHERE holds_any(actor, needles) OR holds_any(details::text, needles);
    GET DIAGNOSTICS n = ROW_COUNT; counts := counts || jsonb_build_object('audit_events', n);

    PERFORM set_config('connectivity.erasing', 'off', true);
    INSERT INTO audit_events (actor, actor_key_id, actor_role, action, object_type, object_id, details, request_id)
    VALUES (p_actor, p_actor_key, p_actor_role, 'gdpr.erase', 'person',
            encode(sha256(convert_to(array_to_string(ARRAY(SELECT lower(x) FROM unnest(needles) x ORDER BY 1), '|'), 'UTF8')), 'hex'),
            jsonb_build_object('counts', counts), p_request);
    RETURN counts;
END;
$$;

-- Retention: when an upload's raw file was deleted, and when a report's premises were.
ALTER TABLE uploads ADD COLUMN file_deleted_at timestamptz;
ALTER TABLE coverage_reports ADD COLUMN points_purged_at timestamptz;
CREATE INDEX uploads_finished_idx ON uploads (finished_at) WHERE file_deleted_at IS NULL;
