"""Files made to attack the reader: each is refused before a parser sees it, with nothing of the server in the message."""

from __future__ import annotations

import http.server
import resource
import sqlite3
import threading
import time
import zipfile
from pathlib import Path

import pyogrio
import pytest

from geo.core.row_errors import UploadRejected
from geo.uploads import gdal
from geo.uploads.inspection import open_upload
from geo.uploads.mapping import load_mapping_file
from geo.uploads.source import ReadLimits

PASSWD = "/etc/passwd"


def vrt(source: str) -> bytes:
    """A GDAL VRT that maps each line of ``source`` to an asset, as the attack did."""
    return f"""<OGRVRTDataSource>
  <OGRVRTLayer name="pw">
    <SrcDataSource>CSV:{source}</SrcDataSource>
    <SrcSQL dialect="sqlite">SELECT field_1 AS subtype, 'PW' || rowid AS source_id,
        MakePoint(530000, 180000) AS geometry FROM passwd</SrcSQL>
  </OGRVRTLayer>
</OGRVRTDataSource>
""".encode()


def refused(path: Path, match: str = "", **kw) -> str:
    with pytest.raises(UploadRejected, match=match or None) as err:
        with open_upload(path, **kw) as info:
            info.to_dict()
    message = str(err.value)
    assert "root:" not in message and "/bin/bash" not in message
    assert str(path.parent) not in message and "/tmp/" not in message
    return message


def zip_with(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("x.geojson", "named as GeoJSON but holds a GDAL virtual dataset"),
        ("x.json", "named as GeoJSON but holds a GDAL virtual dataset"),
        ("x.gpkg", "named as GeoPackage but holds a GDAL virtual dataset"),
        ("x.fgb", "named as FlatGeobuf but holds a GDAL virtual dataset"),
        ("x.kml", "named as KML but holds a GDAL virtual dataset"),
        ("x.xlsx", "named as XLSX but holds a GDAL virtual dataset"),
        ("x.csv", "no coordinate columns"),  # read as text by pandas: a CSV of XML lines, nothing more
        ("x.tsv", "no coordinate columns"),
        ("x.txt", "no coordinate columns"),
    ],
)
def test_a_vrt_under_any_accepted_name_is_refused(tmp_path, name, match):
    path = tmp_path / name
    path.write_bytes(vrt(PASSWD))
    refused(path, match)


def test_a_vrt_inside_archives_is_refused(tmp_path):
    kmz = zip_with(tmp_path / "x.kmz", {"doc.kml": vrt(PASSWD)})
    refused(kmz, "named as KML but holds a GDAL virtual dataset")
    shp = zip_with(tmp_path / "x.zip", {"assets.shp": vrt(PASSWD), "assets.shx": b"", "assets.dbf": b""})
    refused(shp, "named as Shapefile")
    only = zip_with(tmp_path / "y.zip", {"assets.vrt": vrt(PASSWD)})
    refused(only, "holds no Shapefile")


def test_gdal_keeps_only_the_upload_drivers(tmp_path):
    path = tmp_path / "ok.geojson"
    path.write_text('{"type":"FeatureCollection","features":[]}')
    with pytest.raises(UploadRejected):
        open_upload(path)
    assert set(gdal.registered_drivers()) <= gdal.ALLOWED_DRIVERS
    assert "OGR_VRT" not in pyogrio.list_drivers() and "CSV" not in pyogrio.list_drivers()
    disguised = tmp_path / "x.vrt"
    disguised.write_bytes(vrt(PASSWD))
    with pytest.raises(Exception, match="not recognized"):
        pyogrio.read_info(disguised)  # even bypassing the checks, GDAL cannot open a VRT any more


