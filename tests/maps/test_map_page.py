"""``GET /map``: the page's HTML, its local resources, its configuration, borough framing and errors."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import psycopg
import pytest
from fastapi.testclient import TestClient

from geo.core.settings import MapSettings
from maps.static_files import LOCAL, STATIC_DIR, UnmappedResource, localize
from maps.web_map import ASSET_LAYERS, render_map

CAMDEN = "E09000007"
URL_ATTR = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.I)


@pytest.fixture(scope="module")
def page(client: TestClient) -> str:
    r = client.get("/map")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    return r.text


def config(html: str) -> dict:
    """The page's configuration (the JSON its script reads)."""
    found = re.findall(r'<script[^>]* id="map-config">(.*?)</script>', html, re.S)
    assert len(found) == 1, found
    return json.loads(found[0])


def fit_bounds(html: str) -> list[list[float]]:
    """Where the map opens: ``[[south, west], [north, east]]``."""
    south, west, north, east = config(html)["frame"]
    return [[south, west], [north, east]]


def test_no_remote_resources(page: str) -> None:
    remote = [u for u in URL_ATTR.findall(page) if re.match(r"(?:https?:)?//", u)]
    assert remote == []
    assert "cdn.jsdelivr" not in page and "unpkg.com" not in page and "cdnjs" not in page
    assert "openstreetmap" not in page.lower()


def test_every_static_url_is_served(client: TestClient, page: str) -> None:
    urls = {u for u in URL_ATTR.findall(page) if u.startswith("/static/")}
    assert any("leaflet.js" in u for u in urls)
    assert any("Leaflet.VectorGrid" in u for u in urls)
    assert any("connectivity-map.js" in u for u in urls)
    # The page's modules, imported by connectivity-map.js, are served too.
    urls |= {f"/static/map/{p.name}" for p in (STATIC_DIR / "map").glob("*.js")}
    assert len(urls) >= 10
    for url in urls:
        path = urlsplit(url).path
        assert (STATIC_DIR / path.removeprefix("/static/")).is_file(), url
        r = client.get(url)
        assert r.status_code == 200, url
        assert len(r.content) > 100, url


def test_asset_layers_come_from_vector_tiles(page: str) -> None:
    conf = config(page)
    assert conf["tileUrl"] == "/tiles/{collection}/{z}/{x}/{y}.mvt"
    assert conf["clusterUrl"] == "/tiles/{collection}/clusters/{z}/{x}/{y}.json"
    collections = [s["collection"] for s in conf["specs"]]
    for spec in ASSET_LAYERS:
        assert spec.collection in collections
    # Only the 33 borough outlines are embedded, never assets.
    assert page.count('"type":"Feature"') + page.count('"type": "Feature"') == 33
    assert len(conf["boroughs"]["features"]) == 33
    without_words = {k: v for k, v in conf.items() if k not in ("vocabulary", "specs", "counts")}
    assert "bus_stop" not in json.dumps(without_words) and "SYN-" not in page and "TFL-" not in page


def test_counts_in_layer_names(client: TestClient, page: str) -> None:
    health = client.get("/health").json()
    furniture = health["assets"]["street_furniture"]
    assert furniture > 1000
    assert f"Street furniture ({furniture:,})" in page
    assert f"Public buildings ({health['assets']['public_building']:,})" in page
    assert f"Ducts ({health['assets']['duct']:,})" in page


def test_page_has_controls(page: str) -> None:
    for control in (
        'role="combobox"', 'id="map-search"', 'name="layer"', 'id="filter-borough"', 'name="status"',
        'name="wayleave-status"', "data-legend", "data-details", 'id="map-report"',
    ):  # fmt: skip
        assert control in page, control
    assert 'src="/static/connectivity-map.js"' in page and 'type="module"' in page
    assert "<title>Map – Connectivity for London</title>" in page
    # The app's header, navigation and sign-in, the same as on /app pages.
    assert 'aria-label="Pages"' in page and 'id="signin-key"' in page and 'aria-current="page"' in page


@pytest.mark.parametrize("path", ["/map", "/docs"])
def test_pages_are_english_and_their_readers_may_zoom(client: TestClient, path: str) -> None:
    """WCAG 3.1.1 and 1.4.4 (axe-core's html-has-lang and meta-viewport): folium's page has no
    ``lang`` and its map forbids zooming the page."""
    html = client.get(path).text
    assert re.match(r'\s*<!DOCTYPE html>\s*<html lang="en-GB"[ >]', html, re.I)
    viewports = re.findall(r'<meta name="viewport"[^>]*>', html)
    assert all("user-scalable=no" not in v and "maximum-scale" not in v for v in viewports), viewports


def test_london_framing_without_borough(client: TestClient, page: str) -> None:
    (south, west), (north, east) = fit_bounds(page)
    assert 51.2 < south < 51.35 and 51.65 < north < 51.75
    assert -0.55 < west < -0.45 and 0.3 < east < 0.35


def test_borough_framing(client: TestClient, conn: psycopg.Connection) -> None:
    r = client.get("/map", params={"borough": CAMDEN.lower()})
    assert r.status_code == 200
    south, west, north, east = conn.execute(
        """SELECT ST_YMin(e), ST_XMin(e), ST_YMax(e), ST_XMax(e)
           FROM (SELECT ST_Transform(geom, 4326)::box2d AS e FROM boroughs WHERE code = %s) b""",
        [CAMDEN],
    ).fetchone()
    (s, w), (n, e) = fit_bounds(r.text)
    assert (s, w, n, e) == pytest.approx((south, west, north, east), abs=2e-5)
    assert config(r.text)["selected"] == "E09000007"
    assert '<option value="E09000007" selected>Camden</option>' in r.text  # the borough filter is set


