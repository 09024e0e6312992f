"""Shared HTML building blocks of the reports: one self-contained page each, no assets.

Plots are inline SVG drawn with a bare matplotlib `Figure` (no pyplot: no display backend and
no global state), so every page opens offline and references no other file.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from matplotlib.figure import Figure

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6rem 0; }
th, td { padding: .25rem .7rem; border-bottom: 1px solid #eee; text-align: right; }
th.text, td.text { text-align: left; }
.good { color: #1a7f37; } .bad { color: #b42318; } .note { color: #555; }
.plots { display: flex; gap: 1.5rem; flex-wrap: wrap; }
.kpis { display: flex; gap: 1rem; flex-wrap: wrap; }
.kpi { border: 1px solid #ddd; border-radius: 6px; padding: .6rem 1rem; min-width: 9rem; }
.kpi b { display: block; font-size: 1.4rem; }
"""


def cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return escape(str(value))


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], text: int = 1) -> str:
    """Numbers right-aligned; the first `text` columns (words) left-aligned."""

    def align(j: int) -> str:
        return " class='text'" if j < text else ""

    head = "".join(f"<th{align(j)}>{escape(h)}</th>" for j, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td{align(j)}>{cell(v)}</td>" for j, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(width: float = 4.6, height: float = 4.2) -> Figure:
    return Figure(figsize=(width, height))


def svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def page(title: str, sections: Iterable[str]) -> str:
    """A standalone HTML page."""
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(sections)}</body></html>"
    )
