"""`campus-sync bench edfi --api-only`: how many student POSTs per second the local Ed-Fi API takes.

The local API must stay out of the sender's way; this measures it alone. It starts its own local
API (any free port, database `edfi_bench` on the embedded server unless a DSN is given, emptied
first), fetches one token, and POSTs N generated students with the Ed-Fi Resync's own client
(campus_sync.edfi.client) at a bounded number of requests in flight: once as creates (201), then the same students again as updates (200). It
reports requests per second and latency percentiles for each round, then stops what it started.
The client runs on the same machine, so the figures include its cost too; the CPU each side spent
per request (the API's process from /proc, the client's own) shows where the time goes.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

BENCH_DATABASE = "edfi_bench"
JSON = {"Content-Type": "application/json"}


def student(i: int, round_: int) -> dict:
    return {"studentUniqueId": f"B{i:08d}", "firstName": f"First{i}", "lastSurname": f"Last{i % 997}",
            "middleName": f"R{round_}", "birthDate": f"{2008 + i % 10}-{1 + i % 12:02d}-{1 + i % 28:02d}",
            "birthSexDescriptor": "uri://ed-fi.org/SexDescriptor#" + ("Female" if i % 2 else "Male"),
            "birthCity": "Frankfort"}


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process so far (Linux /proc), or None."""
    import os

    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _round(client, url: str, n: int, concurrency: int, round_: int, server_pid: int) -> dict:
    import msgspec

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_i = 0
    encode = msgspec.json.encode

    async def worker() -> None:
        nonlocal next_i
        while next_i < n:
            i = next_i
            next_i += 1
            t0 = time.perf_counter()
            r = await client.request("POST", url, content=encode(student(i, round_)), headers=JSON)
            latencies.append(time.perf_counter() - t0)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    s0, c0 = _cpu_seconds(server_pid), _own_cpu()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    s1, c1 = _cpu_seconds(server_pid), _own_cpu()
    lat = sorted(latencies)
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else lat * 99
    return {"requests": n, "seconds": round(wall, 3), "per_second": round(n / wall, 1), "statuses": statuses,
            "latency_ms": {"p50": round(q[49] * 1000, 1), "p95": round(q[94] * 1000, 1), "p99": round(q[98] * 1000, 1)},
            "server_cpu_ms_per_request": round((s1 - s0) * 1000 / n, 3) if s0 is not None and s1 is not None else None,
            "client_cpu_ms_per_request": round((c1 - c0) * 1000 / n, 3)}


async def _bench(info: dict, students: int, concurrency: int) -> dict:
    from campus_sync.edfi.client import ApiConnection, Client

    base = info["oauth_url"].rsplit("/oauth/token", 1)[0]
    api = ApiConnection(base_url=base, key=info["key"], secret=info["secret"], school_year=0)
    async with Client(api, concurrency=concurrency, retries=0) as client:
        await client.token()
        url = f"{info['data_url']}/ed-fi/students"
        warm = await client.request("POST", url, json=student(students, 0))  # seeds the context
        if warm.status_code not in (200, 201):
            raise RuntimeError(f"the warm-up POST failed: {warm.status_code} {warm.text}")
        create = await _round(client, url, students, concurrency, 1, info["pid"])
        update = await _round(client, url, students, concurrency, 2, info["pid"])
    return {"create": create, "update": update}


def run(students: int = 10_000, concurrency: int = 8, dsn: str | None = None) -> dict:
    """Start a local API on an emptied database, POST the students twice, stop it; the figures."""
    import psycopg

    from campus_sync.edfi.api.server import LocalEdFiApi, Options
    from campus_sync.edfi.api.storage import SCHEMA

    if dsn is None:
        from campus_sync import db

        dsn = db.embedded_dsn(BENCH_DATABASE)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    with tempfile.TemporaryDirectory(prefix="campus-edfi-bench-") as state:
        api = LocalEdFiApi(Options(port=0, token_limit=0), state_dir=Path(state), dsn=dsn)
        try:
            info, _ = api.start()
            from campus_sync.edfi.client import run as run_loop

            res = run_loop(_bench(info, students, concurrency))
        finally:
            api.stop()
    return {"students": students, "concurrency": concurrency, **res}


def format_report(res: dict) -> str:
    lines = [f"local Ed-Fi API: POST /ed-fi/students, {res['students']} students, {res['concurrency']} in flight "
             f"(client on the same machine)"]
    for name in ("create", "update"):
        r = res[name]
        lat = r["latency_ms"]
        lines.append(f"  {name:<7} {r['per_second']:>8.1f} requests/s  ({r['seconds']:.1f} s; statuses {r['statuses']}; "
                     f"latency p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms; CPU per request: "
                     f"API {r['server_cpu_ms_per_request']} ms, client {r['client_cpu_ms_per_request']} ms)")
    return "\n".join(lines)
