"""Wayleave statuses: every transition allowed and forbidden, the event log as the truth, clocks."""

import asyncio
import datetime as dt
import re
import uuid
from collections import deque

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo import wayleaves as wl
from geo.access.principals import Principal
from geo.assets import VersionConflict
from geo.core.settings import DATA_DIR, PROJECT_ROOT, WayleaveSettings

ADMIN = Principal(role="admin", key_id=None, label="test")
SETTINGS = WayleaveSettings()
CAMDEN = "E09000007"
OPEN = [
    "identified", "requested", "survey_scheduled", "surveyed", "terms_issued", "in_negotiation", "approved",
    "signed", "installing", "code_notice_served", "tribunal", "rights_imposed",
]  # fmt: skip
# The rules as the issue and data/wayleaves.md state them, written out independently of the code.
EXPECTED = {
    "identified": {"requested", "on_hold", "withdrawn"},
    "requested": {"survey_scheduled", "refused", "code_notice_served", "on_hold", "withdrawn"},
    "survey_scheduled": {"surveyed", "refused", "on_hold", "withdrawn"},
    "surveyed": {"terms_issued", "refused", "on_hold", "withdrawn"},
    "terms_issued": {"in_negotiation", "approved", "refused", "code_notice_served", "on_hold", "withdrawn"},
    "in_negotiation": {"approved", "refused", "code_notice_served", "on_hold", "withdrawn"},
    "approved": {"signed", "refused", "on_hold", "withdrawn"},
    "signed": {"installing", "expired", "on_hold", "withdrawn"},
    "installing": {"live", "on_hold", "withdrawn"},
    "live": {"expired"},
    "code_notice_served": {"tribunal", "in_negotiation", "on_hold", "withdrawn"},
    "tribunal": {"rights_imposed", "signed", "refused", "on_hold", "withdrawn"},
    "rights_imposed": {"installing", "on_hold", "withdrawn"},
    "refused": {"requested", "code_notice_served"},
    "withdrawn": {"requested"},
    "expired": set(),
}
# on_hold returns only to where it came from (or is withdrawn).
HOLD_FROM = "surveyed"


def path_to(target):
    """The shortest list of transitions from identified to target (on_hold via HOLD_FROM)."""
    if target == "on_hold":
        return [*path_to(HOLD_FROM), "on_hold"]
    seen, queue = {"identified": []}, deque(["identified"])
    while queue:
        s = queue.popleft()
        for n in wl.TRANSITIONS[s]:
            if n in wl.STATUSES and n not in seen and n != "on_hold":
                seen[n] = [*seen[s], n]
                queue.append(n)
    return seen[target]


def run(db_url, work):
    async def main():
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            return await work(conn)

    return asyncio.run(main())


@pytest.fixture(scope="module")
def camden_asset(conn):
    return conn.execute(
        "SELECT id FROM assets WHERE borough_code = %s AND retired_at IS NULL ORDER BY id LIMIT 1", [CAMDEN]
    ).fetchone()[0]


@pytest.fixture(scope="module")
def conn(db_url):
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


async def new_wayleave(conn, asset, steps=(), operator="Matrix Fibre"):
    row = await wl.create_wayleave(
        conn, ADMIN, operator=operator, asset_ids=[asset], site_name="matrix site", settings=SETTINGS
    )
    for to in steps:
        row = await wl.transition(
            conn, row["id"], to, ADMIN, expected_version=row["version"], settings=SETTINGS
        )
    return row


def test_the_rules_cover_every_status_and_match_the_issue():
    assert set(wl.TRANSITIONS) == set(wl.STATUSES)
    for status, expected in EXPECTED.items():
        assert set(wl.allowed_next(status)) == expected, status
    for resume in OPEN:
        assert set(wl.allowed_next("on_hold", resume)) == {resume, "withdrawn"}
    # on_hold from every open status, and only from those
    assert {s for s in wl.STATUSES if "on_hold" in wl.allowed_next(s)} == set(OPEN)


