"""What the latest `leadloop report` found, served beside the report files (`/reports/`)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import RedirectResponse

from reports.feed import reports_feed
from serving.auth import requires
from serving.deps import StateDep
from serving.schemas import AlertsOut
from store.api_keys import Scope

router = APIRouter(tags=["reports"], dependencies=[requires(Scope.READ)])


@router.get("/v1/alerts", response_model=AlertsOut)
def get_alerts(state: StateDep) -> dict:
    """The alerts of the latest `leadloop report` (the same the dashboard shows)."""
    try:
        return reports_feed(state.reports_dir)
    except FileNotFoundError:
        raise HTTPException(404, "no reports yet: run `make report`") from None
    except (ValueError, KeyError):  # a report being rewritten by hand, or damaged
        raise HTTPException(503, "the latest reports cannot be read: rerun `make report`") from None


@router.get("/reports", include_in_schema=False)
def reports_home() -> RedirectResponse:
    # The dashboard links its reports relatively: it must be read from /reports/.
    return RedirectResponse("/reports/")
