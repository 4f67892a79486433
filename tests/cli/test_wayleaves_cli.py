"""``connectivity wayleaves``: create, transition, list, history, KPIs, bulk."""

import psycopg
from typer.testing import CliRunner

from cli.main import app
from geo import access

runner = CliRunner()


def invoke(db_url, *args):
    return runner.invoke(app, list(args), env={"DATABASE_URL": db_url, "COLUMNS": "200"})


def camden_asset(db_url, offset=20):
    with psycopg.connect(db_url) as c:
        return c.execute(
            "SELECT id FROM assets WHERE borough_code = 'E09000007' ORDER BY id OFFSET %s LIMIT 1", [offset]
        ).fetchone()[0]


def test_create_transition_list_history_kpis(db_url):
    created = invoke(
        db_url, "wayleaves", "create", "--operator", "Cli Fibre", "--asset", str(camden_asset(db_url))
    )
    assert created.exit_code == 0, created.output
    wid = created.stdout.split()[1]
    moved = invoke(db_url, "wayleaves", "transition", wid, "requested", "--note", "sent", "--version", "1")
    assert moved.exit_code == 0 and "requested (version 2)" in moved.stdout
    refused = invoke(db_url, "wayleaves", "transition", wid, "live")
    assert refused.exit_code == 1 and "allowed next: survey_scheduled" in refused.output
    stale = invoke(db_url, "wayleaves", "transition", wid, "withdrawn", "--version", "1")
    assert stale.exit_code == 1 and "version 2, not 1" in stale.output
    listed = invoke(db_url, "wayleaves", "list", "--operator", "Cli Fibre", "--csv")
    assert listed.exit_code == 0 and listed.stdout.splitlines()[1].startswith(f"{wid},")
    assert "Cli Fibre" in invoke(db_url, "wayleaves", "list", "--operator", "Cli Fibre").stdout
    history = invoke(db_url, "wayleaves", "history", wid)
    assert history.exit_code == 0 and "requested" in history.stdout and "sent" in history.stdout
    shown = invoke(db_url, "wayleaves", "show", wid)
    assert shown.exit_code == 0 and '"status": "requested"' in shown.stdout
    kpis = invoke(db_url, "wayleaves", "kpis", "--csv")
    assert kpis.exit_code == 0 and "operator,Cli Fibre" in kpis.stdout
    assert invoke(db_url, "wayleaves", "kpis").exit_code == 0
    missing = invoke(db_url, "wayleaves", "show", "999999")
    assert missing.exit_code == 1 and "no wayleave has id 999999" in missing.output
    bad = invoke(db_url, "wayleaves", "list", "--status", "nope")
    assert bad.exit_code == 2 and "nope" in bad.output


def test_bulk_all_or_nothing_and_dry_run(db_url, tmp_path):
    created = invoke(
        db_url, "wayleaves", "create", "--operator", "Bulk Cli", "--asset", str(camden_asset(db_url, 21))
    )
    wid = created.stdout.split()[1]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"wayleave_id,to\n{wid},requested\n{wid},live\n")
    result = invoke(db_url, "wayleaves", "bulk", str(bad))
    assert result.exit_code == 1 and "nothing applied" in result.output
    assert f"2,{wid},to,live," in result.stdout
    good = tmp_path / "good.csv"
    good.write_text(f"wayleave_id,to\n{wid},requested\n")
    dry = invoke(db_url, "wayleaves", "bulk", str(good), "--dry-run")
    assert dry.exit_code == 0 and "would apply 1" in dry.stdout
    assert '"status": "identified"' in invoke(db_url, "wayleaves", "show", wid).stdout
    done = invoke(db_url, "wayleaves", "bulk", str(good))
    assert done.exit_code == 0 and "applied 1" in done.stdout
    assert invoke(db_url, "wayleaves", "bulk", str(tmp_path / "none.csv")).exit_code == 2


