"""``connectivity export ofds``: the same OFDS network as the API, written to a file."""

from __future__ import annotations

import json

import psycopg
from ofds_checks import validation_problems
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def invoke(db_url, *args):
    return runner.invoke(app, list(args), env={"DATABASE_URL": db_url, "COLUMNS": "200"})


def test_export_ofds_writes_a_valid_package_and_refuses_a_bad_borough(db_url, tmp_path):
    out = tmp_path / "camden.json"
    done = invoke(db_url, "export", "ofds", "--borough", "E09000007", "--out", str(out))
    assert done.exit_code == 0, done.output
    package = json.loads(out.read_bytes())
    assert validation_problems(package) == ([], [], {})
    with psycopg.connect(db_url) as conn:
        ducts = conn.execute(
            "SELECT count(*) FROM assets WHERE kind = 'duct' AND borough_code = 'E09000007' AND retired_at IS NULL"
        ).fetchone()[0]
    assert len(package["networks"][0]["spans"]) == ducts and f"{ducts:,} spans" in done.stdout
    bad = invoke(db_url, "export", "ofds", "--borough", "E09000099", "--out", str(tmp_path / "bad.json"))
    assert bad.exit_code == 2 and "E09000099" in bad.output
    assert not list(tmp_path.glob("bad.json*"))  # nothing half-written is left
