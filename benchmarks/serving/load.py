"""Load from wrk (Debian's `wrk`): a fixed number of kept-alive connections posting as fast as
they are answered, each request a lead with an id of its own, latency percentiles from wrk's own
histogram (microseconds)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: `body` in the Lua below: the JSON of a request, with LEAD_ID where each request's id goes.
LEAD_ID = "__LEAD_ID__"

_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%(headers)s
local parts = {}
for part in string.gmatch(%(body)s .. "%(marker)s", "(.-)%(marker)s") do
  table.insert(parts, part)
end
local counter = 0
local thread_name = "%(prefix)s"
request = function()
  counter = counter + 1
  local id = thread_name .. "-" .. counter
  return wrk.format(nil, "%(path)s", nil, table.concat(parts, id))
end
done = function(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests": %%d, "seconds": %%f, "p50": %%d, "p99": %%d, "max": %%d, '
    .. '"status_errors": %%d, "socket_errors": %%d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    latency.max, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


class WrkMissingError(RuntimeError):
    """No `wrk` on the PATH (`make bench` installs Debian's where apt is available)."""


@dataclass(frozen=True)
class Load:
    """What wrk measured: requests answered, their latency (µs), and failures."""

    requests: int
    seconds: float
    p50: float
    p99: float
    max: float
    #: Answers other than 2xx or 3xx, and broken or timed-out connections.
    errors: int

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def wrk(
    url: str,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
    connections: int,
    seconds: float,
    prefix: str,
) -> Load:
    """Post `body` (its LEAD_ID replaced by a new id for each request) to `url` + `path` over
    `connections` connections for `seconds` (whole seconds: wrk takes no fraction)."""
    if shutil.which("wrk") is None:
        raise WrkMissingError("wrk is not installed: `apt-get install wrk` (make bench does)")
    script = _SCRIPT % {
        "headers": "\n".join(f'wrk.headers["{k}"] = {json.dumps(v)}' for k, v in headers.items()),
        "body": _lua_string(json.dumps(body)),
        "marker": LEAD_ID,
        "prefix": prefix,
        "path": path,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    try:
        done = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{math.ceil(seconds)}s",
                "--timeout",
                "30s",
                "-s",
                file.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        Path(file.name).unlink()
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    return Load(
        requests=result["requests"],
        seconds=result["seconds"],
        p50=result["p50"],
        p99=result["p99"],
        max=result["max"],
        errors=result["status_errors"] + result["socket_errors"],
    )


def _lua_string(text: str) -> str:
    """`text` as a Lua long string literal."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"
