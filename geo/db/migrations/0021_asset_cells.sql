-- A place key for each asset, so a bbox page reads only the rows it returns (geo/layers/cells.py).
--
-- asset_cell_key(geom): the smallest cell of a quadtree over London (1 m cells at its 17th
-- level, origin 470000,120000 in British National Grid: 131 km a side) that holds the whole of
-- the geometry's bounding box, as its Z-order (Morton) start shifted left 5 bits, or'ed with its
-- level. A cell's key lies between the keys of the cells it contains, so the assets of one
-- cell and everything inside it are one range of keys. A box is then a few ranges (the cells it
-- overlaps at one level) and the single keys of their larger ancestors, read in key order
-- from the btree indexes below: a page of 100 reads about 100 rows, wherever it starts, where
-- the GiST index gives every row of the box to be sorted by id.
-- Geometries outside the square (or empty) get the root's key, 0.
CREATE FUNCTION asset_cell_key(g geometry) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    x0 bigint; y0 bigint; x1 bigint; y1 bigint;
    diff bigint; shift int := 0; mx bigint; my bigint;
BEGIN
    IF ST_IsEmpty(g) THEN
        RETURN 0;
    END IF;
    x0 := floor(ST_XMin(g)) - 470000;
    y0 := floor(ST_YMin(g)) - 120000;
    x1 := floor(ST_XMax(g)) - 470000;
    y1 := floor(ST_YMax(g)) - 120000;
    IF x0 < 0 OR y0 < 0 OR x1 >= 131072 OR y1 >= 131072 THEN
        RETURN 0;
    END IF;
    -- The cell's size is 2^shift m: the bits below the highest bit in which the corners differ.
    diff := (x0 # x1) | (y0 # y1);
    WHILE diff > 0 LOOP
        diff := diff >> 1;
        shift := shift + 1;
    END LOOP;
    mx := (x0 >> shift) << shift;
    my := (y0 >> shift) << shift;
    -- Spread the bits of each coordinate apart (the standard interleave) and interleave them.
    mx := (mx | (mx << 16)) & 281470681808895;
    mx := (mx | (mx << 8)) & 71777214294589695;
    mx := (mx | (mx << 4)) & 1085102592571150095;
    mx := (mx | (mx << 2)) & 3689348814741910323;
    mx := (mx | (mx << 1)) & 6148914691236517205;
    my := (my | (my << 16)) & 281470681808895;
    my := (my | (my << 8)) & 71777214294589695;
    my := (my | (my << 4)) & 1085102592571150095;
    my := (my | (my << 2)) & 3689348814741910323;
    my := (my | (my << 1)) & 6148914691236517205;
    RETURN ((mx | (my << 1)) << 5) | (17 - shift);
END;
$$;

-- One per asset layer, with the layer's own condition (geo/layers/collections.py), so the
-- planner reads a layer's live rows in key order and nothing else.
CREATE INDEX assets_street_furniture_cell_idx ON assets (asset_cell_key(geom), id)
    WHERE kind = 'street_furniture' AND retired_at IS NULL;
CREATE INDEX assets_public_building_cell_idx ON assets (asset_cell_key(geom), id)
    WHERE kind = 'public_building' AND retired_at IS NULL;
CREATE INDEX assets_duct_cell_idx ON assets (asset_cell_key(geom), id)
    WHERE kind = 'duct' AND retired_at IS NULL;
