"""What every benchmark shares: where the data and the tables live, a scratch store, the
machine's description, and writing a table."""

from __future__ import annotations

import os
import platform
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