@pytest.mark.parametrize("start", wl.STATUSES)
def test_every_transition_from_a_status_allowed_and_forbidden(db_url, camden_asset, start):
    allowed = EXPECTED.get(start, {HOLD_FROM, "withdrawn"})
    steps = path_to(start)

    async def work(conn):
        # Forbidden: all on one wayleave, which must not move.
        row = await new_wayleave(conn, camden_asset, steps)
        assert row["status"] == start
        for to in wl.STATUSES:
            if to in allowed:
                continue
            with pytest.raises(wl.InvalidTransition) as info:
                await wl.transition(
                    conn, row["id"], to, ADMIN, expected_version=row["version"], settings=SETTINGS
                )
            assert sorted(info.value.problem_extra["allowed"]) == sorted(allowed)
        again = await wl.get_wayleave(conn, row["id"], ADMIN, SETTINGS)
        assert (again["status"], again["version"]) == (start, row["version"])
        # Allowed: each on a fresh wayleave.
        for to in allowed:
            fresh = await new_wayleave(conn, camden_asset, steps)
            moved = await wl.transition(
                conn, fresh["id"], to, ADMIN, expected_version=fresh["version"], settings=SETTINGS
            )
            assert moved["status"] == to and moved["version"] == fresh["version"] + 1

    run(db_url, work)


def test_stale_version_is_a_conflict_and_writes_nothing(db_url, camden_asset):
    async def work(conn):
        row = await new_wayleave(conn, camden_asset)
        await wl.transition(
            conn, row["id"], "requested", ADMIN, expected_version=row["version"], settings=SETTINGS
        )
        with pytest.raises(VersionConflict):
            await wl.transition(
                conn, row["id"], "withdrawn", ADMIN, expected_version=row["version"], settings=SETTINGS
            )
        return await wl.history(conn, row["id"], ADMIN)

    events = run(db_url, work)
    assert [e["to_status"] for e in events] == ["identified", "requested"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attempts=st.lists(st.sampled_from(wl.STATUSES), max_size=12))
def test_status_is_always_the_replay_of_the_events(db_url, camden_asset, attempts):
    async def work(conn):
        row = await new_wayleave(conn, camden_asset, operator="Property Fibre")
        model, resume = "identified", None
        for to in attempts:
            try:
                row = await wl.transition(
                    conn, row["id"], to, ADMIN, expected_version=row["version"], settings=SETTINGS
                )
            except wl.InvalidTransition:
                assert to not in wl.allowed_next(model, resume)
            else:
                resume = model if to == "on_hold" else None
                model = to
            events = await wl.history(conn, row["id"], ADMIN)
            current = await wl.get_wayleave(conn, row["id"], ADMIN, SETTINGS)
            assert wl.replay(events) == (current["status"], current["resume_status"]) == (model, resume)
            assert current["version"] == len(events)

    run(db_url, work)


def test_the_database_refuses_status_changes_without_events_and_event_edits(db_url, camden_asset, conn):
    row = run(db_url, lambda c: new_wayleave(c, camden_asset, ["requested"]))
    with pytest.raises(psycopg.errors.RestrictViolation):
        conn.execute("UPDATE wayleaves SET status = 'live' WHERE id = %s", [row["id"]])
    with pytest.raises(psycopg.errors.RestrictViolation):
        conn.execute("UPDATE wayleave_events SET to_status = 'live' WHERE wayleave_id = %s", [row["id"]])
    with pytest.raises(psycopg.errors.RestrictViolation):
        conn.execute("DELETE FROM wayleave_events WHERE wayleave_id = %s", [row["id"]])
    with pytest.raises(psycopg.errors.CheckViolation):  # an event that does not continue the chain
        conn.execute(
            """INSERT INTO wayleave_events (wayleave_id, seq, at, by, from_status, to_status)
               VALUES (%s, 3, now(), 'x', 'identified', 'live')""",
            [row["id"]],
        )
    # Other columns can change; the status still equals the last event's.
    conn.execute("UPDATE wayleaves SET reference = 'R-1' WHERE id = %s", [row["id"]])
    status, last = conn.execute(
        """SELECT w.status, (SELECT to_status FROM wayleave_events WHERE wayleave_id = w.id ORDER BY seq DESC LIMIT 1)
           FROM wayleaves w WHERE id = %s""",
        [row["id"]],
    ).fetchone()
    assert status == last == "requested"


