-- Borough uploads: every upload is recorded with its file, mapping, counts, errors and the
-- assets it touched, so each asset's provenance (assets.load_id -> loads -> uploads) leads
-- back to the file that wrote it.
CREATE TABLE uploads (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    borough_code text NOT NULL REFERENCES boroughs (code),
    kind text NOT NULL CHECK (kind IN ('public_building', 'street_furniture', 'duct')),
    mode text NOT NULL CHECK (mode IN ('append', 'replace')),
    dry_run boolean NOT NULL,
    skip_invalid boolean NOT NULL,
    layer text,
    mapping_spec jsonb,
    file_name text NOT NULL,
    file_path text NOT NULL,
    size_bytes bigint NOT NULL,
    sha256 text NOT NULL,
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'previewed', 'applied', 'rejected', 'failed')),
    progress_done bigint NOT NULL DEFAULT 0,
    progress_total bigint,
    format text,
    crs text,
    mapping jsonb,
    counts jsonb NOT NULL DEFAULT '{}',
    changed_fields jsonb NOT NULL DEFAULT '{}',
    report jsonb NOT NULL DEFAULT '{}',
    message text,
    load_id bigint REFERENCES loads (id),
    key_id bigint REFERENCES api_keys (id),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    applied_at timestamptz
);
CREATE INDEX uploads_borough_idx ON uploads (borough_code, id DESC);
CREATE INDEX uploads_sha_idx ON uploads (sha256);

CREATE TABLE upload_errors (
    upload_id bigint NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    seq integer NOT NULL,
    row_number bigint NOT NULL,
    source_id text,
    column_name text,
    value text,
    message text NOT NULL,
    geom geometry(Geometry, 27700),
    PRIMARY KEY (upload_id, seq)
);

CREATE TABLE upload_assets (
    upload_id bigint NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    asset_id bigint NOT NULL,
    action text NOT NULL CHECK (action IN ('new', 'changed', 'retired')),
    PRIMARY KEY (upload_id, asset_id)
);
CREATE INDEX upload_assets_asset_idx ON upload_assets (asset_id);
