"""Python's cyclic garbage collector, set up for a serving worker.

With Python's default young-generation threshold (700 container objects, 2000 from 3.13), the objects
of the requests in flight alone set the collector off every few dozen requests, and each pass promotes
them towards the oldest generation, whose full passes walk every object of the process: on a loaded
worker a 30 ms pause every few seconds, which is most of the p99 (docs/performance.md). The worker
therefore, once its app is built:

- freezes what start-up made (modules, settings, the app: alive for the whole process), so that no
  collection walks those objects again;
- raises the young generation's threshold (``[server] gc_young_threshold``), so that the collector runs
  on garbage, not on requests in flight. Reference cycles are still collected, after that many more
  allocations than frees: memory held by uncollected cycles stays bounded by it.
"""

from __future__ import annotations

import gc

#: Young-generation threshold of a serving worker (``[server] gc_young_threshold``).
DEFAULT_YOUNG_THRESHOLD = 20_000


def tune_for_serving(young_threshold: int = DEFAULT_YOUNG_THRESHOLD) -> None:
    """Freeze the objects alive now out of every later collection and set the young generation's threshold
    (the older generations keep theirs). Call once per worker process, after start-up."""
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
