"""The figures of `make reliability` (`benchmarks/bench_reliability.py`), one module each.

Each module's `measure(directory)` runs its servers in `directory` and returns a `Figure`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Figure:
    number: int
    title: str
    #: The figure in one line, as the summary table shows it.
    result: str
    #: Whether it is what the service promises (None: not measured).
    holds: bool | None
    #: Markdown under the figure's own heading: how it was measured, and the detail.
    details: list[str] = field(default_factory=list)
    seconds: float = 0.0
