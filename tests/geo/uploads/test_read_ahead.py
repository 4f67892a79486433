"""Batches read in a background thread: same order, errors surface, closing stops the reader."""

import contextlib
import threading

import pytest

from geo.core.row_errors import UploadRejected
from geo.uploads.staging import read_ahead


def test_items_arrive_in_order_from_another_thread():
    threads = []

    def items():
        for i in range(10):
            threads.append(threading.current_thread().name)
            yield i

    assert list(read_ahead(items())) == list(range(10))
    assert set(threads) == {"read-ahead"}


def test_an_error_of_the_reader_is_raised_to_the_consumer_after_the_good_items():
    def items():
        yield 1
        yield 2
        raise UploadRejected("the file is truncated after row 2", file="lamps.gpkg")

    seen = []
    with pytest.raises(UploadRejected, match="truncated after row 2"):
        for item in read_ahead(items()):
            seen.append(item)
    assert seen == [1, 2]


def test_closing_early_stops_the_reader():
    produced = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    with contextlib.closing(read_ahead(items(), depth=2)) as ahead:
        assert next(ahead) == 0
    # The reader is joined on close, at most a few items ahead of what was consumed.
    assert all(t.name != "read-ahead" for t in threading.enumerate())
    assert len(produced) <= 5
