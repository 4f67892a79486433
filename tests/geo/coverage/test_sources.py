"""What a coverage report reads: the assets near its area, filtered as asked."""

from __future__ import annotations

import numpy as np

from geo.coverage.sources import read_assets

CAMDEN_BOX = [528000.0, 181000.0, 530000.0, 183000.0]


def test_assets_read_match_sql_counts(db_url, conn, ask):
    body = {
        "area": {"bbox": CAMDEN_BOX},
        "kinds": ["street_furniture", "duct"],
        "statuses": ["in_service"],
        "radius": 50,
    }
    request = ask(conn, body)
    assets = read_assets(db_url, request)
    x0, y0, x1, y1 = CAMDEN_BOX
    r = request.reach + 1
    box = "ST_MakeEnvelope(%s, %s, %s, %s, 27700)"
    params = [x0 - r, y0 - r, x1 + r, y1 + r]
    (q,) = conn.execute(
        f"SELECT count(*) FROM assets WHERE retired_at IS NULL AND kind = 'street_furniture' AND status = 'in_service' AND geom && {box}",
        params,
    ).fetchone()
    (c,) = conn.execute(
        f"""SELECT count(*) FROM assets WHERE retired_at IS NULL AND kind = 'street_furniture'
            AND status NOT IN ('in_service', 'removed', 'decommissioned', 'abandoned') AND geom && {box}""",
        params,
    ).fetchone()
    (d,) = conn.execute(
        f"SELECT count(*) FROM assets WHERE retired_at IS NULL AND kind = 'duct' AND status = 'in_service' AND geom && {box}",
        params,
    ).fetchone()
    counts = assets.counts()
    assert q > 0 and counts["qualifying_points"] == q
    assert counts["candidate_points"] == c
    assert counts["qualifying_lines"] == d
    assert (np.diff(assets.point_ids) > 0).all()
    # The coordinates are the assets' own.
    some = int(assets.point_ids[0])
    x, y = conn.execute("SELECT ST_X(geom), ST_Y(geom) FROM assets WHERE id = %s", [some]).fetchone()
    assert assets.points_xy[0].tolist() == [x, y]


def test_subtype_and_borough_filters(db_url, conn, ask):
    request = ask(conn, {"area": {"bbox": CAMDEN_BOX}, "kinds": ["street_furniture"], "subtypes": ["bus_stop"],
                              "asset_boroughs": ["E09000007"]})  # fmt: skip
    assets = read_assets(db_url, request)
    ids = assets.point_ids.tolist()
    rows = conn.execute(
        "SELECT DISTINCT subtype, borough_code FROM assets WHERE id = ANY(%s)", [ids]
    ).fetchall()
    assert ids and set(rows) == {("bus_stop", "E09000007")}
