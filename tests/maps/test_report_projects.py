"""Which Pipeline projects a report lists: those in the area's interior, not those that touch its edge.

With the real borough boundaries: Camden and the City of London share a boundary line, so the
City (and a site on that line) touches Camden without being in it. Before, a Camden report listed
the City's borough-wide projects ("Square Mile gigabit voucher drive").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import shapely

from geo.projects import projects_in_area

CAMDEN, CITY = "E09000007", "E09000001"
CITY_PROJECT = "Square Mile gigabit voucher drive"
ON_THE_LINE = "Sensor on the Camden and City line"
INSIDE = ("Camden Wi-Fi upgrade", "Kentish Town sensors")
LONDON_WIDE = "London gigabit plan"


@pytest.fixture(scope="module")
def db(isolated: Any) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(isolated.url, autocommit=True) as conn:
        # A vertex of the boundary the two boroughs share (and no third): on both boundaries, in
        # neither interior, inside their union.
        on_line = conn.execute(
            """SELECT (d.dp).geom FROM (SELECT ST_DumpPoints(geom) AS dp FROM boroughs WHERE code = %(a)s) d,
                   boroughs l
               WHERE l.code = %(b)s AND ST_Intersects((d.dp).geom, l.geom)
                 AND NOT EXISTS (SELECT 1 FROM boroughs o WHERE o.code NOT IN (%(a)s, %(b)s)
                                 AND ST_Intersects((d.dp).geom, o.geom))
               ORDER BY (d.dp).path LIMIT 1""",
            {"a": CAMDEN, "b": CITY},
        ).fetchone()[0]
        touching = conn.execute(
            """SELECT bool_and(ST_Touches(%(p)s::geometry, geom)) AND bool_and(ST_Intersects(%(p)s::geometry, geom))
               FROM boroughs WHERE code IN (%(a)s, %(b)s)""",
            {"p": on_line, "a": CAMDEN, "b": CITY},
        ).fetchone()[0]
        assert touching, "the point is on the shared boundary of both boroughs"
        conn.execute(
            """INSERT INTO pipeline_projects (title, organisation, borough_code, placement, london_wide, location, source)
               VALUES (%(city)s, 'City of London Corporation', %(c_code)s, 'borough', false, NULL, 'api'),
                      (%(in1)s, 'London Borough of Camden', %(cam)s, 'borough', false, NULL, 'api'),
                      (%(in2)s, 'London Borough of Camden', %(cam)s, 'exact', false,
                       (SELECT ST_PointOnSurface(geom) FROM boroughs WHERE code = %(cam)s), 'api'),
                      (%(line)s, 'London Borough of Camden', %(cam)s, 'exact', false, %(point)s::geometry, 'api'),
                      (%(wide)s, 'Greater London Authority', NULL, 'london', true, NULL, 'api')""",
            {"city": CITY_PROJECT, "c_code": CITY, "in1": INSIDE[0], "in2": INSIDE[1], "cam": CAMDEN,
             "line": ON_THE_LINE, "point": on_line, "wide": LONDON_WIDE},
        )  # fmt: skip
        yield conn


def borough(conn: psycopg.Connection[Any], *codes: str) -> shapely.Geometry:
    row = conn.execute("SELECT ST_AsBinary(ST_Union(geom)) FROM boroughs WHERE code = ANY(%s)", [list(codes)])
    return shapely.from_wkb(bytes(row.fetchone()[0]))


def titles(rows: list[dict[str, Any]]) -> set[str]:
    return {r["title"] for r in rows}


def test_a_camden_area_leaves_out_what_only_touches_it(db: psycopg.Connection[Any]) -> None:
    found = titles(projects_in_area(db, borough(db, CAMDEN)))
    assert set(INSIDE) | {LONDON_WIDE} <= found
    assert CITY_PROJECT not in found and ON_THE_LINE not in found
    # The City's own area has its project, and not Camden's; the site on the line is in neither alone.
    city = titles(projects_in_area(db, borough(db, CITY)))
    assert CITY_PROJECT in city and not set(INSIDE) & city and ON_THE_LINE not in city


def test_the_union_of_both_holds_the_site_on_their_line(db: psycopg.Connection[Any]) -> None:
    both = titles(projects_in_area(db, borough(db, CAMDEN, CITY)))
    assert {CITY_PROJECT, ON_THE_LINE, LONDON_WIDE, *INSIDE} <= both


def test_a_box_that_touches_the_city_at_one_point_does_not_list_it(
    db: psycopg.Connection[Any], isolated: Any
) -> None:
    x0, y0, x1, y1 = db.execute(
        "SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM boroughs WHERE code = %s",
        [CITY],
    ).fetchone()
    west = [x0 - 500, y0, x0, y1]  # its east edge runs through the City's westernmost vertex
    assert not titles(projects_in_area(db, shapely.box(*west))) & {CITY_PROJECT}
    answer = isolated.client.get(
        "/pipeline/projects", params={"bbox": ",".join(map(repr, west)), "bbox-crs": "EPSG:27700"}
    )
    assert answer.status_code == 200, answer.text
    assert CITY_PROJECT not in titles(answer.json()["projects"])
    inside = [x0, y0, x0 + 500, y1]
    listed = isolated.client.get(
        "/pipeline/projects", params={"bbox": ",".join(map(repr, inside)), "bbox-crs": "EPSG:27700"}
    )
    assert CITY_PROJECT in titles(listed.json()["projects"])


def test_a_camden_report_does_not_list_a_city_project(db: psycopg.Connection[Any], isolated: Any) -> None:
    body = {"area": {"boroughs": [CAMDEN]}, "k": 0}
    answer = isolated.client.post("/coverage/reports", json=body, headers=isolated.auth("admin"))
    assert answer.status_code == 201 and answer.json()["state"] == "done", answer.text
    listed = titles(answer.json()["summary"]["pipeline_projects"])
    assert set(INSIDE) | {LONDON_WIDE} <= listed and CITY_PROJECT not in listed and ON_THE_LINE not in listed
    page = isolated.client.get(
        f"/coverage/reports/{answer.json()['id']}/report.html", headers=isolated.auth("admin")
    )
    assert INSIDE[0] in page.text and "Square Mile" not in page.text
