import os
import subprocess
import sys
from pathlib import Path

import psycopg
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def invoke(db_url, *args):
    return runner.invoke(app, list(args), env={"DATABASE_URL": db_url, "COLUMNS": "200"})


def test_keys_create_list_revoke(db_url):
    created = invoke(
        db_url, "keys", "create", "--role", "borough", "--borough", "E09000007", "--label", "Camden GIS"
    )
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("cx_")
    listed = invoke(db_url, "keys", "list")
    assert listed.exit_code == 0 and "Camden GIS" in listed.stdout and key not in listed.stdout
    key_id = next(line.split("│")[1].strip() for line in listed.stdout.splitlines() if "Camden GIS" in line)
    revoked = invoke(db_url, "keys", "revoke", key_id)
    assert revoked.exit_code == 0 and f"key {key_id} revoked" in revoked.stdout
    again = invoke(db_url, "keys", "revoke", key_id)
    assert again.exit_code == 1 and f"no live key has id {key_id}" in again.output


def test_operator_keys_can_be_bound_to_their_operator(db_url):
    created = invoke(
        db_url, "keys", "create", "--role", "operator", "--operator", "Openreach", "--label", "OR"
    )
    assert created.exit_code == 0, created.output
    listed = invoke(db_url, "keys", "list").stdout
    assert any("Openreach" in line and "OR" in line for line in listed.splitlines())
    wrong = invoke(db_url, "keys", "create", "--role", "admin", "--operator", "Openreach")
    assert wrong.exit_code == 2 and "operator keys only" in wrong.output


def test_bad_key_requests_exit_non_zero_with_the_reason(db_url):
    wrong = invoke(db_url, "keys", "create", "--role", "borough", "--borough", "E09000099")
    assert wrong.exit_code == 2 and "'E09000099' is not a London authority GSS code" in wrong.output
    unbound = invoke(db_url, "keys", "create", "--role", "borough")
    assert unbound.exit_code == 2 and "needs --borough" in unbound.output


def test_bad_key_expiries_exit_2_with_the_reason(db_url):
    far = invoke(db_url, "keys", "create", "--role", "admin", "--expires-days", "3000000")
    assert far.exit_code == 2 and "not between 1 and 36,500" in far.output
    assert isinstance(far.exception, SystemExit)  # a clean exit, not an OverflowError
    past = invoke(db_url, "keys", "create", "--role", "admin", "--expires-days", "0")
    assert past.exit_code == 2 and "not between 1 and 36,500" in past.output


def test_gdpr_export_to_a_file_only_its_owner_reads_and_bad_requests_exit_2(db_url, tmp_path):
    out = tmp_path / "export.json"
    out.write_text("old")
    out.chmod(0o644)
    done = invoke(db_url, "gdpr", "export", "--email", "nobody.held@example.org", "--out", str(out))
    assert done.exit_code == 0, done.output
    assert out.stat().st_mode & 0o777 == 0o600 and '"tables"' in out.read_text()
    unwritable = invoke(
        db_url, "gdpr", "export", "--email", "a@example.org", "--out", str(tmp_path / "no" / "x.json")
    )
    assert unwritable.exit_code == 2 and "cannot be written" in unwritable.output
    # Checked before asking: no "Erase   everywhere?" for a request that names nobody.
    nobody = invoke(db_url, "gdpr", "erase")
    assert (
        nobody.exit_code == 2 and "give the person's email" in nobody.output and "Erase" not in nobody.output
    )
    one_word = invoke(db_url, "gdpr", "erase", "--name", "Ann")
    assert one_word.exit_code == 2 and "full name" in one_word.output


def test_migrate_twice_applies_nothing(db_url):
    result = invoke(db_url, "db", "migrate")
    assert result.exit_code == 0 and "applied: nothing" in result.stdout


def test_demo_refuses_a_database_that_holds_assets(db_url):
    result = invoke(db_url, "demo", "load", "--scale", "small")
    assert result.exit_code == 1 and "already holds" in result.output
    bad = invoke(db_url, "demo", "load", "--scale", "huge")
    assert bad.exit_code == 2 and "unknown scale 'huge'" in bad.output


def test_db_url_is_one_line_a_narrow_pipe_can_connect_with(app_db_url):
    # A URL longer than the terminal: rich would have wrapped it at 40 columns.
    long_url = f"{app_db_url}{'&' if '?' in app_db_url else '?'}application_name=connectivity-db-url-test"
    env = {**os.environ, "DATABASE_URL": long_url, "COLUMNS": "40"}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "db", "url"], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.count("\n") == 1 and done.stdout.strip() == long_url
    with psycopg.connect(done.stdout.strip()) as conn:
        assert conn.execute("SELECT current_setting('application_name')").fetchone() == (
            "connectivity-db-url-test",
        )


def test_domain_errors_take_their_exit_code_from_the_one_table():
    from cli.common import exit_code
    from geo.core import errors

    assert exit_code(errors.InvalidParameter("bbox: 'x'")) == 2
    assert exit_code(errors.InvalidInput("expires_on: 'x'")) == 1
    assert exit_code(errors.InvalidInput("borough: 'x'"), usage=True) == 2
    assert exit_code(errors.Gone("purged")) == exit_code(errors.NotFound("no such")) == 1
    assert exit_code(errors.Conflict("stale")) == exit_code(errors.Unavailable("no cluster")) == 1


def test_the_console_script_is_installed():
    script = Path(sys.executable).parent / "connectivity"
    out = subprocess.run([script, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("serve", "db", "demo", "keys"):
        assert command in out


def test_keys_expire_and_rotate_and_the_audit_lists_who_did_it(db_url, client):
    from geo import access

    created = invoke(
        db_url, "keys", "create", "--role", "operator", "--label", "rotate me", "--expires-days", "30"
    )
    assert created.exit_code == 0, created.output
    assert "expires" in created.stderr
    old = created.stdout.strip().splitlines()[-1]
    key_id = str(client.get("/me", headers={"Authorization": f"Bearer {old}"}).json()["key_id"])
    rotated = invoke(db_url, "keys", "rotate", key_id)
    assert rotated.exit_code == 0, rotated.output
    new = rotated.stdout.strip().splitlines()[-1]
    assert new.startswith("cx_") and new != old
    assert client.get("/me", headers={"Authorization": f"Bearer {old}"}).status_code == 401
    assert client.get("/me", headers={"Authorization": f"Bearer {new}"}).status_code == 200
    listed = invoke(db_url, "keys", "list").stdout
    line = next(line for line in listed.splitlines() if "rotate me" in line)
    assert line.count("20") >= 3  # created, expires and rotated dates
    bad = invoke(db_url, "keys", "create", "--role", "operator", "--expires", "yesterday")
    assert bad.exit_code == 2 and "not an ISO 8601" in bad.output
    assert invoke(db_url, "keys", "rotate", "999999").exit_code == 1

    trail = invoke(db_url, "audit", "--object", "api_key", "--id", key_id, "--json")
    assert trail.exit_code == 0, trail.output
    import json

    rows = [json.loads(line) for line in trail.stdout.splitlines()]
    assert [r["action"] for r in rows] == ["key.rotate", "key.create"]
    assert {r["actor"] for r in rows} == {access.cli_principal().name}
    table = invoke(db_url, "audit", "--action", "key.rotate", "--limit", "5")
    assert table.exit_code == 0 and "key.rotate" in table.stdout and "api_key" in table.stdout
    assert invoke(db_url, "audit", "--action", "nonsense").exit_code == 2
