"""What an uploaded file must be before any parser sees it: its format by content, and its size.

An upload is named by its sender; GDAL would pick a driver by its content. These checks make
the two agree: a file is read only as the format its extension says (:func:`check_content`),
and only once its structure is known to stay within the limits (columns, line and field
sizes, expanded size of archives and spreadsheets), so that nothing costs more memory or time
than the file's own size allows. Each refusal is an :class:`~geo.core.row_errors.UploadRejected`
naming the file and what was wrong; none carries a server path.

The checks read the bytes themselves (magic numbers, zip directories, XML prologs, SQLite
catalogues through Python's ``sqlite3``, which has no GDAL functions): they never hand the
file to GDAL.
"""

from __future__ import annotations

import codecs
import re
import sqlite3
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from geo.core.row_errors import UploadRejected

#: How the start of a file tells what it is, for messages about a file that is not what it says.
SIGNATURES = (
    (b"<OGRVRTDataSource", "a GDAL virtual dataset (VRT), which is not accepted"),
    (b"SQLite format 3\x00", "an SQLite database (a GeoPackage?)"),
    (b"PK\x03\x04", "a zip archive"),
    (b"fgb\x03fgb", "a FlatGeobuf file"),
    (b"\x00\x00\x27\x0a", "a Shapefile's .shp part"),
    (b"<?xml", "an XML document"),
    (b"<", "an XML document"),
    (b"{", "JSON"),
    (b"[", "JSON"),
)
GPKG_APPLICATION_IDS = {b"GPKG", b"GP10", b"GP11"}
FLATGEOBUF_MAGIC = b"fgb\x03fgb"
SHP_MAGIC = b"\x00\x00\x27\x0a"
# GDAL virtual file systems (/vsicurl/, /vsizip/, /vsimem/...): a path to one inside a file is
# how a file reaches other files or the network.
VSI_PATH = re.compile(rb"/vsi[a-z0-9_]*/", re.IGNORECASE)
# KML elements that make a reader load another document (a NetworkLink's Link, or KML 2.0's Url).
KML_LINKS = re.compile(rb"<((?:[A-Za-z_][\w.-]*:)?(?:Link|Url))(?=[\s/>])")
KML_HREF = re.compile(rb"<(?:[\w.-]+:)?href>\s*([^<]*?)\s*</(?:[\w.-]+:)?href>")
PROLOG_LIMIT = 64 * 2**10
SCAN_CHUNK = 4 * 2**20


@dataclass(frozen=True)
class Limits:
    """The limits a file is checked against (:class:`geo.uploads.source.ReadLimits` carries them)."""

    max_uncompressed_bytes: int
    max_compression_ratio: float
    max_columns: int
    max_line_bytes: int
    max_spreadsheet_bytes: int


def _head(path: Path, size: int = 4096) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def describe(head: bytes) -> str:
    """What the first bytes of a file look like, in words."""
    stripped = head.removeprefix(codecs.BOM_UTF8).lstrip()
    for signature, what in SIGNATURES:
        if stripped.startswith(signature) or head.startswith(signature):
            return what
    if b"\x00" in head[:512]:
        return "binary data"
    return "text of an unrecognised kind"


def _not_what_it_says(name: str, fmt: str, path: Path) -> UploadRejected:
    return UploadRejected(
        f"the file is named as {fmt} but holds {describe(_head(path))}; refused: a file is read only as the "
        "format its extension names (rename it to its real format, or export it again)",
        file=name,
    )


