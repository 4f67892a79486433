-- The rows of an upload's file for its preview map (GET /uploads/{id}/rows.geojson,
-- geo/uploads/row_map.py): the staged rows live in a temporary table that dies with the job's
-- transaction (a dry run rolls it back), so the job keeps here a bounded, evenly spaced sample of
-- its valid rows, one point each (the invalid rows' geometry is already in upload_errors).
-- A point in EPSG:27700 as two numbers: the map draws markers, and a point per row keeps a
-- 20,000-row sample near a megabyte whatever the file's geometry.
-- No foreign key, as in 0008: the rows are written in one binary COPY for an upload that exists
-- and is never deleted, by the one function that writes them (geo.uploads.row_map.store_rows);
-- a per-row key check would double the COPY's time. The retention purge deletes them.
CREATE TABLE upload_rows (
    upload_id bigint NOT NULL,
    row_number bigint NOT NULL,
    source_id text,
    x double precision NOT NULL,
    y double precision NOT NULL,
    PRIMARY KEY (upload_id, row_number)
);
