-- Service workers keep the data versions they read (tile ETags and cache keys) and drop them
-- on a notice (geo/versions.py): every statement that changes a layer's version or a summary
-- build says so on the channel data_versions. Notices are sent at commit, none on rollback.
CREATE FUNCTION notify_data_versions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('data_versions', TG_TABLE_NAME);
    RETURN NULL;
END;
$$;

CREATE TRIGGER data_versions_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON data_versions
    FOR EACH STATEMENT EXECUTE FUNCTION notify_data_versions();
CREATE TRIGGER tile_summary_builds_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tile_summary_builds
    FOR EACH STATEMENT EXECUTE FUNCTION notify_data_versions();
