-- Which assets an upload touched, and how, is read from the data the import writes anyway
-- instead of from rows of its own: writing upload_assets cost ~5 s of a 28 s 500,000-row import.
--
-- Same facts, nothing lost: every write an upload makes to assets (geo.uploads._apply) sets
-- load_id to the upload's load (uploads.load_id): an insert makes version 1 ('new'); an update
-- of a changed asset sets retired_at NULL ('changed'); a retirement sets retired_at ('retired').
-- Each of those writes really changes the row, so the history trigger (0001) keeps the version
-- the upload wrote in asset_versions, load_id and retired_at included, when anything later
-- replaces or deletes it. Later API edits leave load_id as it was, so their versions carry the
-- upload's load too; the version the upload wrote is therefore the lowest one with its load_id.
-- One upload writes an asset at most once (new, changed and retired rows are disjoint), and
-- demo and other loads have no uploads row, so they never appear.
CREATE INDEX asset_versions_load_idx ON asset_versions (load_id);

ALTER TABLE upload_assets RENAME TO upload_assets_written;

-- upload_id and asset_id are the DISTINCT ON keys, so a filter on either is pushed into the
-- view: WHERE upload_id = $1 reads the load's rows through assets_load_idx and
-- asset_versions_load_idx; WHERE asset_id = $1 reads one asset's versions by primary key.
CREATE VIEW upload_assets AS
SELECT DISTINCT ON (u.id, w.asset_id)
       u.id AS upload_id,
       w.asset_id,
       CASE WHEN w.retired_at IS NOT NULL THEN 'retired'
            WHEN w.version = 1 THEN 'new'
            ELSE 'changed' END AS action
FROM uploads u
JOIN (SELECT id AS asset_id, version, load_id, retired_at FROM assets
      UNION ALL
      SELECT asset_id, version, load_id, retired_at FROM asset_versions) w ON w.load_id = u.load_id
ORDER BY u.id, w.asset_id, w.version;

-- The rows written so far must all be read back from the view before they go.
DO $$
DECLARE
    missing bigint;
BEGIN
    SELECT count(*) INTO missing FROM (
        SELECT upload_id, asset_id, action FROM upload_assets_written
        EXCEPT
        SELECT upload_id, asset_id, action FROM upload_assets) m;
    IF missing > 0 THEN
        RAISE EXCEPTION 'upload_assets: % row(s) would be lost: the view that replaces the table does not give them', missing
            USING HINT = 'nothing was changed; find them with the EXCEPT query of migration 0011 before migrating';
    END IF;
END;
$$;

DROP TABLE upload_assets_written;
