-- Coverage reports: the request (normalised parameters), the data it was computed from,
-- its state and progress, and every result needed to serve the downloads again without
-- recomputing. Results are kept per report, so a report stays readable (and comparable)
-- after the assets change.
CREATE TABLE coverage_reports (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Normalised (sorted lists, defaults filled in, floats as floats), so equal requests
    -- compare equal with = on jsonb.
    parameters jsonb NOT NULL,
    -- The asset (and wayleave) data versions from data_versions, and the demand source.
    data_version jsonb NOT NULL DEFAULT '{}',
    state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
    progress_done bigint NOT NULL DEFAULT 0,
    progress_total bigint,
    summary jsonb,
    timings jsonb NOT NULL DEFAULT '{}',
    message text,
    -- The area, in EPSG:27700, for maps and re-runs.
    area geometry(Geometry, 27700),
    created_by text NOT NULL,
    key_id bigint REFERENCES api_keys (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz
);
CREATE INDEX coverage_reports_parameters_idx ON coverage_reports USING hash (parameters);
CREATE INDEX coverage_reports_created_idx ON coverage_reports (id DESC);

-- Demand points ('demand': postcodes, premises) and grid cells ('cell'), one row each.
-- When the demand is the grid itself it is stored once, as cells. distance_m is NULL when
-- no qualifying asset lies within the largest threshold.
CREATE TABLE coverage_report_points (
    report_id bigint NOT NULL REFERENCES coverage_reports (id) ON DELETE CASCADE,
    layer text NOT NULL CHECK (layer IN ('demand', 'cell')),
    seq integer NOT NULL,
    -- The postcode or premises id; NULL for cells, named by their lower-left corner when read.
    label text,
    x double precision NOT NULL,
    y double precision NOT NULL,
    borough_code text,
    households double precision NOT NULL,
    area_m2 double precision,
    distance_m double precision,
    asset_id bigint,
    PRIMARY KEY (report_id, layer, seq)
);

CREATE TABLE coverage_report_gaps (
    report_id bigint NOT NULL REFERENCES coverage_reports (id) ON DELETE CASCADE,
    gap_id integer NOT NULL,
    cells integer NOT NULL,
    area_m2 double precision NOT NULL,
    households double precision NOT NULL,
    geom geometry(Geometry, 27700) NOT NULL,
    PRIMARY KEY (report_id, gap_id)
);

CREATE TABLE coverage_report_priorities (
    report_id bigint NOT NULL REFERENCES coverage_reports (id) ON DELETE CASCADE,
    rank integer NOT NULL,
    asset_id bigint NOT NULL,
    kind text,
    status text,
    x double precision,
    y double precision,
    gain double precision NOT NULL,
    cumulative double precision NOT NULL,
    covered_households double precision NOT NULL,
    household_share double precision,
    PRIMARY KEY (report_id, rank)
);
