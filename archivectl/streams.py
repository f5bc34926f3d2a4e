"""Taking a stream a batch at a time: what verify, import and a bulk write do with their millions."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of up to size items, in order, taken from items as they come (itertools.batched, before 3.12)."""
    stream = iter(items)
    while batch := list(itertools.islice(stream, size)):
        yield batch
