"""The access matrix: every route of the app, called as every kind of caller, against what each may do.

Callers: anonymous, an operator (bound to the wayleave's operator), another operator, the
owning borough (Camden), another borough (Hackney) and an admin. A route missing from
:data:`MATRIX` fails the test, so a new route cannot ship without its access decided.

``ok`` means access was granted: any answer but 401, 403 or 404 (writes are sent with bodies
the domain refuses, 409 or 422, so nothing changes); 401, 403 and 404 must be exactly that.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import psycopg
import pytest

from geo import access

CALLERS = ("anonymous", "operator", "other_operator", "borough", "other_borough", "admin")
OK = "ok"
PUBLIC = (OK,) * 6
KEYS = (401, OK, OK, OK, OK, OK)
BOROUGH_WRITE = (401, 403, 403, OK, 403, OK)
ADMIN = (401, 403, 403, 403, 403, OK)
REPORT = (401, OK, 404, 404, 404, OK)  # a report: the key that asked for it, and admins
UPLOAD = (401, 403, 403, OK, 404, OK)  # an upload of Camden's: Camden and admins; Hackney does not see it
WAYLEAVE = (401, OK, 403, OK, OK, OK)  # boroughs read every wayleave, operators their own

#: (method, path) -> what each caller gets, in CALLERS order.
MATRIX: dict[tuple[str, str], tuple[object, ...]] = {
    ("GET", "/"): PUBLIC,
    ("GET", "/conformance"): PUBLIC,
    ("GET", "/collections"): PUBLIC,
    ("GET", "/collections/{collection_id}"): PUBLIC,
    ("GET", "/collections/{collection_id}/items"): PUBLIC,
    ("GET", "/collections/{collection_id}/queryables"): PUBLIC,
    ("GET", "/collections/{collection_id}/items/{feature_id}"): PUBLIC,
    ("GET", "/tiles/{collection_id}.json"): PUBLIC,
    ("GET", "/tiles/{collection_id}/{z}/{x}/{y}.mvt"): PUBLIC,
    ("GET", "/boroughs"): PUBLIC,
    ("GET", "/exports/ofds"): PUBLIC,
    ("GET", "/health"): PUBLIC,
    ("GET", "/map"): PUBLIC,
    ("GET", "/map/wards.geojson"): PUBLIC,
    ("GET", "/map/assets/{asset_id}/wayleaves"): PUBLIC,
    ("GET", "/places"): PUBLIC,
    ("GET", "/places/nearest"): PUBLIC,
    ("GET", "/tiles/{collection_id}/clusters/{z}/{x}/{y}.json"): PUBLIC,
    ("GET", "/tileMatrixSets"): PUBLIC,
    ("GET", "/tileMatrixSets/{tileMatrixSetId}"): PUBLIC,
    ("GET", "/collections/{collection_id}/tiles"): PUBLIC,
    ("GET", "/collections/{collection_id}/tiles/{tileMatrixSetId}"): PUBLIC,
    ("GET", "/collections/{collection_id}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"): PUBLIC,
    ("GET", "/app"): PUBLIC,
    ("GET", "/app/"): PUBLIC,
    ("GET", "/app/coverage"): PUBLIC,
    ("GET", "/app/projects"): PUBLIC,
    ("GET", "/app/uploads"): PUBLIC,
    ("GET", "/app/wayleaves"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/assets/{asset_id}"): PUBLIC,
    ("GET", "/assets/{asset_id}/history"): PUBLIC,
    ("PATCH", "/assets/{asset_id}"): BOROUGH_WRITE,
    ("GET", "/me"): KEYS,
    ("GET", "/audit"): ADMIN,
    ("POST", "/gdpr/export"): ADMIN,
    ("POST", "/gdpr/erase"): ADMIN,
    ("POST", "/uploads"): (
        401,
        403,
        403,
        OK,
        OK,
        OK,
    ),  # Hackney may upload (its own borough; this form names none)
    ("GET", "/uploads"): (401, 403, 403, OK, OK, OK),
    ("GET", "/uploads/{upload_id}"): UPLOAD,
    ("GET", "/uploads/{upload_id}/errors.csv"): UPLOAD,
    ("GET", "/uploads/{upload_id}/errors.geojson"): UPLOAD,
    ("GET", "/uploads/{upload_id}/rows.geojson"): UPLOAD,
    ("POST", "/uploads/{upload_id}/apply"): UPLOAD,
    ("GET", "/wayleaves"): KEYS,
    ("GET", "/wayleaves/counts"): KEYS,
    ("POST", "/wayleaves"): (401, 403, 403, OK, OK, OK),  # on one's own sites: refused per site, not per role
    ("POST", "/wayleaves/bulk"): (401, 403, 403, OK, OK, OK),
    ("GET", "/wayleaves/kpis"): KEYS,
    ("GET", "/wayleaves/{wayleave_id}"): WAYLEAVE,
    ("PATCH", "/wayleaves/{wayleave_id}"): (401, OK, 403, OK, 403, OK),
    ("GET", "/wayleaves/{wayleave_id}/changes"): WAYLEAVE,
    ("GET", "/wayleaves/{wayleave_id}/history"): WAYLEAVE,
    ("POST", "/wayleaves/{wayleave_id}/transitions"): BOROUGH_WRITE,
    ("POST", "/coverage/reports"): KEYS,
    ("GET", "/coverage/reports"): KEYS,
    ("GET", "/coverage/reports/{report_id}"): REPORT,
    ("GET", "/coverage/reports/{report_id}/cells.geojson"): REPORT,
    ("GET", "/coverage/reports/{report_id}/gaps.geojson"): REPORT,
    ("GET", "/coverage/reports/{report_id}/demand.csv"): REPORT,
    ("GET", "/coverage/reports/{report_id}/priorities.csv"): REPORT,
    ("GET", "/coverage/reports/{report_id}/report.html"): REPORT,
    ("GET", "/processes"): PUBLIC,
    ("GET", "/processes/{process_id}"): PUBLIC,
    ("POST", "/processes/{process_id}/execution"): KEYS,
    ("GET", "/jobs"): KEYS,
    ("GET", "/jobs/{job_id}"): REPORT,
    ("GET", "/jobs/{job_id}/results"): REPORT,
    ("GET", "/jobs/{job_id}/results/{output_id}"): REPORT,
    # A queued job of the operator's: its dismissal stops it, the admin's then deletes it.
    ("DELETE", "/jobs/{job_id}"): REPORT,
    ("POST", "/pipeline/imports"): ADMIN,
    ("GET", "/pipeline/imports/{import_id}"): ADMIN,
    ("GET", "/pipeline/imports/{import_id}/errors.csv"): ADMIN,
    ("GET", "/pipeline/projects"): PUBLIC,
    ("GET", "/pipeline/projects/{project_id}"): PUBLIC,
    ("PUT", "/pipeline/projects/{project_id}/location"): BOROUGH_WRITE,
    ("POST", "/webhooks"): KEYS,
    ("GET", "/webhooks"): KEYS,
    ("GET", "/webhooks/{webhook_id}"): REPORT,  # the operator's: the key that made it, and admins
    ("GET", "/webhooks/{webhook_id}/deliveries"): REPORT,
    ("DELETE", "/webhooks/{webhook_id}"): (401, 404, 404, 404, 404, OK),  # an admin's: no one else sees it
    ("GET", "/pipeline/unplaced"): PUBLIC,
}

#: Bodies the domain refuses (so granted writes change nothing), by route.
BODIES: dict[tuple[str, str], dict[str, object]] = {
    ("PATCH", "/assets/{asset_id}"): {"json": {"no_such_field": 1}},
    ("POST", "/gdpr/export"): {"json": {"email": "not an address"}},
    ("POST", "/gdpr/erase"): {"json": {"email": "x@example.org", "confirm": False}},
    ("POST", "/uploads"): {"data": {"borough": "E09000099"}},
    ("POST", "/uploads/{upload_id}/apply"): {},
    ("POST", "/wayleaves"): {"json": {"operator": ""}},
    ("POST", "/wayleaves/bulk"): {"files": {"file": ("bulk.csv", b"no,header\n")}},
    ("PATCH", "/wayleaves/{wayleave_id}"): {
        "json": {"operator_reference": "x" * 500},
        "headers": {"If-Match": '"1"'},
    },
    ("POST", "/wayleaves/{wayleave_id}/transitions"): {"json": {"to": "signed", "expected_version": 1}},
    ("POST", "/coverage/reports"): {"json": {"area": {"boroughs": ["E09000099"]}}},
    ("POST", "/processes/{process_id}/execution"): {
        "json": {"inputs": {"area": {"boroughs": ["E09000099"]}}}
    },
    ("POST", "/pipeline/imports"): {"files": {"file": ("pipeline.json", b"not json")}},
    ("PUT", "/pipeline/projects/{project_id}/location"): {
        "json": {"type": "Point", "coordinates": [2.35, 48.85]}
    },
    ("POST", "/webhooks"): {"json": {"url": "ftp://example.org/hook"}},
}


#: Routes whose refusal of a file is its record (state, counts, errors), not a problem document.
RECORDS = {("POST", "/pipeline/imports"), ("POST", "/wayleaves/bulk")}


def route_table(app) -> set[tuple[str, str]]:
    """Every (method, path) the app serves through its routers (the static files mount aside)."""
    return {
        (method, path) for _, methods, path in app.state.api_routes for method in methods if method != "HEAD"
    }


@pytest.fixture(scope="module")
def world(isolated, samples_module):
    """The objects the routes are called on, and a key for every caller."""
    url, client = isolated.url, isolated.client

    async def keys() -> dict[str, str]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
            a = await access.create_key(c, "operator", label="matrix operator", actor=access.SYSTEM)
            await access.bind_operator(c, a.id, "Matrix Fibre", actor=access.SYSTEM)
            b = await access.create_key(c, "operator", label="other operator", actor=access.SYSTEM)
            await access.bind_operator(c, b.id, "Other Fibre", actor=access.SYSTEM)
            return {"operator": a.key, "other_operator": b.key}

    made = asyncio.run(keys())
    headers = {
        "anonymous": {},
        "operator": {"Authorization": f"Bearer {made['operator']}"},
        "other_operator": {"Authorization": f"Bearer {made['other_operator']}"},
        "borough": isolated.auth("camden"),
        "other_borough": isolated.auth("hackney"),
        "admin": isolated.auth("admin"),
    }
    with psycopg.connect(url, autocommit=True) as conn:
        asset_id = conn.execute(
            "SELECT id FROM assets WHERE borough_code = 'E09000007' ORDER BY id LIMIT 1"
        ).fetchone()[0]
        project_id = conn.execute(
            """INSERT INTO pipeline_projects (title, organisation, source, placement, borough_code)
               VALUES ('Matrix project', 'London Borough of Camden', 'api', 'borough', 'E09000007') RETURNING id"""
        ).fetchone()[0]
    wayleave = client.post(
        "/wayleaves", json={"operator": "Matrix Fibre", "asset_ids": [asset_id]}, headers=headers["borough"]
    )
    assert wayleave.status_code == 201, wayleave.text
    from upload_helpers import send, wait

    upload = send(client, isolated.auth, samples_module.write("gpkg", name="matrix"), dry_run="true")
    assert upload.status_code == 202, upload.text
    upload_id = upload.json()["id"]
    wait(client, isolated.auth, upload_id)
    with psycopg.connect(url, autocommit=True) as conn:  # applied or failed, never previewed: apply is a 409
        conn.execute("UPDATE uploads SET state = 'rejected' WHERE id = %s", [upload_id])
    report = client.post(
        "/coverage/reports", json={"area": {"boroughs": ["E09000001"]}}, headers=headers["operator"]
    )
    assert report.status_code == 201, report.text
    imported = client.post(
        "/pipeline/imports", files={"file": ("pipeline.json", b"[]")}, headers=headers["admin"]
    )
    import_id = imported.json()["id"]
    values = {
        "collection_id": "street_furniture", "feature_id": str(asset_id), "asset_id": str(asset_id),
        "z": "14", "x": "8186", "y": "5448", "upload_id": str(upload_id), "wayleave_id": str(wayleave.json()["id"]),
        "report_id": str(report.json()["id"]), "import_id": str(import_id), "project_id": str(project_id),
        "tileMatrixSetId": "WebMercatorQuad", "tileMatrix": "14", "tileRow": "5448", "tileCol": "8186",
    }  # fmt: skip
    values |= {"process_id": "coverage", "job_id": values["report_id"], "output_id": "summary"}
    with psycopg.connect(url, autocommit=True) as conn:  # a queued job to dismiss, the operator's
        queued = conn.execute(
            """INSERT INTO coverage_reports (parameters, created_by, key_id, owner, heartbeat_at)
               SELECT '{}', 'matrix', id, 'another-host:1:0', now() FROM api_keys
               WHERE label = 'matrix operator' RETURNING id"""  # a live job elsewhere: never reaped meanwhile
        ).fetchone()[0]
        hooks = [
            conn.execute(
                """INSERT INTO webhooks (key_id, url, events, secret, created_by)
                   SELECT id, 'https://example.org/hook', '{report.done}', repeat('s', 40), 'matrix'
                   FROM api_keys WHERE label = %s RETURNING id""",
                [label],
            ).fetchone()[0]
            for label in ("matrix operator", "test admin")
        ]
    values["webhook_id"] = str(hooks[0])
    paths = {
        ("DELETE", "/jobs/{job_id}"): {"job_id": str(queued)},
        ("DELETE", "/webhooks/{webhook_id}"): {"webhook_id": str(hooks[1])},
    }
    return SimpleNamespace(client=client, headers=headers, values=values, paths=paths)


@pytest.fixture(scope="module")
def samples_module(tmp_path_factory, camden_stops, camden_ducts):
    from types import SimpleNamespace as NS

    import pyogrio

    folder = tmp_path_factory.mktemp("matrix")

    def write(fmt: str, name: str = "assets"):
        path = folder / f"{name}.gpkg"
        pyogrio.write_dataframe(camden_stops, path, layer="lamps")
        return path

    return NS(write=write)


def test_every_route_has_an_entry(isolated):
    served = route_table(isolated.client.app)
    missing = sorted(served - set(MATRIX))
    assert not missing, f"routes without an access entry in MATRIX: {missing}"
    assert not sorted(set(MATRIX) - served), "entries for routes the app does not serve"


@pytest.mark.parametrize(
    ("route", "expected"),
    sorted(MATRIX.items()),
    ids=lambda v: " ".join(v) if isinstance(v, tuple) and isinstance(v[0], str) and v[0].isupper() else None,
)
def test_each_caller_gets_what_the_matrix_says(world, route, expected):
    method, template = route
    path = template
    for name, value in {**world.values, **world.paths.get(route, {})}.items():
        path = path.replace("{" + name + "}", value)
    body = BODIES.get(route, {})
    seen = {}
    for caller, want in zip(CALLERS, expected, strict=True):
        headers = {**world.headers[caller], **body.get("headers", {})}
        kwargs = {k: v for k, v in body.items() if k != "headers"}
        response = world.client.request(method, path, headers=headers, **kwargs)
        status = response.status_code
        seen[caller] = status
        if want == OK:
            assert status not in (401, 403, 404) and status < 500, (
                caller,
                method,
                path,
                status,
                response.text[:300],
            )
        else:
            assert status == want, (caller, method, path, status, response.text[:300])
        if status >= 400 and not (route in RECORDS and status == 422):
            assert response.headers["content-type"].startswith("application/problem+json"), (caller, path)
    assert len(seen) == len(CALLERS)