def test_bind_key_to_an_operator(db_url):
    created = invoke(db_url, "keys", "create", "--role", "operator", "--label", "bind me")
    key_id = created.output.split("key ")[1].split()[0]
    bound = invoke(db_url, "wayleaves", "bind-key", key_id, "Cli Fibre")
    assert bound.exit_code == 0 and "bound to operator 'Cli Fibre'" in bound.stdout
    with psycopg.connect(db_url) as c:
        assert (
            c.execute("SELECT operator FROM api_keys WHERE id = %s", [int(key_id)]).fetchone()[0]
            == "Cli Fibre"
        )


def test_edit_details_with_history_and_clear_errors(db_url):
    created = invoke(
        db_url, "wayleaves", "create", "--operator", "Edit Cli", "--asset", str(camden_asset(db_url, 22)),
        "--reference", "CLI-EDIT-1",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    wid = created.stdout.split()[1]
    edited = invoke(
        db_url, "wayleaves", "edit", wid, "--notes", "keys at the lodge", "--expires-on", "2035-06-30",
        "--contact-email", "lodge@example.org", "--version", "1",
    )  # fmt: skip
    assert edited.exit_code == 0, edited.output
    assert f"wayleave {wid} edited: expires_on, notes, contact_email (version 2)" in edited.stdout
    shown = invoke(db_url, "wayleaves", "show", wid).stdout
    assert '"expires_on": "2035-06-30"' in shown and '"notes": "keys at the lodge"' in shown
    # An empty value clears; the same value again changes nothing.
    cleared = invoke(db_url, "wayleaves", "edit", wid, "--notes", "")
    assert cleared.exit_code == 0 and "edited: notes (version 3)" in cleared.stdout
    same = invoke(db_url, "wayleaves", "edit", wid, "--expires-on", "2035-06-30")
    assert same.exit_code == 0 and "nothing changed" in same.stdout and "(version 3)" in same.stdout

    history = invoke(db_url, "wayleaves", "history", wid)
    assert history.exit_code == 0, history.output
    assert "Edits" in history.stdout and "lodge@example.org" in history.stdout
    assert "keys at the lodge" in history.stdout and "2035-06-30" in history.stdout
    with psycopg.connect(db_url) as c:
        rows = c.execute(
            "SELECT version, field, old_value, new_value, by FROM wayleave_changes WHERE wayleave_id = %s ORDER BY version, field",
            [int(wid)],
        ).fetchall()
    assert [r[:4] for r in rows] == [
        (2, "contact_email", None, "lodge@example.org"),
        (2, "expires_on", None, "2035-06-30"),
        (2, "notes", None, "keys at the lodge"),
        (3, "notes", "keys at the lodge", None),
    ]
    assert {r[4] for r in rows} == {
        access.cli_principal().name
    }  # one name for the CLI everywhere: cli:<user>

    stale = invoke(db_url, "wayleaves", "edit", wid, "--notes", "late", "--version", "1")
    assert stale.exit_code == 1 and "version 3, not 1" in stale.output
    bad_date = invoke(db_url, "wayleaves", "edit", wid, "--expires-on", "30/06/2035")
    assert bad_date.exit_code == 1 and "expires_on: '30/06/2035' is not a date" in bad_date.output
    bad_email = invoke(db_url, "wayleaves", "edit", wid, "--contact-email", "lodge")
    assert bad_email.exit_code == 1 and "'lodge' is not an email address" in bad_email.output
    nothing = invoke(db_url, "wayleaves", "edit", wid)
    assert nothing.exit_code == 2 and "nothing to change" in nothing.output
    missing = invoke(db_url, "wayleaves", "edit", "999999", "--notes", "x")
    assert missing.exit_code == 1 and "no wayleave has id 999999" in missing.output
    other = invoke(
        db_url, "wayleaves", "create", "--operator", "Edit Cli", "--asset", str(camden_asset(db_url, 22)),
    )  # fmt: skip
    taken = invoke(db_url, "wayleaves", "edit", other.stdout.split()[1], "--reference", "CLI-EDIT-1")
    assert taken.exit_code == 1 and "'CLI-EDIT-1' is already used in borough E09000007" in taken.output
    for result in (stale, bad_date, bad_email, nothing, missing, taken):
        # A clear message and an exit code, never an uncaught exception.
        assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert '"version": 3' in invoke(db_url, "wayleaves", "show", wid).stdout  # the refusals wrote nothing
