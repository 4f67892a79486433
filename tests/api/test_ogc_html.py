"""The OGC API's HTML format: chosen by ``f=html`` or a browser's ``Accept``, never by a JSON client's.

The pages carry what the JSON carries for the same query and caller; the JSON documents link
their HTML alternates; the conformance class is declared and the OpenAPI document lists text/html.
"""

from __future__ import annotations

import re

import pytest

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
HTML_CLASS = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html"
PAGES = [
    "/",
    "/conformance",
    "/collections",
    "/collections/street_furniture",
    "/collections/street_furniture/items",
    "/collections/boroughs/items/E09000007",
    "/collections/street_furniture/queryables",
    "/processes",
    "/processes/coverage",
]


@pytest.mark.parametrize("path", PAGES)
def test_json_stays_the_default_and_html_is_asked_for(client, path):
    for headers in ({}, {"Accept": "application/json"}, {"Accept": "*/*"}):
        answer = client.get(path, headers=headers)
        assert answer.status_code == 200 and "json" in answer.headers["content-type"], (path, headers)
        assert "Accept" in answer.headers["vary"], path
    for answer in (client.get(path, headers={"Accept": BROWSER}), client.get(path, params={"f": "html"})):
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html"), path
        assert '<html lang="en-GB"' in answer.text and 'rel="alternate"' in answer.text
        assert "Content-Security-Policy" in answer.headers
    # f wins over Accept, either way.
    assert (
        "json" in client.get(path, params={"f": "json"}, headers={"Accept": BROWSER}).headers["content-type"]
    )


def test_another_format_is_a_400(client):
    answer = client.get("/processes", params={"f": "xml"})
    assert answer.status_code == 400 and "'xml' is not a format of this endpoint" in answer.json()["detail"]


def test_the_json_documents_link_their_pages(client):
    assert HTML_CLASS in client.get("/conformance").json()["conformsTo"]
    for path in (
        "/",
        "/conformance",
        "/collections",
        "/collections/ducts",
        "/processes",
        "/processes/coverage",
    ):
        html = [
            x
            for x in client.get(path).json()["links"]
            if x["type"] == "text/html" and x["rel"] == "alternate"
        ]
        assert html and html[0]["href"].endswith("f=html"), path
    page = client.get("/collections/ducts/items", params={"limit": 2, "status": "in_service"}).json()
    (alternate,) = [x["href"] for x in page["links"] if x["type"] == "text/html"]
    assert "status=in_service" in alternate and "limit=2" in alternate
    feature = client.get("/collections/boroughs/items/E09000007").json()
    rels = {x["rel"]: x for x in feature["links"]}
    assert rels["alternate"]["type"] == "text/html" and rels["collection"]["href"].endswith(
        "/collections/boroughs"
    )
    assert feature["id"] == "E09000007" and feature["geometry"]["type"] == "MultiPolygon"


def ids_on(html: str) -> list[str]:
    """The feature ids of an items page's table, in order."""
    body = html.split("<tbody", 1)[1].split("</tbody>", 1)[0]
    return re.findall(
        r'<th scope="row" class="govuk-table__header"><a class="govuk-link" href="[^"]+">([^<]+)</a>', body
    )


def test_an_items_page_is_the_json_page_with_its_filters_and_paging(client):
    query = {
        "limit": 7,
        "status": "in_service",
        "bbox": "-0.2,51.45,0.0,51.56",
        "filter": "subtype <> 'cctv'",
    }
    first = client.get("/collections/street_furniture/items", params=query).json()
    html = client.get("/collections/street_furniture/items", params={**query, "f": "html"}).text
    assert ids_on(html) == [str(f["id"]) for f in first["features"]]
    assert 'rel="prev"' not in html  # the first page has none before it
    next_json = next(x["href"] for x in first["links"] if x["rel"] == "next")
    after = re.search(r"after=([\d%A:]+)", next_json).group(1).replace("%3A", ":")  # key:id with a bbox
    second = client.get("/collections/street_furniture/items", params={**query, "after": after}).json()
    page = client.get(
        "/collections/street_furniture/items", params={**query, "after": after, "f": "html"}
    ).text
    assert ids_on(page) == [str(f["id"]) for f in second["features"]]
    previous = re.search(r'href="([^"]+)" rel="prev"', page).group(1).replace("&amp;", "&")
    assert "after=" not in previous and "f=html" in previous  # back to the first page
    assert ids_on(client.get(previous.replace("http://testserver", "")).text) == ids_on(html)


def test_a_previous_page_in_the_middle_has_its_cursor(client):
    ids = [
        f["id"]
        for f in client.get("/collections/street_furniture/items", params={"limit": 30}).json()["features"]
    ]
    page = client.get(
        "/collections/street_furniture/items", params={"limit": 10, "after": ids[19], "f": "html"}
    ).text
    assert ids_on(page) == [str(i) for i in ids[20:30]]
    previous = re.search(r'href="([^"]+)" rel="prev"', page).group(1).replace("&amp;", "&")
    assert f"after={ids[9]}" in previous
    assert ids_on(client.get(previous.replace("http://testserver", "")).text) == [str(i) for i in ids[10:20]]


