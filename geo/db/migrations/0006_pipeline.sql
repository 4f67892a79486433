-- LocalGov Digital Pipeline projects: imported from Pipeline's JSON or CSV export, placed
-- by their organisation through the gazetteer (data/london_organisations.yaml) unless an
-- explicit location is set, with full history, import records and a map view without
-- personal data.

CREATE TABLE pipeline_projects (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Pipeline's own id; NULL for rows of the id-less CSV export, which match on
    -- organisation and title instead (pipeline_projects_csv_key below).
    pipeline_id integer UNIQUE,
    title text NOT NULL CHECK (title <> ''),
    tags text[] NOT NULL DEFAULT '{}',
    content text,
    created_by text,
    created_on timestamptz,
    modified_by text,
    modified_on timestamptz,
    project_start date,
    project_end date,
    estimated_time text,
    status text CHECK (status IN ('Concept', 'Discovery', 'Alpha', 'Beta', 'Live', 'Decommissioned')),
    phase text CHECK (phase IN ('Discover', 'Prototype', 'Build', 'Improve')),
    organisation text NOT NULL DEFAULT '',
    organisation_id integer,
    organisation_url text,
    organisation_email text,
    organisation_twitter text,
    department text,
    -- Personal data: admins only (geo.pipeline.redact); never in pipeline_features.
    owner text,
    owner_email text,
    allow_external_collaboration boolean,
    funding_band text,
    collaboration_level text,
    last_updated timestamptz,
    -- Placement, worked out by geo.gazetteer at import (or from the explicit location).
    borough_code text CHECK (borough_code ~ '^E090000(0[1-9]|[12][0-9]|3[0-3])$'),
    london_wide boolean NOT NULL DEFAULT false,
    placement text NOT NULL DEFAULT 'unplaced' CHECK (placement IN ('exact', 'borough', 'london', 'unplaced')),
    unplaced_reason text,
    -- The project's site, when known (API or a location column of the import): overrides the organisation.
    location geometry(Geometry, 27700) CHECK (location IS NULL OR (ST_IsValid(location) AND NOT ST_IsEmpty(location))),
    -- What the map draws: the location; for borough-wide projects a point inside the borough
    -- (deterministic per project, so they spread instead of piling on one point); NULL for
    -- London-wide and unplaced projects (no honest point to draw). Set by the trigger below.
    geom geometry(Geometry, 27700),
    geom_3857 geometry(Geometry, 3857) GENERATED ALWAYS AS (ST_Transform(geom, 3857)) STORED,
    source text NOT NULL CHECK (source IN ('json', 'csv', 'api')),
    import_id bigint,
    version integer NOT NULL DEFAULT 1,
    valid_from timestamptz NOT NULL DEFAULT now(),
    changed_by text NOT NULL DEFAULT 'system',
    CHECK ((placement = 'exact') = (location IS NOT NULL)),
    -- london_wide says what the organisation is; a London-wide body's project may still have a site.
    CHECK ((placement = 'london') <= london_wide),
    CHECK ((placement = 'borough') <= (borough_code IS NOT NULL)),
    CHECK ((placement = 'unplaced') = (unplaced_reason IS NOT NULL)),
    CHECK (project_end IS NULL OR project_start IS NULL OR project_end >= project_start)
);
CREATE UNIQUE INDEX pipeline_projects_csv_key
    ON pipeline_projects (lower(organisation), lower(title)) WHERE pipeline_id IS NULL;
CREATE INDEX pipeline_projects_org_title_idx ON pipeline_projects (lower(organisation), lower(title));
CREATE INDEX pipeline_projects_borough_idx ON pipeline_projects (borough_code);
CREATE INDEX pipeline_projects_tags_gin ON pipeline_projects USING gin (tags);
CREATE INDEX pipeline_projects_location_gix ON pipeline_projects USING gist (location);
CREATE INDEX pipeline_projects_geom_gix ON pipeline_projects USING gist (geom);
CREATE INDEX pipeline_projects_geom_3857_gix ON pipeline_projects USING gist (geom_3857);

-- The display geometry follows the placement; computed here so every write path (import,
-- API, SQL) agrees. ST_GeneratePoints with a seed is deterministic: the same project gets
-- the same point in every run, and projects of one borough scatter over it.
CREATE FUNCTION pipeline_projects_display() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.placement = 'exact' THEN
        NEW.geom := NEW.location;
    ELSIF NEW.placement = 'borough' THEN
        IF TG_OP = 'UPDATE' AND OLD.placement = 'borough' AND OLD.borough_code = NEW.borough_code
           AND OLD.geom IS NOT NULL THEN
            NEW.geom := OLD.geom;
        ELSE
            SELECT ST_GeometryN(ST_GeneratePoints(b.geom, 1, (NEW.id % 2000000000 + 1)::integer), 1)
              INTO NEW.geom FROM boroughs b WHERE b.code = NEW.borough_code;
        END IF;
    ELSE
        NEW.geom := NULL;
    END IF;
    RETURN NEW;
END;
$$;
-- Named to sort before the history trigger (BEFORE triggers fire in name order).
CREATE TRIGGER pipeline_projects_a_display BEFORE INSERT OR UPDATE ON pipeline_projects
    FOR EACH ROW EXECUTE FUNCTION pipeline_projects_display();

