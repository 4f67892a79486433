"""``lazy_exports``: the packages' public names are imported from their homes when first used."""

import subprocess
import sys

import pytest

import geo.coverage
import geo.uploads


@pytest.mark.parametrize("package", [geo.coverage, geo.uploads], ids=lambda p: p.__name__)
def test_every_public_name_resolves_and_is_kept_in_the_package(package):
    assert sorted(package.__all__) == sorted(package._HOMES)
    for name in package.__all__:
        if name in package._HOMES.values():  # coverage's demand_layers: the submodule, once imported, wins
            continue
        value = getattr(package, name)
        assert vars(package)[name] is value
        assert value is getattr(sys.modules[f"{package.__name__}.{package._HOMES[name]}"], name)


@pytest.mark.parametrize("package", [geo.coverage, geo.uploads], ids=lambda p: p.__name__)
def test_an_unknown_name_is_an_attribute_error_naming_the_package(package):
    with pytest.raises(AttributeError, match=f"module '{package.__name__}' has no attribute 'nonsense'"):
        package.nonsense  # noqa: B018
    assert not hasattr(package, "nonsense")


def test_importing_the_coverage_package_loads_no_analysis_library():
    code = (
        "import sys, geo.coverage; "
        "print(sorted(m for m in ('scipy', 'pandas', 'geopandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
