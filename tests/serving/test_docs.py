"""The API's description: /docs and /redoc load nothing from another host, and the OpenAPI
document lists every status code each route can answer."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from serving.app import create_app
from tests.support import make_settings

#: Every operation, and each status it can answer (the limits' on every route; 503 is also
#: uvicorn's answer at the connection cap).
STATUSES = {
    ("post", "/v1/scores"): {200, 401, 403, 408, 413, 422, 429, 503},
    ("post", "/v1/outcomes"): {200, 401, 403, 408, 409, 413, 422, 429, 503},
    ("post", "/v1/crm/hubspot"): {200, 400, 401, 403, 404, 408, 413, 429, 503},
    ("post", "/v1/crm/salesforce"): {200, 400, 401, 403, 404, 408, 413, 429, 503},
    ("get", "/v1/leads/{lead_id}"): {200, 401, 403, 404, 408, 413, 429, 503},
    ("delete", "/v1/leads/{lead_id}"): {200, 401, 403, 404, 408, 413, 429, 503},
    ("get", "/v1/leads/{lead_id}/history"): {200, 401, 403, 404, 408, 413, 422, 429, 503},
    ("get", "/v1/leads/{lead_id}/changes"): {200, 401, 403, 404, 408, 413, 422, 429, 503},
    ("post", "/v1/leads/{lead_id}/card-link"): {200, 400, 401, 403, 404, 408, 413, 422, 429, 503},
    ("get", "/v1/leads/{lead_id}/card"): {200, 403, 404, 408, 413, 422, 503},
    ("get", "/v1/webhooks/deliveries"): {200, 401, 403, 408, 413, 422, 429, 503},
    ("get", "/v1/model"): {200, 401, 403, 408, 413, 429, 503},
    ("get", "/v1/alerts"): {200, 401, 403, 404, 408, 413, 429, 503},
    ("get", "/metrics"): {200, 401, 403, 408, 413, 429, 503},
    ("get", "/healthz"): {200, 408, 413, 503},
    ("get", "/readyz"): {200, 408, 413, 503},
}
REFERENCE = re.compile(r"""(?:src|href|url)\s*[=:]\s*["']([^"']+)["']""")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path_factory.mktemp("docs")))) as running:
        yield running


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_load_only_from_leadloop(client: TestClient, page: str) -> None:
    html = client.get(page).text
    references = REFERENCE.findall(html)
    assert any(url.endswith(".js") for url in references), html
    for url in references:
        assert url.startswith("/") and not url.startswith("//"), url
        answer = client.get(url)
        assert answer.status_code == 200 and answer.content, url
    assert "http://" not in html and "https://" not in html


def test_openapi_lists_every_status_each_route_answers(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    operations = {(method, path): op for path, ops in paths.items() for method, op in ops.items()}
    assert set(operations) <= set(STATUSES), "a new route: list the statuses it answers here"
    for operation in operations:
        statuses = STATUSES[operation]
        documented = {int(status) for status in operations[operation]["responses"]}
        assert statuses <= documented, (operation, statuses - documented)
        if 429 in statuses:
            assert "Retry-After" in operations[operation]["responses"]["429"]["headers"]
