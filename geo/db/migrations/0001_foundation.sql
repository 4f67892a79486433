-- Foundation: boroughs, vocabularies, loads, assets with full history, API keys.
CREATE EXTENSION IF NOT EXISTS postgis;

CREATE TABLE boroughs (
    code text PRIMARY KEY CHECK (code ~ '^E090000(0[1-9]|[12][0-9]|3[0-3])$'),
    name text NOT NULL UNIQUE,
    inner_london boolean NOT NULL,
    geom geometry(MultiPolygon, 27700) NOT NULL CHECK (ST_IsValid(geom)),
    -- ST_Transform is IMMUTABLE in PostGIS 3, so Web Mercator can be a stored column for tiles.
    geom_3857 geometry(MultiPolygon, 3857) GENERATED ALWAYS AS (ST_Transform(geom, 3857)) STORED
);
CREATE INDEX boroughs_geom_gix ON boroughs USING gist (geom);
CREATE INDEX boroughs_geom_3857_gix ON boroughs USING gist (geom_3857);

-- Vocabularies are synced from data/asset_model.yaml after the migrations run
-- (geo.model.sync_vocabularies), so the YAML stays the one source. Codes are only ever
-- added, never removed.
CREATE TABLE asset_subtypes (
    kind text NOT NULL,
    code text NOT NULL,
    label text NOT NULL,
    PRIMARY KEY (kind, code)
);
CREATE TABLE asset_statuses (
    code text PRIMARY KEY,
    label text NOT NULL,
    usable boolean NOT NULL
);

