"""A query parameter an endpoint does not take is a 400 naming it, never silently ignored.

(OGC API Features /req/core/query-param-unknown: ``?f=csv`` or ``?filter=`` ignored would give a
script an unfiltered GeoJSON answer it could not tell from the one it asked for.)
"""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("/conformance?lang=en", "lang"),
        ("/collections/street_furniture/items?sortby=id", "sortby"),
        ("/collections/street_furniture/items?phase=Build", "phase"),  # a Pipeline filter, not this layer's
        ("/boroughs?limit=3", "limit"),
        ("/health?verbose=1", "verbose"),
        ("/wayleaves?colour=red", "colour"),
    ],
)
def test_unknown_parameters_are_a_400_naming_them(client, auth, url, name):
    answer = client.get(url, headers=auth("admin"))
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["detail"].startswith(f"{name}: not a parameter of this endpoint")


def test_known_parameters_still_work(client, auth):
    assert client.get("/collections?f=json").status_code == 200
    assert (
        client.get("/collections/street_furniture/items?f=geojson&limit=1&subtype=lamp_post").status_code
        == 200
    )
    assert client.get("/collections/pipeline_projects/items?phase=Build&limit=1").status_code == 200
    assert client.get("/wayleaves?borough=E09000007&bbox-crs=27700", headers=auth("admin")).status_code == 200


def test_a_format_the_features_api_does_not_write_is_refused(client):
    answer = client.get("/collections/street_furniture/items?f=kml")
    assert answer.status_code == 400 and "'kml' is not a format of this endpoint" in answer.json()["detail"]
    answer = client.get("/collections/street_furniture?f=csv")  # the items take csv, the collection not
    assert answer.status_code == 400 and "'csv' is not a format of this endpoint" in answer.json()["detail"]


def test_pages_keep_their_query_for_their_scripts(client):
    assert client.get("/app/projects?status=Live&view=51.5,-0.1,12").status_code == 200
