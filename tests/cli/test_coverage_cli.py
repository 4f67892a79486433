"""``connectivity coverage``: the same report as the API, with a summary table and a file."""

from __future__ import annotations

import csv
import json
import re

from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def invoke(db_url, *args):
    return runner.invoke(app, list(args), env={"DATABASE_URL": db_url, "COLUMNS": "200"})


def test_coverage_writes_a_report_and_prints_the_summary(db_url, tmp_path):
    out = tmp_path / "report.html"
    result = invoke(db_url, "coverage", "--borough", "E09000007", "--radius", "100", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "100 m" in result.stdout and "%" in result.stdout
    html = out.read_text()
    assert "<svg" in html and "Coverage report" in html and "https://" not in html
    # It stands alone: Leaflet and the page's own script and styles are inside, nothing is linked.
    assert "Leaflet 1.9.3" in html and 'id="report-data"' in html and "/static/" not in html
    assert not re.search(r"<script[^>]*\ssrc=|<link[^>]*stylesheet", html)
    assert "Time taken, in seconds" in html and not re.search(r"\{'\w+': ", html)


def test_coverage_json_and_csv_agree(db_url, tmp_path):
    as_json = tmp_path / "r.json"
    as_csv = tmp_path / "d.csv"
    args = (
        "coverage",
        "--bbox",
        "528000,181000,530000,183000",
        "--grid",
        "100",
        "--radius",
        "50",
        "--radius",
        "200",
    )
    assert invoke(db_url, *args, "--format", "json", "--out", str(as_json)).exit_code == 0
    assert invoke(db_url, *args, "--format", "csv", "--out", str(as_csv)).exit_code == 0
    record = json.loads(as_json.read_text())
    assert record["parameters"]["thresholds"] == [50.0, 200.0]
    rows = list(csv.DictReader(as_csv.open()))
    assert len(rows) == record["summary"]["cells"] == 400
    total = record["summary"]["whole_area"][0]["households"]
    assert abs(sum(float(r["households"]) for r in rows) - total) < 1e-6


def test_coverage_rejects_a_bad_area_with_the_reason(db_url, tmp_path):
    result = invoke(db_url, "coverage", "--borough", "E09000099", "--out", str(tmp_path / "x.html"))
    assert result.exit_code == 2 and "E09000099" in result.output
    both = invoke(db_url, "coverage", "--borough", "E09000007", "--bbox", "1,2,3,4")
    assert both.exit_code == 2 and "give one of" in both.output
