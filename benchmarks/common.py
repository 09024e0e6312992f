"""What every benchmark shares: where the data and the tables live, a scratch store, the
machine's description, what else used it meanwhile, the commit, and writing a table."""

from __future__ import annotations

import os
import platform
import subprocess
import threading
from collections import Counter
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from store.db import make_engine, migrate, session_factory

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TABLES = ROOT / "reports" / "bench"
#: The benchmarks' "now": just after the demo funnel's last day.
NOW = datetime(2026, 11, 2, tzinfo=UTC)
KEY = b"bench"


def scratch_store(directory: Path) -> sessionmaker[Session]:
    """An empty, migrated SQLite store in `directory`."""
    engine = make_engine(f"sqlite:///{directory}/store.db")
    migrate(engine)
    return session_factory(engine)


def machine() -> str:
    """CPU, cores, memory, Python and the packages that set the figures' speed."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    packages = ", ".join(f"{p} {version(p)}" for p in ("lightgbm", "scikit-learn", "pandas"))
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB; Python {platform.python_version()}; "
        f"{packages}"
    )


def write_table(path: Path, lines: list[str]) -> None:
    """Write a benchmark's Markdown table and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {path}")


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


def commit() -> str:
    """The checked-out commit, and whether the tree differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + (" with uncommitted changes" if dirty else "")
