-- Low-zoom point tiles read only the roll-up rows (attributes NULL). Scanning them through the
-- index of all rows visited every attribute combination of every cell of the tile's columns:
-- 25-50 ms a tile. A covering index of the roll-up rows alone answers from the index: ~2 ms.
CREATE INDEX tile_point_summaries_rollup_idx ON tile_point_summaries (kind, z, cx, cy)
    INCLUDE (n, sx, sy)
    WHERE borough_code IS NULL AND subtype IS NULL AND status IS NULL;

-- Which grid a build used (cells per tile side and finest zoom, e.g. '32/12'): a build made
-- with another grid (an upgrade, or another CONNECTIVITY_TILES_RAW_MIN_ZOOM) is stale, and the
-- service rebuilds it when it starts.
ALTER TABLE tile_summary_builds ADD COLUMN grid text;

-- The grid went from 64 to 32 cells a tile side: the point rows are of the old grid, and every
-- build is now of an unknown grid (tiles read as not built, ETag version 0, until rebuilt).
TRUNCATE tile_point_summaries;
DELETE FROM tile_summary_builds;
