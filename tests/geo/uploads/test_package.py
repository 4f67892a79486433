"""``geo.uploads`` re-exports its public names, and importing it loads none of the readers."""

import subprocess
import sys

import geo.uploads


def test_every_public_name_resolves_to_its_module():
    assert sorted(geo.uploads.__all__) == sorted(geo.uploads._HOMES)
    for name in geo.uploads.__all__:
        value = getattr(geo.uploads, name)
        assert getattr(value, "__module__", f"geo.uploads.{geo.uploads._HOMES[name]}").startswith(
            "geo.uploads."
        )


def test_importing_the_package_loads_no_reader():
    code = (
        "import sys, geo.uploads, geo.uploads.sandbox_server; "
        "print(sorted(m for m in ('pandas', 'pyogrio', 'pyarrow', 'shapely') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
