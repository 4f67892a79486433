-- Place search (GET /places, geo/reference/places.py): an asset by its borough's source id, from its
-- first characters in any case, or by words of its name (each a prefix); a Pipeline project by
-- words of its title. Postcodes and wards are searched in memory from the shipped files (they
-- never change while the service runs), so they need no table.

-- text_pattern_ops: the range a prefix spans (~>=~ and ~<~) is an index range whatever the
-- database's collation; LIKE 'x%' with a bound parameter could not use a plain btree.
CREATE INDEX assets_source_id_search_idx ON assets (lower(source_id) text_pattern_ops)
    WHERE retired_at IS NULL;
-- The 'simple' configuration (no stemming, no stop words): names are proper nouns and numbers.
-- Partial: most street furniture has no name, so the index stays small.
CREATE INDEX assets_name_search_idx ON assets USING gin (to_tsvector('simple', name))
    WHERE retired_at IS NULL AND name IS NOT NULL;
