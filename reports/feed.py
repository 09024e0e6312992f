"""What the API serves of the latest reports: read back from the files `leadloop report` wrote,
so the service and `make report` always show the same numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ALERTS_FILE = "alerts.json"
KPIS_FILE = "kpis.json"


def reports_feed(directory: Path, base: str = "/reports/") -> dict[str, Any]:
    """The alerts (each with a link to its report) and KPIs of the latest report run;
    FileNotFoundError before the first."""
    alerts = json.loads((directory / ALERTS_FILE).read_text(encoding="utf-8"))
    kpis = json.loads((directory / KPIS_FILE).read_text(encoding="utf-8"))
    linked = [alert | {"link": base + alert["report"]} for alert in alerts]
    return {"as_of": kpis["as_of"], "alerts": linked, "kpis": kpis}
