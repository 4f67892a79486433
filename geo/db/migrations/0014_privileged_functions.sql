-- What the service's role may not do itself, done by functions of the schema's owner that do
-- one thing and check that it is due (SECURITY DEFINER, fixed search_path).
--
-- A first import into an empty assets table builds the table's indexes once, sorted, after the
-- insert rather than row by row (geo/uploads.py). Dropping and creating indexes is DDL, which
-- only the owner may do; these functions do it for assets alone, only while assets is empty,
-- from the definitions they saved themselves (never from SQL a caller passes).
CREATE TABLE asset_index_definitions (
    rank integer NOT NULL,
    drop_sql text NOT NULL,
    create_sql text NOT NULL
);

CREATE FUNCTION assets_drop_indexes() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    IF EXISTS (SELECT 1 FROM assets) THEN
        RAISE EXCEPTION 'assets holds rows: its indexes are kept' USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    DELETE FROM asset_index_definitions;
    INSERT INTO asset_index_definitions (rank, drop_sql, create_sql)
    SELECT 0, format('ALTER TABLE assets DROP CONSTRAINT %I', c.conname),
           format('ALTER TABLE assets ADD CONSTRAINT %I %s', c.conname, pg_get_constraintdef(c.oid))
    FROM pg_constraint c
    WHERE c.conrelid = 'assets'::regclass AND c.contype IN ('p', 'u')
    UNION ALL
    SELECT 1, format('DROP INDEX %I', i.relname), pg_get_indexdef(x.indexrelid)
    FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
    WHERE x.indrelid = 'assets'::regclass
      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid);
    FOR r IN SELECT drop_sql FROM asset_index_definitions ORDER BY rank, create_sql LOOP
        EXECUTE r.drop_sql;
        n := n + 1;
    END LOOP;
    RETURN n;
END;
$$;

CREATE FUNCTION assets_create_indexes() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    FOR r IN SELECT create_sql FROM asset_index_definitions ORDER BY rank, create_sql LOOP
        EXECUTE r.create_sql;
        n := n + 1;
    END LOOP;
    DELETE FROM asset_index_definitions;
    RETURN n;
END;
$$;