@pytest.mark.parametrize("code", ["E09000034", "W06000015", "camden", ""])
def test_unknown_borough_is_422(client: TestClient, code: str) -> None:
    r = client.get("/map", params={"borough": code})
    if code == "":
        assert r.status_code == 200  # an empty selection means all of London
        return
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "London authority" in r.json()["detail"]


def small_boroughs() -> dict:
    square = {"type": "Polygon", "coordinates": [[[0, 51], [0.1, 51], [0.1, 51.1], [0, 51.1], [0, 51]]]}
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": "E09000001",
                "properties": {
                    "code": "E09000001",
                    "name": "City of London",
                    "assets": 3,
                    "bounds": [51, 0, 51.1, 0.1],
                    "area_km2": 77.3,
                    "label": [0.05, 51.05],
                },
                "geometry": square,
            }
        ],
    }


def test_background_tiles_from_settings() -> None:
    settings = MapSettings(tile_url="/basemap/{z}/{x}/{y}.png", tile_attribution="Test tiles")
    html = render_map(small_boroughs(), {"street_furniture": 1}, settings=settings)
    conf = config(html)
    assert conf["basemap"] == {"url": "/basemap/{z}/{x}/{y}.png", "attribution": "Test tiles"}
    assert '"/basemap/{z}/{x}/{y}.png"' in html and "Test tiles" in html
    assert conf["plain"] is False
    plain = config(render_map(small_boroughs(), {}, settings=MapSettings()))
    assert plain["basemap"] is None and plain["plain"] is True


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTIVITY_MAP_TILE_URL", "/t/{z}/{x}/{y}.png")
    monkeypatch.setenv("CONNECTIVITY_MAP_TILE_ATTRIBUTION", "Me")
    s = MapSettings()
    assert (s.tile_url, s.tile_attribution) == ("/t/{z}/{x}/{y}.png", "Me")


def test_prefix_applies_to_every_local_url() -> None:
    html = render_map(small_boroughs(), {}, prefix="/gla")
    urls = [u for u in URL_ATTR.findall(html) if not u.startswith(("data:", "#"))]
    assert urls and all(u.startswith("/gla/") for u in urls), urls
    assert all(u.startswith("/gla/static/") for u in urls if "." in u.rsplit("/", 1)[-1])
    conf = config(html)
    assert conf["prefix"] == "/gla" and conf["tileUrl"] == "/gla/tiles/{collection}/{z}/{x}/{y}.mvt"
    assert conf["clusterUrl"].startswith("/gla/tiles/")


def test_localize_fails_loudly_and_leaves_folium_alone() -> None:
    import folium
    from branca.element import Figure
    from folium.plugins import MarkerCluster

    before = list(folium.Map.default_js)
    fmap = folium.Map(tiles=None)
    fmap.add_to(Figure())
    localize(fmap.get_root())
    assert folium.Map.default_js == before  # class defaults untouched
    assert all(url.startswith("/static/") for _, url in fmap.default_js)
    MarkerCluster().add_to(fmap)  # its files are not vendored
    with pytest.raises(UnmappedResource, match="markercluster"):
        localize(fmap.get_root())


def test_every_mapped_file_exists() -> None:
    for name, path in LOCAL.items():
        if path is not None:
            assert (STATIC_DIR / path).is_file(), (name, path)


def test_only_wayleave_details_need_a_key_and_no_key_is_in_the_page(
    page: str, conn: psycopg.Connection
) -> None:
    specs = {s["collection"]: s for s in config(page)["specs"]}
    assert specs["wayleaves"]["detail_needs_key"] is True and specs["wayleaves"]["id_label"] == "Wayleave"
    assert specs["wayleaves"]["detail_url"] == "/wayleaves/{id}"
    for spec in ASSET_LAYERS:
        assert (
            specs[spec.collection]["detail_needs_key"] is False
            and specs[spec.collection]["id_label"] == "Asset"
        )
    # The sign-in is drawn by the app's script; the page itself holds no key, and no operator's name.
    assert "Bearer" not in page and "cx_" not in page
    operators = [r[0] for r in conn.execute("SELECT DISTINCT operator FROM wayleaves WHERE operator <> ''")]
    assert not [name for name in operators if name in page]


@pytest.mark.parametrize(
    ("tile_url", "source"),
    [
        ("https://{s}.tile.example.org/{z}/{x}/{y}.png", "https://*.tile.example.org"),
        ("https://maps.{s}.example.org:8443/{z}/{x}/{y}.png", "https://*.example.org:8443"),
        ("https://tiles.example.org/{z}/{x}/{y}.png", "https://tiles.example.org"),
        ("/basemap/{z}/{x}/{y}.png", None),
    ],
)
def test_a_background_tile_server_is_the_one_image_source_the_policy_adds(
    tile_url: str, source: str | None
) -> None:
    from api.app import _image_sources
    from geo.core.settings import Settings

    assert _image_sources(Settings(map=MapSettings(tile_url=tile_url))) == ((source,) if source else ())
