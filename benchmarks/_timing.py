"""Timing helpers the benchmarks share (not a benchmark itself: the runner skips names starting
with an underscore): a wall and CPU clock, latency percentiles, the JSON results file.

    with Clock() as clock:
        model.generate(seed=0)
    clock.wall, clock.cpu        # seconds: wall time, and CPU time of the calling thread

The CPU time of the calling thread is the cost of a call without the waits a busy shared
machine adds to the wall clock.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np


class Clock:
    """Wall (``perf_counter``) and thread CPU (``thread_time``) seconds of a ``with`` block."""

    def __enter__(self):
        self._t, self._c = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._t
        self.cpu = time.thread_time() - self._c


def percentiles(seconds, prefix: str = "", digits: int | None = None) -> dict:
    """``{prefix}p50_ms`` and ``{prefix}p95_ms`` of per-call times given in seconds (rounded to
    ``digits`` decimals where given)."""
    ms = np.asarray(seconds, np.float64) * 1e3
    out = {}
    for q in (50, 95):
        value = float(np.percentile(ms, q))
        out[f"{prefix}p{q}_ms"] = value if digits is None else round(value, digits)
    return out


def save_json(path, results: dict) -> int:
    """Writes ``results`` to ``path`` when one is given (a benchmark's ``--json``); returns 0,
    the benchmark's exit status."""
    if path:
        Path(path).write_text(json.dumps(results, indent=2))
    return 0
