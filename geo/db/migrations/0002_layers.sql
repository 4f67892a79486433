-- Map layers: data versions for ETags, and per-zoom summaries for low-zoom tiles.
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- One version per layer source, bumped by every statement that changes it. Tile and
-- feature ETags carry it, so caches never serve a layer older than its data. Statement-level
-- triggers cost one row update per statement, whatever the number of rows.
CREATE TABLE data_versions (
    layer text PRIMARY KEY,
    version bigint NOT NULL DEFAULT 1,
    changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO data_versions (layer) VALUES ('assets'), ('boroughs');

CREATE FUNCTION bump_data_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE data_versions SET version = version + 1, changed_at = now() WHERE layer = TG_ARGV[0];
    RETURN NULL;
END;
$$;
CREATE TRIGGER assets_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON assets
    FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version('assets');
CREATE TRIGGER boroughs_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON boroughs
    FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version('boroughs');

-- Point summaries below the raw-feature zoom: one row per zoom, grid cell (256 x 256 cells
-- per tile, about one pixel) and attribute combination, plus a roll-up row over all
-- attributes (borough_code, subtype and status NULL) that unfiltered tiles read.
-- Sums of Web Mercator coordinates give each cluster its centre of mass.
CREATE TABLE tile_point_summaries (
    kind text NOT NULL,
    z smallint NOT NULL,
    cx integer NOT NULL,
    cy integer NOT NULL,
    borough_code text,
    subtype text,
    status text,
    n integer NOT NULL,
    sx double precision NOT NULL,
    sy double precision NOT NULL
);
CREATE INDEX tile_point_summaries_idx ON tile_point_summaries (kind, z, cx, cy);

-- Line summaries: per zoom and tile, lines merged and simplified to about a pixel.
CREATE TABLE tile_line_summaries (
    kind text NOT NULL,
    z smallint NOT NULL,
    borough_code text,
    subtype text,
    status text,
    length_m double precision NOT NULL,
    n integer NOT NULL,
    geom geometry(Geometry, 3857) NOT NULL
);
-- (z, geom) in one GiST (btree_gist), so a tile reads only its own zoom's lines.
CREATE INDEX tile_line_summaries_gix ON tile_line_summaries USING gist (z, geom);

-- Which data version each kind's summaries were built from: low-zoom tiles carry it in their ETag.
CREATE TABLE tile_summary_builds (
    kind text PRIMARY KEY,
    built_from bigint NOT NULL,
    built_at timestamptz NOT NULL DEFAULT now()
);