-- The versions a project replaced: [valid_from, valid_to) is when each was current.
CREATE TABLE pipeline_project_versions (
    project_id bigint NOT NULL,
    version integer NOT NULL,
    pipeline_id integer,
    title text NOT NULL,
    tags text[] NOT NULL,
    content text,
    created_by text,
    created_on timestamptz,
    modified_by text,
    modified_on timestamptz,
    project_start date,
    project_end date,
    estimated_time text,
    status text,
    phase text,
    organisation text NOT NULL,
    organisation_id integer,
    organisation_url text,
    organisation_email text,
    organisation_twitter text,
    department text,
    owner text,
    owner_email text,
    allow_external_collaboration boolean,
    funding_band text,
    collaboration_level text,
    last_updated timestamptz,
    borough_code text,
    london_wide boolean NOT NULL,
    placement text NOT NULL,
    unplaced_reason text,
    location geometry(Geometry, 27700),
    source text NOT NULL,
    import_id bigint,
    valid_from timestamptz NOT NULL,
    valid_to timestamptz NOT NULL,
    changed_by text NOT NULL,
    replaced_by text NOT NULL CHECK (replaced_by IN ('update', 'delete')),
    PRIMARY KEY (project_id, version)
);

CREATE FUNCTION pipeline_projects_keep_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pipeline_project_versions (
        project_id, version, pipeline_id, title, tags, content, created_by, created_on, modified_by,
        modified_on, project_start, project_end, estimated_time, status, phase, organisation,
        organisation_id, organisation_url, organisation_email, organisation_twitter, department, owner,
        owner_email, allow_external_collaboration, funding_band, collaboration_level, last_updated,
        borough_code, london_wide, placement, unplaced_reason, location, source, import_id, valid_from,
        valid_to, changed_by, replaced_by)
    VALUES (
        OLD.id, OLD.version, OLD.pipeline_id, OLD.title, OLD.tags, OLD.content, OLD.created_by,
        OLD.created_on, OLD.modified_by, OLD.modified_on, OLD.project_start, OLD.project_end,
        OLD.estimated_time, OLD.status, OLD.phase, OLD.organisation, OLD.organisation_id,
        OLD.organisation_url, OLD.organisation_email, OLD.organisation_twitter, OLD.department, OLD.owner,
        OLD.owner_email, OLD.allow_external_collaboration, OLD.funding_band, OLD.collaboration_level,
        OLD.last_updated, OLD.borough_code, OLD.london_wide, OLD.placement, OLD.unplaced_reason,
        OLD.location, OLD.source, OLD.import_id, OLD.valid_from, now(), OLD.changed_by, lower(TG_OP));
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    NEW.id := OLD.id;
    NEW.version := OLD.version + 1;
    NEW.valid_from := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER pipeline_projects_history_on_update
    BEFORE UPDATE ON pipeline_projects
    FOR EACH ROW
    -- A write that changes nothing makes no version (geom is derived, source/import_id/changed_by
    -- are bookkeeping: none of them alone is a change).
    WHEN (
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
CREATE TRIGGER pipeline_projects_history_on_delete
    BEFORE DELETE ON pipeline_projects
    FOR EACH ROW
    EXECUTE FUNCTION pipeline_projects_keep_history();

INSERT INTO data_versions (layer) VALUES ('pipeline');
CREATE TRIGGER pipeline_projects_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pipeline_projects
    FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version('pipeline');

-- Every import of a Pipeline file, with its counts and row errors (the same columns as
-- upload_errors, so reports read alike).
CREATE TABLE pipeline_imports (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    file_name text NOT NULL,
    sha256 text NOT NULL,
    size_bytes bigint NOT NULL,
    format text NOT NULL CHECK (format IN ('json', 'csv')),
    dry_run boolean NOT NULL DEFAULT false,
    skip_invalid boolean NOT NULL DEFAULT false,
    state text NOT NULL DEFAULT 'running'
        CHECK (state IN ('running', 'previewed', 'applied', 'rejected', 'failed')),
    -- rows, valid, invalid, errors, new, changed, unchanged, unplaced.
    counts jsonb NOT NULL DEFAULT '{}',
    message text,
    key_id bigint REFERENCES api_keys (id),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX pipeline_imports_sha_idx ON pipeline_imports (sha256);

CREATE TABLE pipeline_import_errors (
    import_id bigint NOT NULL REFERENCES pipeline_imports (id) ON DELETE CASCADE,
    seq integer NOT NULL,
    row_number bigint NOT NULL,
    source_id text,
    column_name text,
    value text,
    message text NOT NULL,
    PRIMARY KEY (import_id, seq)
);

-- The map layer: no owner, owner_email, created_by, modified_by or changed_by (personal data
-- or internal), so neither the features API nor the tiles can ever serve them. Tags also come
-- as one comma-separated text, which vector tiles can carry (they have no array type).
CREATE VIEW pipeline_features AS
SELECT id, pipeline_id, title, status, phase, tags, array_to_string(tags, ', ') AS tags_text,
       organisation, department, borough_code, london_wide, placement, project_start, project_end,
       estimated_time, funding_band, collaboration_level, allow_external_collaboration, last_updated,
       version, valid_from, geom, geom_3857
FROM pipeline_projects
WHERE geom IS NOT NULL;
