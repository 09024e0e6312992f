"""Figure 2: every protected route of a running `leadloop serve` x every way of not holding a
valid key of its scope (none, malformed, revoked, another scope): how many were accepted.

The routes are read from the OpenAPI document (every operation that declares a key), plus the
report files under `/reports/`, which are mounted and not in it. Each request is one a key of
the route's scope would get served: an admin key gets it through, as the last rows show.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from benchmarks.reliability import Figure
from benchmarks.service import Service, store
from store.api_keys import Scope, hash_key

KNOWN_LEAD = "demo-000001"
#: The lead the DELETE names: another one, so that the admin key's erasure leaves KNOWN_LEAD.
ERASED_LEAD = "demo-000002"
REFUSED = (401, 403)


def protected_calls(client: httpx.Client) -> list[tuple[str, str, Scope]]:
    """(method, path, scope) of every route that needs a key, with a known lead in its path."""
    document = client.get("/openapi.json").json()
    calls = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for requirement in operation.get("security", []):
                (scope,) = requirement["APIKey"]
                lead = ERASED_LEAD if method == "delete" else KNOWN_LEAD
                calls.append((method.upper(), path.replace("{lead_id}", lead), Scope(scope)))
    reports = ["/reports", "/reports/", "/reports/index.html", "/reports/kpis.json"]
    return calls + [("GET", path, Scope.READ) for path in reports]


def body(path: str) -> dict[str, Any] | None:
    """A body the route would accept from a caller with its scope."""
    if path == "/v1/scores":
        return {"leads": [{"lead_id": "auth-matrix-lead", "source": "referral"}]}
    if path == "/v1/outcomes":
        event = {
            "event_id": "auth-matrix-event",
            "lead_id": KNOWN_LEAD,
            "outcome": "contacted",
            "occurred_at": "2026-10-30T12:00:00Z",
        }
        return {"outcomes": [event]}
    return None


def measure(directory: Path) -> Figure:
    with store("sqlite", directory) as url, Service(directory, url) as service:
        service.seed(400, seed=9)
        admin = service.create_key("admin", "admin")
        revoked = service.create_key("revoked", "admin")
        service.cli("keys", "revoke", "revoked")
        roles = [scope for scope in Scope if scope is not Scope.ADMIN]
        all_but = {
            scope: service.create_key(f"all-but-{scope}", *(r for r in roles if r is not scope))
            for scope in Scope
        }
        # The dashboard's files, as `leadloop report` would leave them.
        reports = Path(service.settings["reports_dir"])
        reports.mkdir(parents=True, exist_ok=True)
        (reports / "index.html").write_text("<html><body>dashboard</body></html>")
        (reports / "alerts.json").write_text("[]")
        (reports / "kpis.json").write_text('{"as_of": "2026-11-02"}')
        service.start()

        ways = {
            "no key": {},
            "malformed: no scheme": {"Authorization": admin},
            "malformed: Basic": {"Authorization": f"Basic {admin}"},
            "malformed: empty Bearer": {"Authorization": "Bearer"},
            "malformed: Bearer twice": {"Authorization": f"Bearer Bearer {admin}"},
            "malformed: the key's hash": {"Authorization": f"Bearer {hash_key(admin)}"},
            "malformed: unknown key": {"Authorization": "Bearer ll_" + "A" * 43},
            "malformed: key cut short": {"Authorization": f"Bearer {admin[:-1]}"},
            "revoked key": {"Authorization": f"Bearer {revoked}"},
        }
        sent: Counter[str] = Counter()
        accepted: Counter[str] = Counter()
        examples = []
        with service.client() as client:
            calls = protected_calls(client)
            for method, path, scope in calls:
                wrong_scope = {"Authorization": f"Bearer {all_but[scope]}"}
                for way, headers in [*ways.items(), ("wrong scope", wrong_scope)]:
                    kind = way.split(":")[0]
                    response = client.request(
                        method, path, json=body(path), headers=headers, follow_redirects=False
                    )
                    sent[kind] += 1
                    if response.status_code not in REFUSED:
                        accepted[kind] += 1
                        examples.append(f"{way}: {method} {path} -> {response.status_code}")
            served = Counter(
                client.request(
                    method,
                    path,
                    json=body(path),
                    headers={"Authorization": f"Bearer {admin}"},
                    follow_redirects=False,
                ).status_code
                for method, path, _ in calls
            )
    total_sent, total_accepted = sum(sent.values()), sum(accepted.values())
    rows = [f"| {kind} | {sent[kind]:,} | {accepted[kind]} |" for kind in sent]
    details = [
        f"{len(calls)} protected routes (every operation of the OpenAPI document that declares a "
        "key, and four paths of the report files: `/reports` and three under `/reports/`) x "
        f"{len(ways) + 1} ways: no `Authorization` header; seven malformed or unknown "
        "credentials (no scheme, `Basic`, an empty `Bearer`, `Bearer` twice, the key's SHA-256, "
        "a made-up key, the key less its last character); a revoked admin key; a key holding "
        "every scope but the route's. Each request carries the body a key of the route's scope "
        "gets served with. Accepted: any answer but 401 or 403.",
        "",
        "| credential | sent | accepted |",
        "| --- | ---: | ---: |",
        *rows,
        f"| **all** | **{total_sent:,}** | **{total_accepted}** |",
        "",
        "The same requests with the admin key: "
        + ", ".join(f"{n} x {status}" for status, n in sorted(served.items()))
        + " (`/reports` redirects to `/reports/`; the DELETE erases another demo lead).",
        *[f"- accepted: `{line}`" for line in examples[:10]],
    ]
    result = f"{total_sent:,} sent to {len(calls)} routes, {total_accepted} accepted"
    return Figure(2, "the auth matrix", result, total_accepted == 0, details)
