"""Sending an upload through the API and waiting for its job (shared by the upload tests)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

CAMDEN = "E09000007"
FINAL = {"previewed", "applied", "rejected", "failed", "interrupted"}


def send(client: Any, auth: Any, path: Path, who: str = "camden", **form: Any) -> Any:
    """POST /uploads of ``path`` with the form fields (borough Camden unless given)."""
    data = {"borough": CAMDEN, **{k: str(v).lower() if isinstance(v, bool) else v for k, v in form.items()}}
    with open(path, "rb") as f:
        return client.post("/uploads", files={"file": (path.name, f)}, data=data, headers=auth(who))


def wait(client: Any, auth: Any, upload_id: int, who: str = "camden", seconds: float = 60) -> dict[str, Any]:
    """The upload's record once it has ended."""
    deadline = time.monotonic() + seconds
    record: dict[str, Any] = {}
    while time.monotonic() < deadline:
        record = client.get(f"/uploads/{upload_id}", headers=auth(who)).json()
        if record["state"] in FINAL:
            return record
        time.sleep(0.1)
    raise AssertionError(f"upload {upload_id} did not finish: {record}")