def _chunks(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(offset, bytes)`` of the file in overlapping chunks, so a pattern across a boundary is seen."""
    tail = b""
    offset = 0
    with open(path, "rb") as f:
        while block := f.read(SCAN_CHUNK):
            yield offset - len(tail), tail + block
            offset += len(block)
            tail = block[-256:]


def _refuse_vsi_paths(path: Path, name: str) -> None:
    for _, chunk in _chunks(path):
        found = VSI_PATH.search(chunk)
        if found:
            raise UploadRejected(
                f"the file refers to a GDAL virtual file system ({found.group().decode(errors='replace')}...), "
                "a way to reach other files or the network; refused",
                file=name,
            )


def _utf16(head: bytes) -> str | None:
    """The codec of a document expat reads as UTF-16 (a byte order mark, or a NUL as its first
    byte: big-endian, or as its second: little-endian), else None."""
    if head.startswith(codecs.BOM_UTF16_BE) or head[:1] == b"\x00":
        return "utf-16-be"
    if head.startswith(codecs.BOM_UTF16_LE) or head[1:2] == b"\x00":
        return "utf-16-le"
    return None


def _looks_like_xml(head: bytes) -> bool:
    """Whether an XML parser would take the document for XML: its first character is ``<``."""
    codec = _utf16(head)
    text = head.decode(codec, errors="replace").encode() if codec else head
    return text.removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"<")


def _xml_root(head: bytes, name: str) -> bytes:
    """The first bytes of an XML document from its root element on, refusing DTDs (entities, XXE).

    The prolog is read token by token, as an XML parser reads it: a byte order mark, white
    space, processing instructions (``<?…?>``) and comments (``<!--…-->``) may come before the
    root element; a ``<!DOCTYPE`` (or any other declaration) is refused, wherever it stands
    among them. UTF-16 is refused: the checks read bytes (KML and spreadsheets are UTF-8).
    """
    if _utf16(head):
        raise UploadRejected(
            "the XML document is in UTF-16; refused: save it as UTF-8 (as KML and Excel write it)", file=name
        )
    at = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
    while True:
        while at < len(head) and head[at : at + 1].isspace():
            at += 1
        if head.startswith(b"<?", at):
            end = head.find(b"?>", at + 2)
            at = -1 if end < 0 else end + 2
        elif head.startswith(b"<!--", at):
            end = head.find(b"-->", at + 4)
            at = -1 if end < 0 else end + 3
        elif head.startswith(b"<!", at):
            raise UploadRejected(
                "the XML document declares a DTD or entities (<!DOCTYPE ...>); refused: they can expand "
                "without bound or read other files, and KML and spreadsheets never need them",
                file=name,
            )
        elif re.match(rb"<[A-Za-z_]", head[at : at + 2]):
            return head[at:]
        else:
            at = -1
        if at < 0:
            raise UploadRejected("not an XML document with a root element in its first 64 KB", file=name)


def check_geojson(path: Path, name: str) -> None:
    """A GeoJSON text: a JSON object, with no GDAL virtual path inside."""
    head = _head(path)
    if not head.removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"{"):
        raise _not_what_it_says(name, "GeoJSON", path)
    _refuse_vsi_paths(path, name)


def _kml_links(path: Path) -> Iterator[tuple[str, list[str] | None]]:
    """``(element, hrefs)`` of each link to another document: every ``href`` the element holds.

    None instead of the hrefs when the element does not end within 4 KB, or holds a comment, a
    CDATA section or an ``href`` that is not plain text: what a reader would load is then not
    certain, so the caller refuses it.
    """
    seen: set[int] = set()
    with open(path, "rb") as f:
        for offset, chunk in _chunks(path):
            for found in KML_LINKS.finditer(chunk):
                at = offset + found.start()
                if at in seen:
                    continue
                seen.add(at)
                f.seek(at)
                window = f.read(4096)
                element = found.group(1).decode(errors="replace")
                end = re.search(rb"</" + re.escape(found.group(1)) + rb"\s*>", window)
                body = window[: end.start()] if end else b""
                hrefs = [h.decode(errors="replace") for h in KML_HREF.findall(body)]
                unclear = (
                    end is None
                    or b"<!--" in body
                    or b"<![CDATA[" in body
                    or len(re.findall(rb"<(?:[\w.-]+:)?href\b", body)) != len(hrefs)
                )
                yield element, None if unclear else hrefs


def check_kml(path: Path, name: str, archive_root: Path | None = None) -> None:
    """A KML document: UTF-8 XML whose root is ``kml``, without DTD or GDAL paths, loading no other document.

    In a KMZ (``archive_root``: where it was extracted) a document may link documents of the
    same archive by relative path, as GDAL's own KMZ files do; the caller checks every document
    of the archive, so the linked ones too (each once, however they link each other).
    """
    head = _head(path, PROLOG_LIMIT)
    if not _looks_like_xml(head):
        raise _not_what_it_says(name, "KML", path)
    root = _xml_root(head, name)
    if not re.match(rb"<(?:[A-Za-z_][\w.-]*:)?kml\b", root):
        raise _not_what_it_says(name, "KML", path)
    _refuse_vsi_paths(path, name)
    for element, hrefs in _kml_links(path):
        for href in hrefs or [""]:
            if hrefs is None or _archive_document(path, href, archive_root) is None:
                raise UploadRejected(
                    f"the KML loads another document (<{element}> {href}); refused: send the features "
                    "themselves (in a KMZ, a document may link only documents of the same archive)",
                    file=name,
                    value=href or None,
                )


def _archive_document(doc: Path, href: str | None, root: Path | None) -> Path | None:
    """The file of an archive a relative ``href`` names, or None when it names anything else."""
    if root is None or not href or re.match(r"^[A-Za-z][\w+.-]*:", href) or href.startswith(("/", "\\")):
        return None
    parts = re.split(r"[/\\]", href.split("#", 1)[0].split("?", 1)[0])
    if ".." in parts:
        return None
    target = doc.parent.joinpath(*parts)
    try:
        target.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    return target if target.is_file() and target.suffix.lower() == ".kml" else None


def check_flatgeobuf(path: Path, name: str) -> None:
    """A FlatGeobuf file by its magic bytes."""
    head = _head(path, 8)
    if not head.startswith(FLATGEOBUF_MAGIC):
        raise _not_what_it_says(name, "FlatGeobuf", path)


def check_geopackage(path: Path, name: str, limits: Limits) -> None:
    """A GeoPackage: an SQLite file of the GeoPackage application whose layers are plain tables.

    Views and generated columns are refused: reading them runs SQL stored in the file (a
    recursive view never ends; a generated column can allocate without bound). Virtual
    tables other than the R*Tree spatial indexes are refused too.
    """
    head = _head(path, 100)
    if not head.startswith(b"SQLite format 3\x00"):
        raise _not_what_it_says(name, "GeoPackage", path)
    corrupt = UploadRejected(
        "cannot read the file (corrupted or truncated?): not a complete SQLite database", file=name
    )
    if len(head) < 100:
        raise corrupt
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    if page_size < 512 or page_size & (page_size - 1) or pages * page_size > path.stat().st_size:
        raise corrupt
    if head[68:72] not in GPKG_APPLICATION_IDS:
        raise UploadRejected(
            "the file is an SQLite database but not a GeoPackage (its application id is not 'GPKG'); "
            "export it as a GeoPackage",
            file=name,
        )
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error:
        raise corrupt from None
    try:
        con.execute("PRAGMA trusted_schema = OFF")
        objects = {
            row[0]: (row[1], row[2] or "")
            for row in con.execute(
                "SELECT name, type, sql FROM sqlite_master WHERE type IN ('table', 'view')"
            )
        }
        # Every table and view, not only those gpkg_contents lists: GDAL lists the others as
        # layers too (LIST_ALL_TABLES=AUTO), and names are compared without regard to case.
        for table, (kind, text) in objects.items():
            internal = table.lower().startswith(("gpkg_", "rtree_", "sqlite_"))
            if kind == "view" and internal:  # GDAL and this check read these themselves
                raise UploadRejected(
                    f"{table!r} is a view (stored SQL) where a GeoPackage has a table; refused", file=name
                )
            if kind == "view":
                raise UploadRejected(
                    "the layer is a view (stored SQL), which is not read; export its rows as a table",
                    file=name,
                    layer=table,
                )
            if text.upper().startswith("CREATE VIRTUAL TABLE"):
                if not re.search(r"USING\s+rtree\b", text, re.IGNORECASE):
                    raise UploadRejected(
                        f"table {table!r} is a virtual table of a module other than the spatial index; refused",
                        file=name,
                    )
                continue
            columns = con.execute(f"PRAGMA table_xinfo({_quote(table)})").fetchall()
            if any(c[6] in (2, 3) for c in columns):  # hidden = 2 (virtual) or 3 (stored) generated
                raise UploadRejected(
                    "the layer has generated columns (computed by SQL stored in the file); refused",
                    file=name,
                    layer=table,
                )
            if not internal and len(columns) > limits.max_columns:
                raise UploadRejected(
                    f"the layer has {len(columns):,} columns, more than the limit of {limits.max_columns:,}",
                    file=name,
                    layer=table,
                )
    except sqlite3.DatabaseError:
        raise corrupt from None
    finally:
        con.close()


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def check_shapefile(shp: Path, name: str, limits: Limits) -> None:
    """A Shapefile: its .shx and .dbf beside it, the .shp by its magic number, the .dbf's column count."""
    parts = {p.suffix.lower(): p for p in shp.parent.iterdir() if p.stem == shp.stem}
    missing = [ext for ext in (".shx", ".dbf") if ext not in parts]
    if missing:
        raise UploadRejected(
            f"the Shapefile {shp.name} comes without {' and '.join(missing)}; zip .shp, .shx and .dbf "
            "(and .prj, .cpg if you have them) together",
            file=name,
        )
    if _head(shp, 4) != SHP_MAGIC:
        raise _not_what_it_says(name, f"Shapefile ({shp.name})", shp)
    dbf = parts[".dbf"]
    header = _head(dbf, 32)
    if len(header) < 32:
        raise UploadRejected(
            f"cannot read the file (corrupted or truncated?): {dbf.name} is truncated", file=name
        )
    columns = max((int.from_bytes(header[8:10], "little") - 33) // 32, 0)
    if columns > limits.max_columns:
        raise UploadRejected(
            f"{dbf.name} has {columns:,} columns, more than the limit of {limits.max_columns:,}", file=name
        )


# Zip archives (Shapefile zips, KMZ, XLSX) ---------------------------------------------------------------
def _member_parts(filename: str) -> list[str]:
    return re.split(r"[/\\]", filename)


def zip_members(
    zf: zipfile.ZipFile, name: str, limits: Limits, max_total: int | None = None, *, all_members: bool = False
) -> list[zipfile.ZipInfo]:
    """The members of an archive worth reading, refusing traversal, links, encryption, repeats and bombs.

    macOS's side files (``__MACOSX/``, ``._*``) are left out unless ``all_members``: for an
    archive GDAL reads itself (XLSX), which may open any member, every one is checked.
    """
    max_total = limits.max_uncompressed_bytes if max_total is None else max_total
    members = []
    seen: set[str] = set()
    for info in zf.infolist():
        parts = _member_parts(info.filename)
        if info.filename.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", info.filename) or ".." in parts:
            raise UploadRejected(
                f"zip member {info.filename!r} has an absolute path or '..' (path traversal); refused",
                file=name,
                value=info.filename,
            )
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UploadRejected(
                f"zip member {info.filename!r} is a symbolic link; refused", file=name, value=info.filename
            )
        if info.flag_bits & 0x1:
            raise UploadRejected(
                f"zip member {info.filename!r} is encrypted; send the archive without a password",
                file=name,
                value=info.filename,
            )
        if info.filename in seen:
            raise UploadRejected(
                f"zip member {info.filename!r} is in the archive twice; refused",
                file=name,
                value=info.filename,
            )
        seen.add(info.filename)
        if info.is_dir() or (not all_members and (parts[0] == "__MACOSX" or parts[-1].startswith("._"))):
            continue
        members.append(info)
    total = sum(m.file_size for m in members)
    if total > max_total:
        raise UploadRejected(
            f"the zip would expand to {total / 2**20:.0f} MB, more than the limit of "
            f"{max_total / 2**20:.0f} MB (zip bomb?)",
            file=name,
        )
    for m in members:
        if m.file_size > 2**20 and m.file_size > limits.max_compression_ratio * max(m.compress_size, 1):
            raise UploadRejected(
                f"zip member {m.filename!r} is compressed {m.file_size / max(m.compress_size, 1):.0f} to 1, "
                f"more than the limit of {limits.max_compression_ratio:.0f} to 1 (zip bomb?)",
                file=name,
                value=m.filename,
            )
    return members


def open_zip(archive: Path, name: str) -> zipfile.ZipFile:
    """The archive, or a rejection saying it cannot be read."""
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UploadRejected(
            f"not a readable zip archive (corrupted or truncated?): {exc}", file=name
        ) from None


def read_member(zf: zipfile.ZipFile, member: zipfile.ZipInfo, name: str, limit: int) -> Iterator[bytes]:
    """A member's bytes in chunks, stopping at ``limit`` whatever its header claims."""
    written = 0
    try:
        with zf.open(member) as src:
            while chunk := src.read(2**20):
                written += len(chunk)
                if written > limit:
                    raise UploadRejected(
                        f"the zip expands beyond the limit of {limit / 2**20:.0f} MB (zip bomb?)", file=name
                    )
                yield chunk
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError) as exc:
        raise UploadRejected(
            f"zip member {member.filename!r} cannot be extracted (corrupted or truncated?): {exc}", file=name
        ) from None


def extract_zip(archive: Path, dest: Path, limits: Limits, name: str) -> None:
    """Extract a zip (a zipped Shapefile, a KMZ) into ``dest`` within the limits."""
    with open_zip(archive, name) as zf:
        members = zip_members(zf, name, limits)
        left = limits.max_uncompressed_bytes
        for m in members:
            target = dest / Path(*_member_parts(m.filename))
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as out:
                    for chunk in read_member(zf, m, name, left):
                        out.write(chunk)
                    left -= out.tell()
            except OSError:  # a member named like another's folder, or the reverse
                raise UploadRejected(
                    f"zip member {m.filename!r} clashes with another member's path; refused",
                    file=name,
                    value=m.filename,
                ) from None


def rezip(folder: Path, target: Path) -> Path:
    """A zip of the files below ``folder`` (paths relative to it): an archive of checked files only."""
    with zipfile.ZipFile(
        target, "w", zipfile.ZIP_STORED
    ) as zf:  # read once, straight away: no need to compress
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
            zf.write(path, path.relative_to(folder).as_posix())
    return target


def check_xlsx(path: Path, name: str, limits: Limits) -> None:
    """An XLSX workbook: a zip with a workbook, no DTDs, within the spreadsheet size and column limits.

    GDAL reads a whole sheet into memory, its shared strings too, so the expanded XML is what
    costs: it is checked against ``max_spreadsheet_bytes`` before GDAL opens the file, member by
    member as it really expands, and the first row of every sheet against ``max_columns``.
    """
    head = _head(path, 4)
    if not head.startswith(b"PK\x03\x04"):
        raise _not_what_it_says(name, "XLSX", path)
    with open_zip(path, name) as zf:
        members = zip_members(zf, name, limits, max_total=limits.max_spreadsheet_bytes, all_members=True)
        names = {m.filename for m in members}
        if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
            raise UploadRejected(
                "the zip is not an Excel workbook (no xl/workbook.xml); save it as .xlsx", file=name
            )
        left = limits.max_spreadsheet_bytes
        # Every member, whatever its name: a relationship may point a sheet anywhere in the
        # package. XML is told by its content; every sheet's first row is counted.
        for m in members:
            first, cells, row_done = True, 0, True
            for chunk in read_member(zf, m, name, left):  # 1 MB chunks: the first holds the prolog
                left -= len(chunk)
                if first:
                    first = False
                    if not _looks_like_xml(chunk):
                        continue  # an image or other binary part: its bytes counted, not parsed
                    _xml_root(chunk[:PROLOG_LIMIT], name)
                    row_done = b"<sheetData" not in chunk and b":sheetData" not in chunk
                if not row_done:
                    end = chunk.find(b"</row>")
                    cells += len(re.findall(rb"<c[\s>/]", chunk if end < 0 else chunk[:end]))
                    row_done = end >= 0
                    if cells > limits.max_columns:
                        raise UploadRejected(
                            f"sheet {m.filename.rsplit('/', 1)[-1]} has more than {limits.max_columns:,} "
                            "columns in its first row, more than the limit",
                            file=name,
                        )


def scan_text(path: Path, name: str, limits: Limits) -> tuple[str, int, int]:
    """``(encoding, lines, longest line in bytes)`` of a text table, in one pass over the file.

    The encoding is UTF-8 (``utf-8-sig`` with a byte order mark) if the whole file decodes,
    else Latin-1. NUL bytes (not text) and lines over ``max_line_bytes`` are refused.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    lines = longest = current = 0
    with open(path, "rb") as f:
        bom = f.read(3) == codecs.BOM_UTF8
        f.seek(0)
        while chunk := f.read(SCAN_CHUNK):
            if b"\x00" in chunk:
                raise UploadRejected("the file holds NUL bytes: it is not a text CSV", file=name)
            if utf8:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
            start = 0
            while (end := chunk.find(b"\n", start)) >= 0:
                if current + end - start > limits.max_line_bytes:
                    raise _line_too_long(name, lines + 1, limits)
                longest = max(longest, current + end - start)
                current = 0
                lines += 1
                start = end + 1
            current += len(chunk) - start
            if current > limits.max_line_bytes:
                raise _line_too_long(name, lines + 1, limits)
    if current:
        lines += 1
        longest = max(longest, current)
    encoding = ("utf-8-sig" if bom else "utf-8") if utf8 else "latin-1"
    return encoding, lines, longest


def _line_too_long(name: str, line: int, limits: Limits) -> UploadRejected:
    return UploadRejected(
        f"line {line:,} is longer than the limit of {limits.max_line_bytes / 2**20:g} MB", file=name
    )


def check_csv_header(header: bytes, delimiter: str, name: str, limits: Limits) -> None:
    """The header of a CSV (its first line, perhaps cut at the line limit) names at most ``max_columns`` columns."""
    columns = header.count(delimiter.encode()) + 1
    if columns > limits.max_columns:
        whole = header.endswith(b"\n")
        raise UploadRejected(
            f"the header names {'' if whole else 'at least '}{columns:,} columns, more than the limit of "
            f"{limits.max_columns:,}",
            file=name,
        )


def check_content(path: Path, fmt: str, name: str, limits: Limits, archive_root: Path | None = None) -> None:
    """Refuse a file that is not the format its extension names, or that would read beyond the limits.

    ``fmt`` is the format as :data:`geo.uploads.source.FORMATS` names it. Archives (Shapefile zips,
    KMZ) are checked as they are extracted (:func:`extract_zip`), then their members: a KMZ's
    document here, a Shapefile's parts by :func:`check_shapefile`.
    """
    if fmt == "GeoJSON":
        check_geojson(path, name)
    elif fmt in ("KML", "KMZ"):
        check_kml(path, name, archive_root=archive_root)
    elif fmt == "FlatGeobuf":
        check_flatgeobuf(path, name)
    elif fmt == "GeoPackage":
        check_geopackage(path, name, limits)
    elif fmt == "XLSX":
        check_xlsx(path, name, limits)
