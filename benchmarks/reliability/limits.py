"""Figure 8: the limits of a real `leadloop serve` with its default settings (the rate limit set
explicitly on): bodies over the size limit (declared and chunked) and the server's memory while
it refuses them, a body and headers dripped slower than their timeouts, and one key's burst of
requests."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from pathlib import Path

from benchmarks.reliability import Figure
from benchmarks.service import Service, store

DECLARED = 200_000_000
OVERSIZED = 20
CHUNK = 64 * 1024
RATE_PER_MINUTE, BURST = 600, 60
MB = 1_000_000


def status_of(answer: bytes) -> int | None:
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def push_body(port: int, head: bytes, chunks: int, chunk: bytes) -> tuple[int | None, int]:
    """Send `head`, then `chunk` up to `chunks` times until the server answers or closes: its
    status, and the body bytes the connection took before that."""
    answer = bytearray()
    answered = threading.Event()

    def read(connection: socket.socket) -> None:
        try:
            while piece := connection.recv(65536):
                answer.extend(piece)
                answered.set()
        except OSError:
            pass
        answered.set()

    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        reader = threading.Thread(target=read, args=(connection,))
        reader.start()
        try:
            connection.sendall(head)
            for _ in range(chunks):
                if answered.is_set():
                    break
                connection.sendall(chunk)
                sent += len(chunk)
        except OSError:  # the server closed the connection
            pass
        reader.join(timeout=30)
    return status_of(bytes(answer)), sent


def drip(port: int, first: bytes, drops: bytes) -> tuple[int | None, float]:
    """Send `first`, then `drops` one byte a second: the answer's status and when it came."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as connection:
        connection.sendall(first)
        connection.settimeout(1.0)
        for byte in drops:
            try:
                answer = connection.recv(65536)
                return status_of(answer), time.monotonic() - started
            except TimeoutError:
                pass
            try:
                connection.sendall(bytes([byte]))
            except OSError:
                break
        connection.settimeout(120)
        answer = connection.recv(65536)
    return status_of(answer), time.monotonic() - started


def rate(service: Service, key: str, requests: int) -> tuple[Counter[int], set[str]]:
    with service.client(key) as client:
        answers = [client.get("/v1/leads/demo-000001") for _ in range(requests)]
    return Counter(a.status_code for a in answers), {
        a.headers.get("retry-after", "none") for a in answers if a.status_code == 429
    }


def measure(directory: Path) -> Figure:
    settings = {"rate_limit_per_minute": RATE_PER_MINUTE, "rate_limit_burst": BURST}
    with store("sqlite", directory) as url, Service(directory, url, **settings) as service:
        service.seed(400, seed=9)
        key = service.create_key("limits", "admin")
        service.start()
        port = service.port
        timeouts: dict[str, tuple[int | None, float]] = {}
        slow_body = threading.Thread(
            target=lambda: timeouts.__setitem__(
                "body",
                drip(
                    port,
                    b"POST /v1/outcomes HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                    b"Authorization: Bearer " + key.encode() + b"\r\nContent-Length: 100\r\n\r\n",
                    b'{"outcomes": [' + b" " * 86,
                ),
            )
        )
        slow_head = threading.Thread(
            target=lambda: timeouts.__setitem__(
                "headers", drip(port, b"GET /healthz HTTP/1.1\r\n", b"X-Slow: " + b"x" * 100)
            )
        )
        slow_body.start()
        slow_head.start()

        before = service.memory()
        head = (
            b"POST /v1/outcomes HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(DECLARED).encode() + b"\r\n\r\n"
        )
        declared = [
            push_body(port, head, DECLARED // CHUNK, b"x" * CHUNK) for _ in range(OVERSIZED)
        ]
        chunked_head = (
            b"POST /v1/scores HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = f"{CHUNK:x}\r\n".encode() + b"x" * CHUNK + b"\r\n"
        chunked = push_body(port, chunked_head, DECLARED // CHUNK, chunk)
        after = service.memory()
        rated, retry_after = rate(service, key, 2 * BURST)
        slow_body.join()
        slow_head.join()
    declared_statuses = Counter(status for status, _ in declared)
    growth = {name: (after[name] - before[name]) / MB for name in after}
    holds = (
        declared_statuses == Counter({413: OVERSIZED})
        and chunked[0] == 413
        and max(growth.values()) < 50
        and timeouts["body"][0] == 408
        and timeouts["headers"][0] == 408
        and rated[429] > 0
    )
    details = [
        "`leadloop serve` with the default limits (body 2 MiB, body timeout 30 s, header "
        f"timeout 10 s) and a rate limit of {RATE_PER_MINUTE} requests a minute per key, bursts "
        f"of {BURST}, set in its environment.",
        "",
        f"- {OVERSIZED} requests declaring a {DECLARED / MB:,.0f} MB body, each pushed as fast as "
        "the connection takes it: "
        + ", ".join(f"{n} x {status}" for status, n in declared_statuses.items())
        + f"; body bytes the connections took before the answer: at most "
        f"{max(sent for _, sent in declared) / MB:.1f} MB each",
        f"- a chunked body pushed towards {DECLARED / MB:,.0f} MB: {chunked[0]} after "
        f"{chunked[1] / MB:.1f} MB had been sent",
        f"- the server's memory (VmRSS): {before['VmRSS'] / MB:.0f} MB before, "
        f"{after['VmRSS'] / MB:.0f} MB after (growth {growth['VmRSS']:+.1f} MB); its peak "
        f"(VmHWM) grew by {growth['VmHWM']:+.1f} MB",
        f"- a body dripped at 1 byte a second after its headers: {timeouts['body'][0]} after "
        f"{timeouts['body'][1]:.1f} s; headers dripped at 1 byte a second: "
        f"{timeouts['headers'][0]} after {timeouts['headers'][1]:.1f} s",
        f"- {2 * BURST} requests in a row with one key: "
        + ", ".join(f"{n} x {status}" for status, n in sorted(rated.items()))
        + f"; Retry-After: {', '.join(sorted(retry_after)) or 'none'} s",
    ]
    result = (
        f"oversized bodies: {declared_statuses[413] + (chunked[0] == 413)} of {OVERSIZED + 1} "
        f"answered 413, RSS {growth['VmRSS']:+.1f} MB (peak {growth['VmHWM']:+.1f} MB); slow "
        f"body cut at {timeouts['body'][1]:.0f} s ({timeouts['body'][0]}); rate limit: "
        f"{rated[429]} x 429"
    )
    return Figure(8, "limits", result, holds, details)