-- Every bulk write (demo load, upload, CLI import) is a load; assets point at
-- the load that created or last changed them.
CREATE TABLE loads (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL CHECK (source IN ('demo', 'upload', 'api', 'cli')),
    description text NOT NULL,
    synthetic boolean NOT NULL DEFAULT false,
    borough_code text REFERENCES boroughs (code),
    created_by text NOT NULL DEFAULT 'system',
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    details jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE assets (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- No foreign keys on this table: their per-row triggers tripled the cost of bulk
    -- imports. Codes are checked by CHECK constraints instead; the subtype and status
    -- constraints are generated from data/asset_model.yaml by geo.model.sync_vocabularies.
    borough_code text NOT NULL CHECK (borough_code ~ '^E090000(0[1-9]|[12][0-9]|3[0-3])$'),
    kind text NOT NULL CHECK (kind IN ('public_building', 'street_furniture', 'duct')),
    subtype text NOT NULL,
    source_id text NOT NULL CHECK (source_id <> ''),
    name text,
    owner text,
    status text NOT NULL DEFAULT 'unknown',
    height_m double precision CHECK (height_m > 0 AND height_m <= 400),
    power_available boolean,
    power_source text CHECK (power_source IN
        ('unmetered_supply', 'metered_supply', 'feeder_pillar', 'building_supply', 'none')),
    duct_diameter_mm double precision CHECK (duct_diameter_mm > 0 AND duct_diameter_mm <= 2000),
    duct_spare_capacity_pct double precision CHECK (duct_spare_capacity_pct BETWEEN 0 AND 100),
    rooftop_access boolean,
    listed_building boolean,
    conservation_area boolean,
    positional_accuracy_m double precision CHECK (positional_accuracy_m >= 0),
    survey_quality text CHECK (survey_quality IN ('QL-A', 'QL-B', 'QL-C', 'QL-D')),
    last_surveyed date,
    provenance text,
    load_id bigint,
    extra jsonb NOT NULL DEFAULT '{}',
    geom geometry(Geometry, 27700) NOT NULL CHECK (NOT ST_IsEmpty(geom)),
    geom_3857 geometry(Geometry, 3857) GENERATED ALWAYS AS (ST_Transform(geom, 3857)) STORED,
    version integer NOT NULL DEFAULT 1,
    valid_from timestamptz NOT NULL DEFAULT now(),
    changed_by text NOT NULL DEFAULT 'system',
    retired_at timestamptz,
    CHECK (CASE kind WHEN 'duct' THEN GeometryType(geom) IN ('LINESTRING', 'MULTILINESTRING')
                     ELSE GeometryType(geom) IN ('POINT', 'POLYGON', 'MULTIPOLYGON') END)
);
-- Re-uploads match on the borough's own identifier.
CREATE UNIQUE INDEX assets_source_key ON assets (borough_code, kind, source_id);
CREATE INDEX assets_geom_gix ON assets USING gist (geom);
CREATE INDEX assets_geom_3857_gix ON assets USING gist (geom_3857);
CREATE INDEX assets_load_idx ON assets (load_id);

-- The versions an asset replaced: [valid_from, valid_to) is when each was current.
CREATE TABLE asset_versions (
    asset_id bigint NOT NULL,
    version integer NOT NULL,
    borough_code text NOT NULL,
    kind text NOT NULL,
    subtype text NOT NULL,
    source_id text NOT NULL,
    name text,
    owner text,
    status text NOT NULL,
    height_m double precision,
    power_available boolean,
    power_source text,
    duct_diameter_mm double precision,
    duct_spare_capacity_pct double precision,
    rooftop_access boolean,
    listed_building boolean,
    conservation_area boolean,
    positional_accuracy_m double precision,
    survey_quality text,
    last_surveyed date,
    provenance text,
    load_id bigint,
    extra jsonb NOT NULL,
    geom geometry(Geometry, 27700) NOT NULL,
    valid_from timestamptz NOT NULL,
    valid_to timestamptz NOT NULL,
    changed_by text NOT NULL,
    retired_at timestamptz,
    replaced_by text NOT NULL CHECK (replaced_by IN ('update', 'delete')),
    PRIMARY KEY (asset_id, version)
);

-- History is kept by the database itself, so no write path can forget it.
CREATE FUNCTION assets_keep_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO asset_versions (
        asset_id, version, borough_code, kind, subtype, source_id, name, owner, status, height_m,
        power_available, power_source, duct_diameter_mm, duct_spare_capacity_pct, rooftop_access,
        listed_building, conservation_area, positional_accuracy_m, survey_quality, last_surveyed,
        provenance, load_id, extra, geom, valid_from, valid_to, changed_by, retired_at, replaced_by)
    VALUES (
        OLD.id, OLD.version, OLD.borough_code, OLD.kind, OLD.subtype, OLD.source_id, OLD.name, OLD.owner,
        OLD.status, OLD.height_m, OLD.power_available, OLD.power_source, OLD.duct_diameter_mm,
        OLD.duct_spare_capacity_pct, OLD.rooftop_access, OLD.listed_building, OLD.conservation_area,
        OLD.positional_accuracy_m, OLD.survey_quality, OLD.last_surveyed, OLD.provenance, OLD.load_id,
        OLD.extra, OLD.geom, OLD.valid_from, now(), OLD.changed_by, OLD.retired_at, lower(TG_OP));
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    NEW.id := OLD.id;
    NEW.version := OLD.version + 1;
    NEW.valid_from := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER assets_history_on_update
    BEFORE UPDATE ON assets
    FOR EACH ROW
    -- A write that changes nothing makes no version. (Generated columns are not yet
    -- computed in a BEFORE trigger, so the comparison lists the stored data columns.)
    WHEN (
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
CREATE TRIGGER assets_history_on_delete
    BEFORE DELETE ON assets
    FOR EACH ROW
    EXECUTE FUNCTION assets_keep_history();

CREATE TABLE api_keys (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    prefix text NOT NULL UNIQUE,
    key_hash text NOT NULL UNIQUE,
    role text NOT NULL CHECK (role IN ('admin', 'borough', 'operator')),
    borough_code text REFERENCES boroughs (code),
    label text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz,
    CHECK ((role = 'borough') = (borough_code IS NOT NULL))
);
