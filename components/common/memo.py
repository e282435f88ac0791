"""A small least-recently-used cache shared by threads of one process.

Classical references are fitted once per process and data (keyed by the
arrays' bytes): every seed and child of a compare, every request of the warm
server, scores the same windows and reuses the fits.
"""

import threading
from collections import OrderedDict
from collections.abc import Callable


class ProcessCache:
    """At most `size` results by key; the oldest used one goes first."""

    def __init__(self, size: int):
        self._size = size
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: str, make: Callable):
        """The result stored under `key`, or `make()`'s, stored (`make` runs
        outside the lock: two threads may both make a missing result)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        found = make()
        with self._lock:
            self._items[key] = found
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return found
