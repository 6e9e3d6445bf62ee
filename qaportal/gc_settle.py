"""Keep Python's full garbage collections short in a long-running process.

A web worker holds about 200,000 objects from start-up alone (modules, SQLAlchemy mappers,
routes, templates' code). CPython collects the oldest generation whenever enough objects
have survived into it since the last full collection, and a full collection walks every
tracked object: ~100-260 ms on this project's 2-core test machine, in the middle of
whichever request allocated last. At stage B of benchmarks/scale.py that was one request
in about forty, and it was the p95 of every page that happened to meet it
(benchmarks/request_timing.py shows each request's collector time).

`freeze_start_up()` moves every object that exists after the app is built into the
collector's permanent generation (gc.freeze): they are never walked again, so a full
collection costs what the requests left behind. Nothing is kept alive that would otherwise
be freed: frozen objects still go when their last reference does; only reference cycles
among them are not collected, and start-up builds its objects to live as long as the
process. Called once per process at the end of create_app (not in tests: they build many
apps in one process).
"""

from __future__ import annotations

import gc


def freeze_start_up() -> None:
    """Collect start-up's garbage once, then freeze what is left (gc.freeze)."""
    gc.collect()
    gc.freeze()
