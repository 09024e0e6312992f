"""What the latest `leadloop report` found, served beside the report files (`/reports/`)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope as AsgiScope

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


class ReportFiles(StaticFiles):
    """The files `leadloop report` wrote, the dashboard at the folder's address. Before the
    first report that address says how to make one (still a 404: nothing is there yet), where
    a bare "Not Found" would leave a marketer guessing."""

    async def get_response(self, path: str, scope: AsgiScope) -> Response:
        try:
            return await super().get_response(path, scope)
        except StarletteHTTPException as missing:
            if missing.status_code != 404 or path not in (".", "index.html"):
                raise
        # The pages come with matplotlib: imported when asked, the API never needs it otherwise.
        from reports.pages import no_reports_page

        return HTMLResponse(no_reports_page(), status_code=404)