class Listener:
    """A local HTTP server that records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                listener.requests.append(f"GET {self.path}")
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"a,b\n1,2\n")

            do_HEAD = do_GET  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


def kml(body: str, prolog: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{prolog}<kml xmlns="http://www.opengis.net/kml/2.2">'
        f"<Document>{body}</Document></kml>"
    ).encode()


def test_vsicurl_inside_files_fetches_nothing(tmp_path, listener):
    url = f"/vsicurl/{listener.url}/a.csv"
    cases = {
        "link.kml": kml(f"<NetworkLink><Link><href>{url}</href></Link></NetworkLink>"),
        "plain.kml": kml(f"<NetworkLink><Link><href>{listener.url}/a.kml</href></Link></NetworkLink>"),
        "crs.geojson": (
            '{"type":"FeatureCollection","crs":{"type":"link","properties":{"href":"' + url + '"}},'
            '"features":[{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1,2]}}]}'
        ).encode(),
        "vrt.geojson": vrt(url),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        refused(path)
    kmz = zip_with(tmp_path / "remote.kmz", {"doc.kml": cases["plain.kml"]})
    refused(kmz, "in a KMZ, a document may link only documents of the same archive")
    time.sleep(0.2)
    assert listener.requests == []


def test_vsizip_and_other_virtual_paths_inside_files(tmp_path):
    inner = zip_with(tmp_path / "inner.zip", {"a.csv": b"x,y\n530000,180000\n"})
    cases = {
        "zip.kml": kml(f"<NetworkLink><Link><href>/vsizip/{inner}/a.csv</href></Link></NetworkLink>"),
        "zip.geojson": (
            '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"f":"/vsizip/'
            + str(inner)
            + '/a.csv"},"geometry":null}]}'
        ).encode(),
        "mem.kml": kml("<Placemark><name>/vsimem/x</name></Placemark>"),
        "up.kml": kml("<NetworkLink><Link><href>../../etc/x.kml</href></Link></NetworkLink>"),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        message = refused(path)
        assert "virtual file system" in message or "loads another document" in message


def test_xml_entities_and_dtds_are_refused(tmp_path):
    laughs = (
        '<!DOCTYPE kml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
    )
    xxe = f'<!DOCTYPE kml [<!ENTITY x SYSTEM "file://{PASSWD}">]>'
    for name, prolog, body in (
        ("laughs.kml", laughs, "<Placemark><name>&d;</name></Placemark>"),
        ("xxe.kml", xxe, "<Placemark><name>&x;</name></Placemark>"),
    ):
        path = tmp_path / name
        path.write_bytes(kml(body, prolog))
        refused(path, "declares a DTD or entities")
    kmz = zip_with(tmp_path / "xxe.kmz", {"doc.kml": kml("<Placemark><name>&x;</name></Placemark>", xxe)})
    refused(kmz, "declares a DTD or entities")


def xlsx_sample(tmp_path: Path, samples) -> Path:
    return samples.write("xlsx")


def rewrite_zip(
    source: Path, dest: Path, replace: dict[str, bytes | None], add_big: tuple[str, int] | None = None
):
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            if item.filename in replace:
                if replace[item.filename] is not None:
                    out.writestr(item.filename, replace[item.filename])
                continue
            out.writestr(item, src.read(item.filename))
        for name, data in replace.items():  # members the source does not have are added
            if data is not None and name not in src.namelist():
                out.writestr(name, data)
        if add_big:
            name, size = add_big
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with out.open(info, "w", force_zip64=True) as big:
                big.write(b'<?xml version="1.0"?><sst xmlns="x"><si><t>')
                block = b"A" * 2**20
                for _ in range(size // len(block)):
                    big.write(block)
                big.write(b"</t></si></sst>")
    return dest


def test_xlsx_shared_string_bomb_is_refused_before_gdal_reads_it(tmp_path, samples):
    source = samples.write("xlsx")
    bomb = rewrite_zip(
        source, tmp_path / "bomb.xlsx", {"xl/sharedStrings.xml": None}, ("xl/sharedStrings.xml", 2**30)
    )
    assert bomb.stat().st_size < 5 * 2**20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    refused(bomb, "zip bomb")
    assert time.monotonic() - started < 10
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, f"reading the bomb grew the process by {grown_mb:.0f} MB"
    # Below the ratio guard but above the expanded size allowed for a spreadsheet:
    big = rewrite_zip(
        source, tmp_path / "big.xlsx", {"xl/sharedStrings.xml": None}, ("xl/sharedStrings.xml", 8 * 2**20)
    )
    refused(big, limits=ReadLimits(max_spreadsheet_bytes=4 * 2**20, max_compression_ratio=10**6))


def test_xlsx_with_a_dtd_or_a_million_columns(tmp_path, samples):
    source = samples.write("xlsx")
    with zipfile.ZipFile(source) as zf:
        sheet_name = next(n for n in zf.namelist() if n.startswith("xl/worksheets/"))
        sheet = zf.read(sheet_name)
    dtd = sheet.replace(b"?>", b'?><!DOCTYPE worksheet [<!ENTITY x SYSTEM "file:///etc/passwd">]>', 1)
    refused(rewrite_zip(source, tmp_path / "dtd.xlsx", {sheet_name: dtd}), "declares a DTD")
    row = b"".join(b'<c r="A1" t="inlineStr"><is><t>c</t></is></c>' for _ in range(2000))
    wide = sheet.replace(b"<row ", b"<row><x/>" + row + b"</row><row ", 1) if b"<row " in sheet else None
    assert wide is not None
    refused(rewrite_zip(source, tmp_path / "wide.xlsx", {sheet_name: wide}), "columns in its first row")


def test_symbolic_links_in_a_zip_are_refused(tmp_path, samples):
    for suffix in ("zip", "kmz", "xlsx"):
        path = tmp_path / f"link.{suffix}"
        with zipfile.ZipFile(path, "w") as zf:
            info = zipfile.ZipInfo("doc.kml" if suffix == "kmz" else "assets.shp")
            info.external_attr = 0o120777 << 16
            zf.writestr(info, PASSWD)
            if suffix == "xlsx":
                zf.writestr("[Content_Types].xml", "<Types/>")
                zf.writestr("xl/workbook.xml", "<workbook/>")
        refused(path, "symbolic link")


def test_kmz_bomb(tmp_path):
    path = tmp_path / "bomb.kmz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("doc.kml", b"<" + b" " * 60_000_000)
    refused(path, "zip bomb")


def test_million_column_csv_is_refused_at_once(tmp_path):
    path = tmp_path / "wide.csv"
    header = ",".join(f"c{i}" for i in range(1_000_000))
    path.write_text(header + "\nEasting,Northing\n")
    assert path.stat().st_size > 6 * 2**20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    refused(path, r"names at least [\d,]+ columns, more than the limit of 500")
    assert time.monotonic() - started < 5
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 100


def test_csv_with_nul_bytes_or_a_huge_line(tmp_path):
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"Easting,Northing,name\n530000,180000,a\x00b\n")
    refused(nul, "NUL bytes")
    long = tmp_path / "long.csv"
    long.write_text("Easting,Northing,name\n530000,180000," + "x" * (5 * 2**20) + "\n")
    refused(long, "line 2 is longer than the limit of 4 MB")


def test_a_huge_value_is_refused_with_its_row_and_column(tmp_path):
    path = tmp_path / "big.geojson"
    features = [
        '{"type":"Feature","properties":{"name":"%s"},"geometry":{"type":"Point","coordinates":[-0.14,51.54]}}'
        % ("n" if i != 2 else "x" * 2_000_000)
        for i in range(4)
    ]
    path.write_text('{"type":"FeatureCollection","features":[' + ",".join(features) + "]}")
    from geo.uploads.batches import iter_batches

    with (
        open_upload(path) as info,
        pytest.raises(UploadRejected, match="row 3: the value of column 'name' is 2,000,000 bytes"),
    ):
        list(iter_batches(info))


def test_wide_gis_files_are_refused(tmp_path):
    path = tmp_path / "wide.geojson"
    props = ",".join(f'"k{i}":1' for i in range(600))
    path.write_text(
        '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{' + props + "},"
        '"geometry":{"type":"Point","coordinates":[-0.14,51.54]}}]}'
    )
    refused(path, "60[0-9] columns, more than the limit of 500")


def gpkg_with(tmp_path: Path, samples, sql: str) -> Path:
    path = samples.write("gpkg")
    con = sqlite3.connect(path)
    con.executescript(sql)
    con.commit()
    con.close()
    return path


def test_geopackage_views_and_generated_columns_are_refused(tmp_path, samples):
    view = gpkg_with(
        tmp_path,
        samples,
        """CREATE VIEW endless AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c;
           INSERT INTO gpkg_contents (table_name, data_type, identifier) VALUES ('endless', 'attributes', 'endless');""",
    )
    refused(view, "the layer is a view")
    generated = samples.write("gpkg", name="generated")
    con = sqlite3.connect(generated)
    con.execute("ALTER TABLE lamps ADD COLUMN blob BLOB GENERATED ALWAYS AS (zeroblob(1000000000)) VIRTUAL")
    con.commit()
    con.close()
    refused(generated, "generated columns")


@pytest.mark.parametrize(
    "sql",
    [
        # Not in gpkg_contents: GDAL lists it as a layer all the same (LIST_ALL_TABLES=AUTO).
        "CREATE VIEW endless AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c;",
        # Listed under another case: SQLite's names ignore it.
        """CREATE VIEW Endless AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c;
           INSERT INTO gpkg_contents (table_name, data_type, identifier) VALUES ('endless', 'attributes', 'e');""",
        "CREATE TABLE other (id INTEGER PRIMARY KEY, b BLOB GENERATED ALWAYS AS (zeroblob(1000000000)) VIRTUAL);",
    ],
    ids=["unlisted view", "view under another case", "unlisted table with a generated column"],
)
def test_tables_and_views_gpkg_contents_does_not_list_are_checked_too(tmp_path, samples, sql):
    refused(gpkg_with(tmp_path, samples, sql), "view" if "VIEW" in sql else "generated columns")


def test_a_sqlite_file_that_is_not_a_geopackage(tmp_path):
    path = tmp_path / "plain.gpkg"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    refused(path, "not a GeoPackage")


def test_yaml_aliases_in_a_mapping_are_refused(tmp_path):
    path = tmp_path / "mapping.yaml"
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]")
    path.write_text("\n".join(lines) + "\ncolumns: {}\n")
    started = time.monotonic()
    with pytest.raises(UploadRejected, match="anchors and aliases"):
        load_mapping_file(path)
    assert time.monotonic() - started < 1


def test_xlsx_parts_gdal_may_read_are_checked_whatever_their_names(tmp_path, samples):
    source = samples.write("xlsx")
    with zipfile.ZipFile(source) as zf:
        sheet_name = next(n for n in zf.namelist() if n.startswith("xl/worksheets/"))
        sheet = zf.read(sheet_name)
    dtd = sheet.replace(b"?>", b'?><!DOCTYPE w [<!ENTITY x "ENTITY_EXPANDED">]>', 1)
    for name in ("xl/worksheets/sheet9.dat", "xl/worksheets/._sheet9.xml", "__MACOSX/xl/sheet9.xml"):
        path = rewrite_zip(source, tmp_path / f"{abs(hash(name))}.xlsx", {name: dtd})
        refused(path, "declares a DTD")
    commented = sheet.replace(b"?>", b'?><!-- <a> --><!DOCTYPE w [<!ENTITY x "V">]>', 1)
    refused(rewrite_zip(source, tmp_path / "comment.xlsx", {sheet_name: commented}), "declares a DTD")
    # UTF-16, which expat detects without a byte order mark too (a NUL as first or second byte).
    text = dtd.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    for codec in ("utf-16", "utf-16-le", "utf-16-be"):
        wide = rewrite_zip(source, tmp_path / f"{codec}.xlsx", {sheet_name: text.encode(codec)})
        refused(wide, "in UTF-16")


@pytest.mark.parametrize(
    "link",
    [
        "<Link><!-- <href>other.kml</href> --><href>http://example.org/a.kml</href></Link>",
        "<Link><![CDATA[<href>other.kml</href>]]><href>/etc/a.kml</href></Link>",
        "<Link><href>other.kml</href><href>file:///etc/a.kml</href></Link>",
        "<Link><href>other.kml</href>" + " " * 5000 + "</Link>",
        "<kml:Url><kml:href>/srv/a.kml</kml:href></kml:Url>",
    ],
    ids=["decoy in a comment", "decoy in CDATA", "a second href", "no end within 4 KB", "KML 2.0 Url"],
)
def test_a_kmz_link_is_read_as_its_reader_reads_it(tmp_path, link):
    """What LIBKML would load is what is checked: not an href hidden from it, not only the first."""
    doc = kml(f"<NetworkLink>{link}</NetworkLink>").replace(
        b"<kml ", b'<kml xmlns:kml="http://www.opengis.net/kml/2.2" '
    )
    kmz = zip_with(tmp_path / "links.kmz", {"doc.kml": doc, "other.kml": kml("")})
    refused(kmz, "loads another document")


def test_a_kml_in_utf16_is_refused_as_such(tmp_path):
    body = kml("<Placemark><name>x</name></Placemark>").decode().replace("UTF-8", "UTF-16")
    for codec in ("utf-16", "utf-16-le", "utf-16-be"):
        path = tmp_path / f"{codec}.kml"
        path.write_bytes(body.encode(codec))
        refused(path, "in UTF-16")


def test_a_kmz_is_read_from_its_checked_files_only(tmp_path, samples):
    good = samples.write("kmz")
    with zipfile.ZipFile(good) as zf:
        members = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
    sneaky = tmp_path / "sneaky.kmz"
    with zipfile.ZipFile(sneaky, "w") as zf:
        zf.writestr("__MACOSX/evil.kml", vrt(PASSWD))  # never extracted, never read
        for n, data in members.items():
            zf.writestr(n, data)
    with open_upload(sneaky) as info:
        assert info.row_count and info.row_count > 0 and "pw" not in info.layers
    twice = tmp_path / "twice.kmz"
    with zipfile.ZipFile(twice, "w") as zf:
        zf.writestr("doc.kml", vrt(PASSWD))
        zf.writestr("doc.kml", members["doc.kml"])
    refused(twice, "in the archive twice")


def test_kmz_documents_may_link_each_other_each_checked_once(tmp_path):
    """As GDAL's own KMZ files do: a ring of links is no loop, and a folder named .kml no document."""
    from geo.uploads.file_checks import check_kml

    place = "<Placemark><name>L{i}</name><Point><coordinates>-0.14,51.53</coordinates></Point></Placemark>"
    links = {
        f"d{i}.kml": kml(
            place.format(i=i) + f"<NetworkLink><Link><href>d{(i + 1) % 30}.kml</href></Link></NetworkLink>"
        )
        for i in range(30)
    }
    for name, data in links.items():
        (tmp_path / name).write_bytes(data)
    started = time.monotonic()
    for name in links:
        check_kml(tmp_path / name, "ring.kmz", archive_root=tmp_path)
    assert time.monotonic() - started < 5  # it was exponential: each document re-read along every path
    ring = zip_with(tmp_path / "ring.kmz", {**links, "folder.kml/": b""})
    with open_upload(ring) as info:
        assert info.row_count


def test_clashing_zip_member_paths_are_a_rejection_not_a_crash(tmp_path):
    for order in (("assets", "assets/x.shp"), ("assets/x.shp", "assets")):
        path = tmp_path / f"clash{len(order[0])}.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for name in order:
                zf.writestr(name, b"x")
        refused(path, "clashes with another member")


def test_a_geopackage_whose_own_tables_are_views_is_refused_before_any_query(tmp_path):
    path = tmp_path / "views.gpkg"
    con = sqlite3.connect(path)
    con.execute("PRAGMA application_id = 1196444487")
    con.execute(
        "CREATE VIEW gpkg_contents AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) "
        "SELECT 'x' AS table_name FROM r WHERE n < 0"
    )
    con.commit()
    con.close()
    started = time.monotonic()
    refused(path, "'gpkg_contents' is a view")
    assert time.monotonic() - started < 5