def test_changes_bump_the_layer_data_version_and_views_follow(db_url, camden_asset, conn):
    before = conn.execute("SELECT version FROM data_versions WHERE layer = 'wayleaves'").fetchone()[0]
    row = run(db_url, lambda c: new_wayleave(c, camden_asset, path_to("signed")))
    after = conn.execute("SELECT version FROM data_versions WHERE layer = 'wayleaves'").fetchone()[0]
    assert after > before
    best, ready = conn.execute(
        "SELECT best_status, ready_now FROM asset_wayleave_status WHERE asset_id = %s", [camden_asset]
    ).fetchone()
    assert ready is True and best in ("signed", "installing", "live")
    columns = [r[0] for r in conn.execute("SELECT * FROM wayleave_features LIMIT 0").description or []]
    assert "status" in columns and "geom_3857" in columns
    assert not set(columns) & set(wl.RESTRICTED)
    feature = conn.execute(
        "SELECT status, ST_SRID(geom) FROM wayleave_features WHERE id = %s", [row["id"]]
    ).fetchone()
    assert feature == ("signed", 27700)


def test_view_order_and_ready_statuses_match_the_code():
    text = (PROJECT_ROOT / "geo" / "db" / "migrations" / "0004_wayleaves.sql").read_text()
    order = re.search(r"array_position\(ARRAY\[(.*?)\]", text, re.S).group(1)
    assert tuple(re.findall(r"'(\w+)'", order)) == wl.PROGRESS
    ready = re.search(r"bool_or\(w.status IN \((.*?)\)\)", text).group(1)
    assert tuple(re.findall(r"'(\w+)'", ready)) == wl.READY_STATUSES


def test_the_documented_transitions_are_the_codes():
    text = (DATA_DIR / "wayleaves.md").read_text()
    section = text.split("## Transitions")[1].split("\n## ")[0]
    documented = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0] in wl.STATUSES:
            documented[cells[0]] = tuple(t.strip() for t in cells[1].split(",") if t.strip())
    assert documented == wl.TRANSITIONS


def test_bank_holidays_and_working_days():
    assert wl.bank_holidays(2024) == [
        dt.date(2024, m, d)
        for m, d in ((1, 1), (3, 29), (4, 1), (5, 6), (5, 27), (8, 26), (12, 25), (12, 26))
    ]
    h22 = wl.bank_holidays(2022)
    assert {dt.date(2022, 6, 2), dt.date(2022, 6, 3), dt.date(2022, 9, 19), dt.date(2022, 12, 27)} <= set(h22)
    assert dt.date(2022, 5, 30) not in h22 and dt.date(2022, 1, 3) in h22  # New Year on Saturday
    assert dt.date(2021, 12, 28) in wl.bank_holidays(2021) and dt.date(2020, 5, 8) in wl.bank_holidays(2020)
    assert dt.date(2023, 5, 8) in wl.bank_holidays(2023)
    # Thursday 28 March 2024 + 2 working days skips Good Friday and Easter Monday.
    assert wl.add_working_days(dt.date(2024, 3, 28), 2) == dt.date(2024, 4, 3)
    assert wl.working_days_between(dt.date(2024, 3, 28), dt.date(2024, 4, 3)) == 2


def test_clock_flags_an_unanswered_request_after_ten_working_days():
    s = WayleaveSettings()
    since = dt.datetime(2024, 6, 3, 9, tzinfo=dt.UTC)  # a Monday
    on_time = wl.clock("requested", since, s, now=dt.datetime(2024, 6, 17, 12, tzinfo=dt.UTC))
    assert on_time["due_on"] == dt.date(2024, 6, 17) and not on_time["overdue"]
    assert on_time["next_chase_on"] == dt.date(2024, 6, 24)
    late = wl.clock("requested", since, s, now=dt.datetime(2024, 6, 18, 12, tzinfo=dt.UTC))
    assert late["overdue"] and late["days_in_status"] == 15
    code = wl.clock("code_notice_served", since, s, now=dt.datetime(2024, 7, 2, tzinfo=dt.UTC))
    assert code["due_on"] == dt.date(2024, 7, 1) and code["overdue"]
    assert wl.clock("live", since, s)["due_on"] is None