def test_values_are_escaped(client, auth, conn):
    asset_id, name = conn.execute(
        "SELECT id, name FROM assets WHERE kind = 'duct' AND borough_code = 'E09000007' AND retired_at IS NULL "
        "ORDER BY id DESC LIMIT 1"
    ).fetchone()
    hostile = "<script>alert(1)</script>&\"'"
    assert (
        client.patch(f"/assets/{asset_id}", json={"name": hostile}, headers=auth("camden")).status_code == 200
    )
    try:
        pages = [
            client.get(f"/collections/ducts/items/{asset_id}", params={"f": "html"}).text,
            client.get("/collections/ducts/items", params={"f": "html", "filter": f"id = {asset_id}"}).text,
        ]
    finally:  # the session's data as it was, for the other modules
        client.patch(f"/assets/{asset_id}", json={"name": name}, headers=auth("camden"))
    for html in pages:
        assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;&amp;" in html
        # In the map's JSON island too: no "</script>" can close it early.
        island = html.split('id="ogc-features">', 1)[1].split("</script>", 1)[0]
        assert "<" not in island and "\\u003cscript\\u003e" in island


def test_jobs_need_a_key_and_show_the_keys_own(client, auth):
    anonymous = client.get("/jobs", params={"f": "html"})
    assert anonymous.status_code == 401 and "needs an API key" in anonymous.text
    assert client.get("/jobs").status_code == 401  # the JSON as before
    mine = client.get("/jobs", params={"f": "html"}, headers=auth("operator"))
    listed = client.get("/jobs", headers=auth("operator")).json()["jobs"]
    assert mine.status_code == 200 and f"{len(listed)} job" in mine.text


def test_the_openapi_document_lists_html(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/", "/conformance", "/collections", "/collections/{collection_id}", "/collections/{collection_id}/items",
                 "/collections/{collection_id}/items/{feature_id}", "/collections/{collection_id}/queryables",
                 "/processes", "/processes/{process_id}", "/jobs"):  # fmt: skip
        assert "text/html" in paths[path]["get"]["responses"]["200"]["content"], path
    f = next(p for p in paths["/collections/{collection_id}/items"]["get"]["parameters"] if p["name"] == "f")
    assert "html" in f["description"]


def test_a_previous_page_in_the_middle_of_a_bbox_has_its_key_and_id_cursor(client):
    url, params, pages = (
        "/collections/street_furniture/items",
        {"limit": 10, "bbox": "-0.16,51.53,-0.13,51.55"},
        [],
    )
    for _ in range(3):
        body = client.get(url, params=params).json()
        pages.append([str(f["id"]) for f in body["features"]])
        here = next(x["href"] for x in body["links"] if x["rel"] == "self").replace("http://testserver", "")
        url, params = (
            next(x["href"] for x in body["links"] if x["rel"] == "next").replace("http://testserver", ""),
            None,
        )
    third = client.get(here + "&f=html").text
    assert ids_on(third) == pages[2] and "In place order" in third
    previous = re.search(r'href="([^"]+)" rel="prev"', third).group(1).replace("&amp;", "&")
    assert re.search(r"after=\d+%3A\d+", previous)
    assert ids_on(client.get(previous.replace("http://testserver", "")).text) == pages[1]


def test_an_error_is_a_page_for_a_browser_and_a_problem_for_everyone_else(client):
    url = "/collections/street_furniture/items"
    page = client.get(url, params={"limit": "0", "f": "html"})
    assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
    assert "query.limit" in page.text and "application/problem+json" in page.text
    browser = client.get("/collections/nope", headers={"Accept": "text/html,application/xhtml+xml;q=0.9"})
    assert browser.status_code == 404 and browser.headers["content-type"].startswith("text/html")
    for answer in (client.get(url, params={"limit": "0"}), client.get("/collections/nope"),
                   client.get(url, params={"limit": "0", "f": "csv"})):  # fmt: skip
        assert answer.headers["content-type"] == "application/problem+json", answer.text
    # Only where a page exists: an upload's errors stay problems whatever the Accept.
    assert client.get("/uploads/1", headers={"Accept": "text/html"}).headers["content-type"] == (
        "application/problem+json"
    )


def test_a_job_is_a_page_and_processes_declare_html(client, auth):
    assert (
        "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/html"
        in client.get("/conformance").json()["conformsTo"]
    )
    anonymous = client.get("/jobs/1", params={"f": "html"})
    assert anonymous.status_code == 401 and "needs an API key" in anonymous.text
    assert client.get("/jobs/1").status_code == 401  # JSON: the problem, as before
    missing = client.get("/jobs/999999", params={"f": "html"}, headers=auth("operator"))
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
