"""``connectivity import``: a borough's file previewed, applied, and refused with a non-zero exit."""

from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def invoke(db_url, *args):
    return runner.invoke(app, list(args), env={"DATABASE_URL": db_url, "COLUMNS": "200"})


def test_import_previews_applies_and_rejects_with_a_non_zero_exit(isolated, samples):
    frame = samples.stops.copy()
    frame["UNITNO"] = "CLI-" + frame["UNITNO"]
    path = samples.write("csv", crs=4326, frame=frame)
    base = ["import", str(path), "--borough", "E09000007", "--kind", "street_furniture"]
    preview = invoke(isolated.url, *base, "--dry-run")
    assert preview.exit_code == 0, preview.output
    assert (
        "previewed" in preview.stdout and "new" in preview.stdout and "UNITNO -> source_id" in preview.stdout
    )
    applied = invoke(isolated.url, *base)
    assert applied.exit_code == 0 and "applied" in applied.stdout
    frame.loc[0, "HEIGHT"] = 9999
    bad = samples.write("csv", crs=4326, frame=frame, name="bad")
    rejected = invoke(
        isolated.url, "import", str(bad), "--borough", "E09000007", "--kind", "street_furniture"
    )
    assert (
        rejected.exit_code == 1 and "nothing was applied" in rejected.output and "HEIGHT" in rejected.stdout
    )
    missing = invoke(isolated.url, "import", "/nonexistent.gpkg", "--borough", "E09000007")
    assert missing.exit_code == 2 and "no such file" in missing.output
    empty = samples.tmp / "empty.csv"
    empty.write_text("")
    assert invoke(isolated.url, "import", str(empty), "--borough", "E09000007").exit_code == 1
