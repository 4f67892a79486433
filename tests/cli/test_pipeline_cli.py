"""``connectivity pipeline``: import with a summary and errors, re-import, the unplaced list."""

from pathlib import Path

from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()
FIXTURES = Path(__file__).parent.parent / "fixtures" / "pipeline"


def invoke(db_url, *args):
    return runner.invoke(app, list(args), env={"DATABASE_URL": db_url, "COLUMNS": "200"})


def test_import_reimport_and_unplaced(isolated):
    csv = str(FIXTURES / "PipelineReports.csv")
    rejected = invoke(isolated.url, "pipeline", "import", csv)
    assert rejected.exit_code == 1
    assert (
        "rejected" in rejected.stdout
        and "31/02/2021" in rejected.stdout
        and "a project needs a title" in rejected.stdout
    )
    assert "nothing was imported" in rejected.output
    dry = invoke(isolated.url, "pipeline", "import", csv, "--skip-invalid", "--dry-run")
    assert dry.exit_code == 0 and "previewed" in dry.stdout
    applied = invoke(isolated.url, "pipeline", "import", csv, "--skip-invalid")
    assert applied.exit_code == 0, applied.output
    lines = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in applied.stdout.splitlines()
        if line.count("│") == 3
    }
    assert lines["new"] == "6" and lines["unplaced"] == "2" and lines["errors"] == "2"
    again = invoke(isolated.url, "pipeline", "import", csv, "--skip-invalid")
    lines = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in again.stdout.splitlines()
        if line.count("│") == 3
    }
    assert lines["new"] == "0" and lines["changed"] == "0" and lines["unchanged"] == "6"
    unplaced = invoke(isolated.url, "pipeline", "unplaced")
    assert unplaced.exit_code == 0
    assert "'Surrey County Council' is not a London organisation" in unplaced.stdout
    assert "'Widgets & Co' not recognised" in unplaced.stdout


def test_missing_and_bad_files(isolated, tmp_path):
    missing = invoke(isolated.url, "pipeline", "import", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "no such file" in missing.output
    bad = tmp_path / "bad.json"
    bad.write_text("[{")
    result = invoke(isolated.url, "pipeline", "import", str(bad))
    assert result.exit_code == 1 and "not valid JSON" in result.output
