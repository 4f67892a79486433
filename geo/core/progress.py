"""How long-running ``geo`` work reports progress without knowing who listens.

The CLI turns reports into rich progress bars; background jobs in the API store them in a
progress field. ``geo`` code only calls the function it was given.
"""

from __future__ import annotations

from collections.abc import Callable

#: ``report(step, done, total)``: ``done`` of ``total`` units of ``step`` are finished.
Progress = Callable[[str, int, int], None]


def silent(step: str, done: int, total: int) -> None:
    """A progress reporter that ignores everything."""
