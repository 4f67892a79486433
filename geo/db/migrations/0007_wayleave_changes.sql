-- Edits of a wayleave's details (references, template version, expiry, notes, contact): every
-- change keeps the value it replaced. A trigger on wayleaves writes them, like asset_versions,
-- so no write path can forget: PATCH /wayleaves/{id}, the CLI, or SQL typed by hand. The
-- status and its key dates are not details: they move only by appending wayleave_events (0004).

CREATE TABLE wayleave_changes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wayleave_id bigint NOT NULL REFERENCES wayleaves (id),
    -- The wayleave's version this edit made: the fields changed by one edit share it.
    version integer NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    by text NOT NULL,
    -- The list repeats geo.wayleaves.EDITABLE; a test checks they agree.
    field text NOT NULL CHECK (field IN (
        'template', 'template_version', 'reference', 'operator_reference', 'expires_on', 'notes',
        'contact_name', 'contact_email', 'contact_phone')),
    -- As text: dates in ISO 8601 (YYYY-MM-DD); NULL when the field was or becomes empty.
    old_value text,
    new_value text,
    -- Also the index a wayleave's changes are read by.
    UNIQUE (wayleave_id, version, field),
    CHECK (old_value IS DISTINCT FROM new_value)
);

-- Changes are append-only.
CREATE FUNCTION wayleave_changes_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'wayleave changes are append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER wayleave_changes_no_update BEFORE UPDATE OR DELETE ON wayleave_changes
    FOR EACH ROW EXECUTE FUNCTION wayleave_changes_append_only();
CREATE TRIGGER wayleave_changes_no_truncate BEFORE TRUNCATE ON wayleave_changes
    FOR EACH STATEMENT EXECUTE FUNCTION wayleave_changes_append_only();

-- Any update of a detail bumps the version (so If-Match catches it) and records each changed
-- field. Who: the transaction's `connectivity.actor` setting (geo.wayleaves sets it to the key's
-- name), else the database user. Compared as jsonb so a date and its text agree (ISO 8601
-- whatever DateStyle is).
CREATE FUNCTION wayleaves_record_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_row jsonb := to_jsonb(OLD);
    new_row jsonb := to_jsonb(NEW);
    col text;
    changed text[] := '{}';
    actor text := coalesce(nullif(current_setting('connectivity.actor', true), ''),
                           'database user ' || session_user);
BEGIN
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
CREATE TRIGGER wayleaves_record_changes BEFORE UPDATE ON wayleaves
    FOR EACH ROW EXECUTE FUNCTION wayleaves_record_changes();
