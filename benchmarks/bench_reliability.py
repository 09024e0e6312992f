"""`make reliability`: leadloop probed from outside, as an attacker and a careless client would,
each figure measured on real `leadloop serve` processes on loopback, in one run. Writes
`reports/bench/reliability.md`.

Each figure is a module of `benchmarks/reliability/` with a `measure(directory)` returning a
`Figure`; `FIGURES` lists them in the table's order.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import ROOT, TABLES, machine, write_table
from benchmarks.reliability import (
    Figure,
    auth_matrix,
    crash,
    hostile_values,
    hot_swap,
    ingest,
    limits,
    pii,
    schema_fuzz,
)
from benchmarks.reliability.service import POSTGRES_URL

#: (number, title, how it is measured), in the table's order.
FIGURES: list[tuple[int, str, Callable[[Path], Figure]]] = [
    (1, "schemathesis on the OpenAPI document", schema_fuzz.measure),
    (2, "the auth matrix", auth_matrix.measure),
    (3, "hostile values through the API", hostile_values.measure),
    (4, "duplicates, conflicts and order", ingest.measure),
    (5, "crash safety (PostgreSQL)", crash.measure),
    (6, "hot swap", hot_swap.measure),
    (7, "PII canaries", pii.measure),
    (8, "limits", limits.measure),
]


class Contention:
    """What else ran on the machine: the load average, and whether a pytest run was going on,
    sampled every few seconds."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.loads: list[float] = []
        self.with_pytest = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            self.loads.append(os.getloadavg()[0])
            self.with_pytest += _pytest_running()

    def __enter__(self) -> Contention:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def describe(self) -> str:
        if not self.loads:
            return "not sampled"
        mean = sum(self.loads) / len(self.loads)
        return (
            f"1-minute load average {mean:.1f} on average, {max(self.loads):.1f} at most "
            f"({os.cpu_count()} cores; the run itself keeps about 2 busy); another pytest run "
            f"was going on in {self.with_pytest} of {len(self.loads)} samples"
        )


def _pytest_running() -> bool:
    """Whether a process other than this run's is running pytest."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"pytest" in command and int(proc.name) != os.getpid():
            return True
    return False


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + (" with uncommitted changes" if dirty else "")


def run(number: int, title: str, measure: Callable[[Path], Figure], directory: Path) -> Figure:
    print(f"figure {number}: {title}", flush=True)
    started = time.perf_counter()
    try:
        figure = measure(directory / f"figure-{number}")
    except Exception as exc:  # one figure's failure is reported; the others are still measured
        figure = Figure(number, title, f"FAILED: {type(exc).__name__}: {exc}", False)
        figure.details = ["```", traceback.format_exc().rstrip(), "```"]
    figure.seconds = time.perf_counter() - started
    print(f"  {figure.result} ({figure.seconds:.0f} s)", flush=True)
    return figure


def main() -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="leadloop-reliability-") as tmp, Contention() as load:
        figures = [run(n, title, measure, Path(tmp)) for n, title, measure in FIGURES]
    verdict = {True: "yes", False: "**no**", None: "–"}
    text = [
        "# Reliability",
        "",
        f"Written by `make reliability` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in "
        f"{time.perf_counter() - started:.0f} s, every figure from this one run, on commit "
        f"{_commit()}. Machine: {machine()}. PostgreSQL at `{POSTGRES_URL}`.",
        "",
        f"Contention during the run: {load.describe()}.",
        "",
        "Each figure runs `leadloop serve` as a subprocess on a loopback port, its settings in "
        "`LEADLOOP_*` variables (`LEADLOOP_ENV=production` with a PII key of its own), its keys "
        "made by `leadloop keys create`, its store a new SQLite file or PostgreSQL database "
        "seeded by `leadloop demo-data` (no champion: the rules score serves).",
        "",
        "| # | figure | result | holds | time (s) |",
        "| ---: | --- | --- | --- | ---: |",
        *[
            f"| {f.number} | {f.title} | {f.result} | {verdict[f.holds]} | {f.seconds:.0f} |"
            for f in figures
        ],
    ]
    for figure in figures:
        if figure.details:
            text += ["", f"## {figure.number}. {figure.title}", "", *figure.details]
    write_table(TABLES / "reliability.md", [*text, ""])


if __name__ == "__main__":
    main()
