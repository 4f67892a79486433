"""Coverage reports through the API on ``CONNECTIVITY_DASK_SCHEDULER=local``: where it ran, the
same answer as in process, and a worker process killed while it measures a partition."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cloudpickle
import pytest
from distributed import WorkerPlugin

from geo.coverage import distributed

BODY = {"area": {"boroughs": ["E09000007", "E09000019"]}, "k": 5, "cell_size": 100}  # Camden, Islington
SIZE = 2000


class KillWhileArmed(WorkerPlugin):
    """Kills its worker process as a partition starts, while the file ``armed`` exists.

    ``once``: the file is removed first, so exactly one worker dies (the nanny starts another).
    """

    def __init__(self, armed: str, once: bool) -> None:
        self.armed, self.once = armed, once

    def transition(self, key, start, finish, **kwargs) -> None:  # noqa: D102
        if finish == "executing" and str(key).startswith("partition_task") and os.path.exists(self.armed):
            if self.once:
                os.remove(self.armed)
            os._exit(1)


# The workers cannot import the tests: the plugin travels by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def local_dask():
    """The service's own ``local`` cluster (two worker processes here); a partition may fail once."""
    import dask

    with (
        pytest.MonkeyPatch.context() as env,
        dask.config.set({"distributed.scheduler.allowed-failures": 1}),
    ):
        env.setenv("CONNECTIVITY_DASK_SCHEDULER", "local")
        env.setenv("CONNECTIVITY_DASK_PARTITION_M", str(SIZE))
        env.setenv("CONNECTIVITY_DASK_MIN_AREA_SQ_KM", "0")
        yield distributed.client_for("local")
    distributed.close_clients()


def _report(client, auth, state: str = "done") -> dict:
    answer = client.post("/coverage/reports", json=BODY, headers=auth("operator"))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["state"] == state, body["message"]
    return body


def _answers(client, auth, body: dict) -> tuple[dict, str, str]:
    """What a reader gets: the summary (without where and how long), the demand and priorities CSVs."""
    summary = dict(body["summary"])
    summary.pop("ran_on", None)
    summary["priorities"].pop("seconds", None)
    rid = body["id"]
    demand = client.get(f"/coverage/reports/{rid}/demand.csv", headers=auth("operator")).text
    priorities = client.get(f"/coverage/reports/{rid}/priorities.csv", headers=auth("operator")).text
    return summary, demand, priorities


@pytest.fixture(scope="module")
def in_process(client, auth, local_dask):
    with pytest.MonkeyPatch.context() as env:
        env.delenv("CONNECTIVITY_DASK_SCHEDULER")
        body = _report(client, auth)
    assert body["summary"].get("ran_on") is None  # in process: not said
    return _answers(client, auth, body)


def test_a_report_on_local_dask_says_where_it_ran_and_answers_as_one_process(
    client, auth, local_dask, in_process
):
    body = _report(client, auth)
    ran_on = body["summary"]["ran_on"]
    assert ran_on["scheduler"] == local_dask.scheduler.address
    assert ran_on["workers"] == 2 and ran_on["partition_m"] == SIZE and ran_on["partitions"] > 4
    stored = client.get(f"/coverage/reports/{body['id']}", headers=auth("operator")).json()
    assert stored["summary"]["ran_on"] == ran_on
    summary, demand, priorities = _answers(client, auth, body)
    assert summary == in_process[0]
    assert demand == in_process[1] and demand.count("\n") > 1000  # distances and nearest asset ids
    assert priorities == in_process[2] and priorities.count("\n") > 2


def _armed(local_dask, tmp_path: Path, once: bool) -> Path:
    armed = tmp_path / "armed"
    armed.touch()
    local_dask.register_plugin(KillWhileArmed(str(armed), once), name="kill")
    return armed


def _disarm(local_dask, armed: Path) -> None:
    armed.unlink(missing_ok=True)
    local_dask.unregister_worker_plugin("kill")
    local_dask.wait_for_workers(2, timeout=60)


def test_a_worker_killed_mid_report_has_its_partition_run_again(
    client, auth, local_dask, in_process, tmp_path
):
    armed = _armed(local_dask, tmp_path, once=True)
    try:
        body = _report(client, auth)
        assert not armed.exists()  # a worker died while measuring a partition
    finally:
        _disarm(local_dask, armed)
    assert _answers(client, auth, body) == in_process  # the partition ran again elsewhere: the same answer


def test_a_partition_that_kills_every_worker_fails_the_report_cleanly(client, auth, local_dask, tmp_path):
    armed = _armed(local_dask, tmp_path, once=False)
    try:
        body = _report(client, auth, state="failed")
    finally:
        _disarm(local_dask, armed)
    assert body["message"].startswith("PartitionLost: a partition of the report lost every worker")
    assert body["summary"] is None and body["timings"] == {}
    downloads = client.get(f"/coverage/reports/{body['id']}/demand.csv", headers=auth("operator"))
    assert downloads.status_code in (404, 409)  # no partial answer to read
    assert _report(client, auth)["summary"]["ran_on"]["workers"] == 2  # the cluster serves again
