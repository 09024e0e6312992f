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
from collections import Counter
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
from benchmarks.service import POSTGRES_URL

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
    """What else used the CPU during the run: every few seconds, the CPU time of each process
    that this run did not start (PostgreSQL's, which serve this run's servers too, apart)."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.seconds = 0.0
        self.others: Counter[str] = Counter()
        self.postgres = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        before = _cpu_seconds_outside(os.getpid())
        while not self._stop.wait(self.every):
            now = _cpu_seconds_outside(os.getpid())
            for pid, (command, seconds) in now.items():
                used = seconds - before.get(pid, (command, 0.0))[1]
                if command.startswith("postgres"):
                    self.postgres += used
                else:
                    self.others[command] += used
            self.seconds += self.every
            before = now

    def __enter__(self) -> Contention:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def describe(self) -> str:
        if not self.seconds:
            return "not sampled"
        busiest = ", ".join(
            f"`{command}` {used / self.seconds:.2f}" for command, used in self.others.most_common(3)
        )
        return (
            f"processes this run did not start used {sum(self.others.values()) / self.seconds:.2f} "
            f"of the {os.cpu_count()} cores on average (busiest: {busiest}), PostgreSQL's "
            f"{self.postgres / self.seconds:.2f}"
        )


def _cpu_seconds_outside(own: int) -> dict[int, tuple[str, float]]:
    """pid -> (command, CPU seconds so far) of every process not descended from `own`."""
    tick = os.sysconf("SC_CLK_TCK")
    parents, found = {}, {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            stat = (proc / "stat").read_text()
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        pid = int(proc.name)
        parents[pid] = int(fields[1])
        label = command.strip()[:70] or stat.split("(", 1)[1].split(")")[0]
        found[pid] = (label, (int(fields[11]) + int(fields[12])) / tick)

    def ours(pid: int) -> bool:
        while pid > 1:
            if pid == own:
                return True
            pid = parents.get(pid, 0)
        return False

    return {pid: value for pid, value in found.items() if not ours(pid)}


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
