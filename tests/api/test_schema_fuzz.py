"""schemathesis over ``/openapi.json``: generated requests to every operation, as anonymous and as each role.

Run against a database of its own (with write access the admin applies dry runs, edits assets
and erases people), over real HTTP to uvicorn, with a fixed seed and a bounded number of
examples per operation. No answer may be a server error, and every answer must conform to the
schema the API declares for it. (schemathesis's pytest plugin does not run on pytest 9, so the
operations are walked here with its Python API and hypothesis.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from servers import serving

from geo.core.settings import DatabaseSettings, Settings

EXAMPLES = 25
ROLES = (None, "operator", "camden", "admin")


@pytest.fixture(scope="module")
def fuzz_server(isolated):
    with serving(Settings(db=DatabaseSettings(url=isolated.app_url))) as url:
        yield url


def test_no_server_errors_and_answers_match_their_schemas(isolated, fuzz_server):
    schema = schemathesis.openapi.from_url(f"{fuzz_server}/openapi.json")
    counts = dict.fromkeys((r or "anonymous" for r in ROLES), 0)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
            suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
        )  # fmt: skip
        def fuzz(case: schemathesis.Case) -> None:
            for role in ROLES:
                case.call_and_validate(
                    base_url=fuzz_server, headers=isolated.auth(role) if role else {},
                    checks=[not_a_server_error, response_schema_conformance], timeout=30,
                )  # fmt: skip
                counts[role or "anonymous"] += 1

        try:
            fuzz()
        except Exception as exc:  # every operation is fuzzed; all failures are reported together
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:2000]}")
    print(f"\nschemathesis: {operations} operations, cases per role {counts}")  # noqa: T201
    assert not failures, "\n\n".join(failures)
    assert operations >= 45 and min(counts.values()) >= operations