# Edits of the details (migration 0007) --------------------------------------------------------------------
def test_the_editable_fields_are_the_migrations():
    text = (PROJECT_ROOT / "geo" / "db" / "migrations" / "0007_wayleave_changes.sql").read_text()
    check = re.search(r"CHECK \(field IN \((.*?)\)\)", text, re.S).group(1)
    assert tuple(re.findall(r"'(\w+)'", check)) == wl.EDITABLE
    loop = re.search(r"FOREACH col IN ARRAY ARRAY\[(.*?)\]", text, re.S).group(1)
    assert tuple(re.findall(r"'(\w+)'", loop)) == wl.EDITABLE
    # Nothing is both editable and fixed; restricted fields are editable (by admins and boroughs).
    assert not set(wl.EDITABLE) & set(wl.NOT_EDITABLE)
    assert set(wl.RESTRICTED) <= set(wl.EDITABLE) and set(wl.KEY_DATES.values()) <= set(wl.NOT_EDITABLE)


def test_every_detail_update_is_recorded_by_the_database_and_changes_are_append_only(
    db_url, camden_asset, conn
):
    row = run(db_url, lambda c: new_wayleave(c, camden_asset, ["requested"]))
    assert row["version"] == 2
    # Whatever writes it, a change of a detail is recorded and bumps the version.
    conn.execute(
        "UPDATE wayleaves SET expires_on = '2031-01-31', reference = %s WHERE id = %s",
        [f"RAW-{row['id']}", row["id"]],
    )
    with conn.transaction():
        conn.execute("SELECT set_config('connectivity.actor', 'key 99 (named actor)', true)")
        conn.execute("UPDATE wayleaves SET expires_on = NULL WHERE id = %s", [row["id"]])
    # Status changes and writes that change no detail record nothing.
    run(
        db_url,
        lambda c: wl.transition(
            c, row["id"], "survey_scheduled", ADMIN, expected_version=4, settings=SETTINGS
        ),
    )
    conn.execute("UPDATE wayleaves SET notes = notes WHERE id = %s", [row["id"]])
    recorded = conn.execute(
        """SELECT version, by, field, old_value, new_value FROM wayleave_changes
           WHERE wayleave_id = %s ORDER BY version, field""",
        [row["id"]],
    ).fetchall()
    assert [(v, f, o, n) for v, _, f, o, n in recorded] == [
        (3, "expires_on", None, "2031-01-31"),
        (3, "reference", None, f"RAW-{row['id']}"),
        (4, "expires_on", "2031-01-31", None),
    ]
    assert recorded[0][1].startswith("database user ") and recorded[2][1] == "key 99 (named actor)"
    current = run(db_url, lambda c: wl.get_wayleave(c, row["id"], ADMIN, SETTINGS))
    assert current["version"] == 5 and current["status"] == "survey_scheduled"

    with pytest.raises(psycopg.errors.RestrictViolation):
        conn.execute("UPDATE wayleave_changes SET new_value = 'x' WHERE wayleave_id = %s", [row["id"]])
    with pytest.raises(psycopg.errors.RestrictViolation):
        conn.execute("DELETE FROM wayleave_changes WHERE wayleave_id = %s", [row["id"]])
    with pytest.raises(psycopg.errors.RestrictViolation):
        conn.execute("TRUNCATE wayleave_changes")
    with pytest.raises(psycopg.errors.CheckViolation):  # only the editable fields
        conn.execute(
            "INSERT INTO wayleave_changes (wayleave_id, version, by, field, new_value) VALUES (%s, 9, 'x', 'status', 'live')",
            [row["id"]],
        )
    assert (
        conn.execute("SELECT count(*) FROM wayleave_changes WHERE wayleave_id = %s", [row["id"]]).fetchone()[
            0
        ]
        == 3
    )


def test_edits_refuse_the_status_and_key_dates_and_write_nothing(db_url, camden_asset):
    async def work(conn):
        row = await new_wayleave(conn, camden_asset, ["requested"])
        for changes in ({"status": "live"}, {"requested_on": "2020-01-01"}, {"site_id": 1}, {"version": 9}):
            with pytest.raises(wl.InvalidChange) as info:
                await wl.update_wayleave(
                    conn, row["id"], changes, ADMIN, expected_version=row["version"], settings=SETTINGS
                )
            assert info.value.errors[0][0] == next(iter(changes))
        return (
            row,
            await wl.get_wayleave(conn, row["id"], ADMIN, SETTINGS),
            await wl.changes(conn, row["id"], ADMIN),
        )

    before, after, edits = run(db_url, work)
    assert (after["version"], after["requested_on"], edits) == (before["version"], before["requested_on"], [])


