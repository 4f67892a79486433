-- Personal data: erasure everywhere (history, events and the audit trail included) through one
-- privileged function, and retention (raw upload files, row errors, premises points).
-- data/personal-data.md lists every field this reaches, and why it is held.

-- A needle as a case-insensitive regular expression that matches it as a whole word (or a whole
-- address): "Ann" finds "Ann Smith", not "Joanne" or "Annual"; "jo@x.org" not "mojo@x.org".
-- Every character but letters, digits and spaces is escaped, so the needle is taken literally.
CREATE FUNCTION needle_pattern(needle text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT '(?:^|(?<![[:alnum:]_.@+-]))' || regexp_replace(needle, '([^[:alnum:][:space:]])', '\\\1', 'g')
           || '(?![[:alnum:]_@])'
$$;

-- Each whole-word occurrence of each needle replaced by '[erased]'.
CREATE FUNCTION erase_text(t text, needles text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    needle text;
BEGIN
    IF t IS NULL THEN
        RETURN NULL;
    END IF;
    FOREACH needle IN ARRAY needles LOOP
        t := regexp_replace(t, needle_pattern(needle), '[erased]', 'gi');
    END LOOP;
    RETURN t;
END;
$$;

-- Whether a text holds one of the needles as a whole word (case-insensitive).
CREATE FUNCTION holds_any(t text, needles text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT t IS NOT NULL AND EXISTS (SELECT 1 FROM unnest(needles) n WHERE t ~* needle_pattern(n))
$$;

-- The string values of a flat JSON object with the needles erased.
CREATE FUNCTION erase_json(j jsonb, needles text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(k, CASE WHEN jsonb_typeof(v) = 'string'
                                             THEN to_jsonb(erase_text(v #>> '{}', needles)) ELSE v END), '{}'::jsonb)
    FROM jsonb_each(j) AS e(k, v)
$$;

-- Erase a person everywhere they appear: every value equal to or holding one of ``needles``
-- (an e-mail address, a name) becomes '[erased]' (or NULL where a field is the person alone),
-- in the current rows, their history, the wayleave events and changes, the upload errors, the
-- key labels and the audit trail. Runs as the owner (SECURITY DEFINER), which switches off, for
-- this transaction only, the triggers that would refuse the change (append-only tables) or keep
-- the very values being erased (history, attribution, the record of wayleave edits); records
-- the erasure itself in the audit trail, with the counts and a digest of what was erased, never
-- the values. Returns the counts.
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
    ALTER TABLE assets DISABLE TRIGGER assets_history_on_update, DISABLE TRIGGER assets_keep_attribution;
    ALTER TABLE asset_versions DISABLE TRIGGER asset_versions_append_only;
    ALTER TABLE pipeline_projects DISABLE TRIGGER pipeline_projects_history_on_update,
        DISABLE TRIGGER pipeline_projects_keep_attribution;
    ALTER TABLE pipeline_project_versions DISABLE TRIGGER pipeline_project_versions_append_only;
    ALTER TABLE wayleaves DISABLE TRIGGER wayleaves_record_changes;
    ALTER TABLE wayleave_changes DISABLE TRIGGER wayleave_changes_no_update;
    ALTER TABLE wayleave_events DISABLE TRIGGER wayleave_events_no_update;
    ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only;

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

    ALTER TABLE assets ENABLE TRIGGER assets_history_on_update, ENABLE TRIGGER assets_keep_attribution;
    ALTER TABLE asset_versions ENABLE TRIGGER asset_versions_append_only;
    ALTER TABLE pipeline_projects ENABLE TRIGGER pipeline_projects_history_on_update,
        ENABLE TRIGGER pipeline_projects_keep_attribution;
    ALTER TABLE pipeline_project_versions ENABLE TRIGGER pipeline_project_versions_append_only;
    ALTER TABLE wayleaves ENABLE TRIGGER wayleaves_record_changes;
    ALTER TABLE wayleave_changes ENABLE TRIGGER wayleave_changes_no_update;
    ALTER TABLE wayleave_events ENABLE TRIGGER wayleave_events_no_update;
    ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only;
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
