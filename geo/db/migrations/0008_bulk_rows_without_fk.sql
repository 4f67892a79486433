-- Two tables written in bulk, hundreds of thousands of rows in one statement, for a parent row
-- that exists and is never deleted: a report's points (one binary COPY, for its report) and an
-- upload's assets (one INSERT ... SELECT, for its upload). Their foreign keys checked each row
-- with a query of its own: 60 % of the report COPY's time and a quarter of a 500,000-row
-- import's. The rows are tied to their parent by the one function that writes them
-- (geo.coverage_reports.store_result, geo.uploads._apply), in the parent's transaction.
ALTER TABLE coverage_report_points DROP CONSTRAINT coverage_report_points_report_id_fkey;
ALTER TABLE upload_assets DROP CONSTRAINT upload_assets_upload_id_fkey;