@pytest.mark.parametrize(
    ("field", "value", "stored"),
    [
        ("contact_email", " a.b+c@example.co.uk ", "a.b+c@example.co.uk"),
        ("contact_phone", "+44 (0)20 7946 0000 ext 12", "+44 (0)20 7946 0000 ext 12"),
        ("contact_phone", "020-7946-0000", "020-7946-0000"),
        ("expires_on", "2030-02-28", dt.date(2030, 2, 28)),
        ("expires_on", "", None),
        ("notes", "line one\nline two", "line one\nline two"),
        ("template", "bespoke", "bespoke"),
        ("reference", "   ", None),
    ],
)
def test_details_accepted(field, value, stored):
    assert wl.check_details({field: value}) == {field: stored}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("contact_email", "a@b", "not an email address"),
        ("contact_email", "a b@example.org", "not an email address"),
        ("contact_phone", "12345", "not a phone number"),
        ("contact_phone", "0207 CALL ME", "not a phone number"),
        ("expires_on", "2030-02-30", "not a date"),
        ("expires_on", dt.datetime(2030, 1, 1), "date-time"),
        ("expires_on", 20300101, "not a date"),
        ("template", None, "not one of"),
        ("reference", 42, "not text"),
        ("operator_reference", "a\tb", "one line"),
        ("notes", "x" * 10_001, "at most 10000"),
    ],
)
def test_details_refused(field, value, message):
    with pytest.raises(wl.InvalidChange) as info:
        wl.check_details({field: value})
    (name, got, text), *_ = info.value.errors
    assert name == field and got == value and message in text
    assert str(info.value).startswith(f"{field}: ")


DETAIL_VALUES = {
    "notes": st.sampled_from([None, "", "a", "b", "call first"]),
    "reference": st.sampled_from([None, "P-1", "P-2"]),
    "expires_on": st.sampled_from([None, "2031-01-01", "2032-06-30"]),
    "contact_email": st.sampled_from([None, "x@example.org", "y@example.org"]),
    "template": st.sampled_from(wl.TEMPLATES),
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(
        st.dictionaries(st.sampled_from(sorted(DETAIL_VALUES)), st.none(), min_size=1), max_size=6
    ),
    data=st.data(),
)
def test_details_are_the_replay_of_their_changes(db_url, camden_asset, edits, data):
    # References are unique per borough: each example uses its own.
    suffix = uuid.uuid4().hex[:10]
    plans = [{f: data.draw(DETAIL_VALUES[f]) for f in e} for e in edits]
    for plan in plans:
        if plan.get("reference"):
            plan["reference"] += "-" + suffix

    async def work(conn):
        row = await new_wayleave(conn, camden_asset, operator="Replay Fibre")
        start = {f: row[f] for f in wl.EDITABLE}
        for plan in plans:
            before = row
            row = await wl.update_wayleave(
                conn, row["id"], plan, ADMIN, expected_version=before["version"], settings=SETTINGS
            )
            # A version per edit that changed something, none for one that did not.
            differs = any(wl.check_details({f: v})[f] != before[f] for f, v in plan.items())
            assert row["version"] == before["version"] + differs
        edits_seen = await wl.changes(conn, row["id"], ADMIN)
        replayed = {f: None if v is None else str(v) for f, v in start.items()}
        for e in edits_seen:
            for f in e["fields"]:
                assert replayed[f["field"]] == f["old"]
                replayed[f["field"]] = f["new"]
        current = await wl.get_wayleave(conn, row["id"], ADMIN, SETTINGS)
        assert replayed == {f: None if current[f] is None else str(current[f]) for f in wl.EDITABLE}
        assert current["version"] == 1 + len(edits_seen)
        assert [e["version"] for e in edits_seen] == list(range(2, current["version"] + 1))

    run(db_url, work)
