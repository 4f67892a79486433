"""What the Dockerfile needs for the pages, checked without a Docker engine.

The image must serve the same pages as ``make setup``: every vendored file the app links to
(``maps.static_files.LOCAL``, the /app templates and scripts) comes from a package that
``scripts/fetch-static-assets`` fetches, the image runs that script in a build stage and copies its
output to where the app serves it, and ``.dockerignore`` keeps the rest of the app in the image.
"""

from __future__ import annotations

import re
from pathlib import Path

from maps.pages import GOVUK
from maps.static_files import LOCAL, STATIC_DIR, VENDOR_DIR

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts/fetch-static-assets"
VENDOR_LINK = re.compile(r"vendor/([A-Za-z0-9._-]+)/([A-Za-z0-9._/-]+\.(?:js|css))")


def _packages() -> set[str]:
    """The folders the fetch script unpacks: ``<name>-<version>``, a scope "@a/b" written "a-b"."""
    block = re.search(r"PACKAGES=\((.*?)\n\)", SCRIPT.read_text(), re.S)
    assert block, "scripts/fetch-static-assets has no PACKAGES=( ... ) list"
    folders = set()
    for line in block.group(1).splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec:
            name, version = spec.rsplit("@", 1)
            folders.add(f"{name.lstrip('@').replace('/', '-')}-{version}")
    return folders


def _linked_vendor_files() -> set[tuple[str, str]]:
    """(package folder, file) of every vendored file the app links to."""
    texts = [path for path in LOCAL.values() if path]
    pages = [
        *(STATIC_DIR / "app").glob("*.js"),
        *(ROOT / "maps/pages/templates").glob("*.html"),
        ROOT / "api/routes/docs.py",  # Swagger UI
    ]
    texts += [page.read_text().replace("{{ govuk }}", GOVUK) for page in pages]
    return {(m.group(1), m.group(2)) for text in texts for m in VENDOR_LINK.finditer(text)}


def test_every_linked_vendor_file_comes_from_a_fetched_package():
    packages = _packages()
    linked = _linked_vendor_files()
    assert {"leaflet-1.9.3", "govuk-frontend-6.6.0"} <= {folder for folder, _ in linked}
    unknown = sorted(f"{folder}/{file}" for folder, file in linked if folder not in packages)
    assert not unknown, f"linked but not fetched by scripts/fetch-static-assets: {unknown}"
    missing = sorted(
        f"{folder}/{file}" for folder, file in linked if not (VENDOR_DIR / folder / file).is_file()
    )
    assert not missing, f"linked but not on disk after the fetch: {missing}"


def test_the_image_fetches_the_assets_in_a_build_stage_and_serves_them():
    stages = re.split(r"^FROM ", (ROOT / "Dockerfile").read_text(), flags=re.M)[1:]
    assert len(stages) == 2, "a build stage for the static files, then the app"
    build, app = stages
    name = re.match(r"\S+ AS (\S+)", build)
    assert name, "the first stage is named (FROM <image> AS <name>)"
    assert re.search(r"^RUN .*scripts/fetch-static-assets", build, re.M)
    assert re.search(r"^COPY scripts/fetch-static-assets ", build, re.M)
    workdir = re.search(r"^WORKDIR (\S+)", build, re.M)
    assert workdir
    served = VENDOR_DIR.relative_to(ROOT).as_posix()
    copy = rf"^COPY --from={name.group(1)} {re.escape(workdir.group(1))}/{served} {served}$"
    assert re.search(copy, app, re.M), f"the app stage copies {served} from the build stage"
    assert app.index("COPY . .") < app.index(f"COPY --from={name.group(1)}"), "the vendor copy comes last"


def test_dockerignore_keeps_what_the_app_serves():
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()]
    for needed in ("maps/pages/templates", "maps/static/app", "data", "geo/db/migrations", "scripts"):
        assert not any(needed == rule or needed.startswith(rule.rstrip("/") + "/") for rule in ignored), (
            needed
        )
    assert "maps/static/vendor" in ignored  # filled by the build stage, not from the build context
