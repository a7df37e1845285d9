"""`campus-sync bench edfi --students N`: the Ed-Fi Resync's throughput against the local Ed-Fi API.

Builds its own world on the embedded PostgreSQL (or --dsn's server): a district database with N
students (3 schools, one current-year enrollment each, the Ed-Fi district-side rows of the demo),
a state database and a local Ed-Fi API on a database of its own, all emptied first; points a
temporary deployment configuration at them; then times, in this process:

1. a first send of every resource (everything is new);
2. an unchanged resync (nothing to send: extract, hash, compare);
3. a 1 % change (first names of 1 % of the students), resynced.

Reported per round: seconds, documents processed and sent, records per second, the process's
peak resident memory (ru_maxrss, monotonic: run with several N to see whether it grows with N),
and the CPU spent per record by the sender (this process; lightbeam's process), by the API and by
the API's database (its PostgreSQL backends).
The connection lookups are made before the clock starts: inside Airflow a task finds Airflow
loaded, where here the first lookup would import it.

With lightbeam installed (bench only: `pip install -r requirements-bench.txt` in a separate
environment, then --lightbeam PATH or `lightbeam` on PATH), the same documents are written as
JSONL and sent by `lightbeam send` at the same concurrency into a second fresh local API, first
send and unchanged resend (its hash log), for comparison. Everything started is stopped at the end.
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from pathlib import Path

from campus_sync.edfi.bench import _cpu_seconds

DATABASES = ("edfi_bench_district", "edfi_bench_state", "edfi_bench_api")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu(who: int = resource.RUSAGE_SELF) -> float:
    """User + system CPU seconds of this process (or of its finished children)."""
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _database_cpu(database: str) -> float:
    """CPU seconds so far of the PostgreSQL backends connected to `database` (Linux /proc; their
    titles name the database). The local API's connections live as long as it does, so the
    difference over a round is what its database spent on the round."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            title = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").split()
            if len(title) < 3 or title[0] != b"postgres:" or title[2].decode(errors="replace") != database:
                continue
            total += _cpu_seconds(int(entry.name)) or 0.0
        except OSError:
            continue
    return total


def _per_record_ms(seconds: float | None, records: int) -> float | None:
    return round(seconds * 1000 / records, 3) if seconds is not None and records else None


def _fresh(server_uri: str, name: str) -> str:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_uri, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    return make_conninfo(**{**conninfo_to_dict(server_uri), "dbname": name})


def _seed_district(dsn: str, students: int, end_year: int) -> None:
    """Campus rows for N students, generated in SQL (the demo's generator is sized for demos)."""
    import psycopg

    from campus_sync import hierarchy
    from campus_sync.edfi import demo_data
    from campus_sync.edfi.resync import _schema

    schema = _schema()

    with psycopg.connect(dsn) as conn:
        schema.ensure_district_schema(conn, hierarchy.load())
        conn.execute("""INSERT INTO campus.school (schoolid, number, name, type, stateexclude)
                        VALUES (1001, '01', 'Bench Elementary', 'E', false), (1002, '02', 'Bench Middle', 'M', false),
                               (1003, '03', 'Bench High', 'H', false)""")
        conn.execute("""INSERT INTO campus.calendar (calendarid, schoolid, endyear, name, startdate, enddate, stateexclude)
                        SELECT 2000 + s, 1000 + s, %(y)s, 'Bench ' || s, make_date(%(y)s - 1, 8, 15),
                               make_date(%(y)s, 6, 1), false FROM generate_series(1, 3) s""", {"y": end_year})
        conn.execute("""INSERT INTO campus.personidentity (personid, stateid, lastname, firstname, middlename, gender,
                                                           birthdate, raceethnicity)
                        SELECT 100000 + i, NULL, 'Last' || (i %% 997), 'First' || i, NULL,
                               CASE WHEN i %% 2 = 0 THEN 'M' ELSE 'F' END, make_date(2010 + i %% 8, 1 + i %% 12, 1 + i %% 28), '1'
                          FROM generate_series(1, %(n)s) i""", {"n": students + max(3, students // 20)})
        conn.execute("""INSERT INTO campus.enrollment (enrollmentid, personid, calendarid, structureid, endyear, grade,
                                                       servicetype, startdate, startstatus, enddate, endstatus, stateexclude)
                        SELECT 500000 + i, 100000 + i, 2001 + i %% 3, 1, %(y)s,
                               (ARRAY['03', '07', '10'])[1 + i %% 3], 'P', make_date(%(y)s - 1, 8, 15), 'E1', NULL, NULL, false
                          FROM generate_series(1, %(n)s) i""", {"n": students, "y": end_year})
        conn.commit()
        demo_data.seed(conn, "bench")


def _lightbeam(executable: str, request, api_db: str, scratch: Path, concurrency: int, year: int) -> dict:
    """The same documents through `lightbeam send` into a fresh local API: first send and resend."""
    import subprocess

    import yaml
    from psycopg.conninfo import conninfo_to_dict

    from campus_sync.edfi import resync
    from campus_sync.edfi.api.server import LocalEdFiApi, Options

    data = scratch / "lightbeam-data"
    data.mkdir()
    documents = 0
    for name in resync.plan(request):
        with open(data / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for rows in resync.extract_chunks(request, name):
                for *_, problem, text in rows:
                    if not problem:
                        f.write(text + "\n")
                        documents += 1
    api = LocalEdFiApi(Options(port=0, token_limit=0), state_dir=scratch / "api-lightbeam", dsn=api_db)
    try:
        info, _ = api.start(timeout=120)
        cfg = scratch / "lightbeam.yaml"
        cfg.write_text(yaml.safe_dump({
            "data_dir": str(data) + "/", "state_dir": str(scratch / "lightbeam-state"), "namespace": "ed-fi",
            "edfi_api": {"base_url": info["base_url"], "oauth_url": info["oauth_url"],
                         "dependencies_url": info["base_url"] + "/metadata/data/v3/dependencies",
                         "open_api_metadata_url": info["base_url"] + "/metadata/data/v3/unused", "version": 3,
                         "mode": "shared_instance", "year": year, "client_id": info["key"], "client_secret": info["secret"]},
            "connection": {"pool_size": concurrency, "timeout": 60, "num_retries": 10, "backoff_factor": 1.5,
                           "retry_statuses": [429, 500, 501, 503, 504], "verify_ssl": False},
            "log_level": "WARNING"}))
        out = {"documents": documents}
        database = conninfo_to_dict(api_db)["dbname"]
        for label in ("first send", "unchanged resend"):
            c0, s0, d0 = _cpu(resource.RUSAGE_CHILDREN), _cpu_seconds(info["pid"]), _database_cpu(database)
            t0 = time.perf_counter()
            proc = subprocess.run([executable, "send", "-c", str(cfg)], capture_output=True, text=True, timeout=3600)
            seconds = time.perf_counter() - t0
            c1, s1, d1 = _cpu(resource.RUSAGE_CHILDREN), _cpu_seconds(info["pid"]), _database_cpu(database)
            out[label] = {"seconds": round(seconds, 3), "exit": proc.returncode,
                          "records_per_second": round(documents / seconds, 1) if seconds else None,
                          "client_cpu_ms_per_record": _per_record_ms(c1 - c0, documents),
                          "api_cpu_ms_per_record": _per_record_ms(None if s0 is None or s1 is None else s1 - s0,
                                                                  documents),
                          "api_database_cpu_ms_per_record": _per_record_ms(d1 - d0, documents),
                          "output_tail": (proc.stdout + proc.stderr)[-400:]}
        out["documents_at_api"] = _count_at_api(info, resync.plan(request))
        return out
    finally:
        api.stop()


def _count_at_api(info: dict, resources: list[str]) -> int:
    """Documents the API holds over the resources (Total-Count), to check what lightbeam sent."""
    import httpx

    token = httpx.post(info["oauth_url"], auth=(info["key"], info["secret"]),
                       data={"grant_type": "client_credentials"}, timeout=30).json()["access_token"]
    total = 0
    for name in resources:
        r = httpx.get(f"{info['data_url']}/ed-fi/{name}", params={"limit": 1, "totalCount": "true"},
                      headers={"Authorization": f"Bearer {token}"}, timeout=60)
        total += int(r.headers.get("total-count", 0))
    return total


def run(students: int, concurrency: int = 8, dsn: str | None = None, lightbeam: str | None = None) -> dict:
    from campus_sync import config, db
    from campus_sync.edfi import request as edfi_request
    from campus_sync.edfi import resync
    from campus_sync.edfi.api.server import LocalEdFiApi, Options

    server = dsn or db.embedded_dsn("postgres")
    district, state, api_db = (_fresh(server, name) for name in DATABASES)
    end_year = config.load().end_year("current")
    _seed_district(district, students, end_year)
    scratch = tempfile.TemporaryDirectory(prefix="edfi-bench-")
    api = LocalEdFiApi(Options(port=0, token_limit=0), state_dir=Path(scratch.name) / "api", dsn=api_db)
    saved = {k: os.environ.get(k) for k in ("CAMPUS_SYNC_CONFIG", "AIRFLOW_CONN_EDFI_BENCH_STATE",
                                            "AIRFLOW_CONN_EDFI_BENCH_DISTRICT", "AIRFLOW_CONN_EDFI_BENCH_API")}
    try:
        info, _ = api.start(timeout=120)
        cfg_path = Path(scratch.name) / "campus_sync.yaml"
        cfg_path.write_text(
            "state: KY\ncurrent_school_year: %d\nstate_conn_id: edfi_bench_state\nembedded_postgres: false\n"
            "districts:\n  - {id: bench, name: Bench District, conn_id: edfi_bench_district}\n"
            "edfi:\n  configurations:\n    - {name: bench, district: bench, conn_id: edfi_bench_api, state: KY, "
            "concurrency: %d, resources: [%s]}\n" % (end_year, concurrency, ", ".join(edfi_request.supported_resources())))
        os.environ.update({
            "CAMPUS_SYNC_CONFIG": str(cfg_path),
            "AIRFLOW_CONN_EDFI_BENCH_STATE": _uri(state), "AIRFLOW_CONN_EDFI_BENCH_DISTRICT": _uri(district),
            "AIRFLOW_CONN_EDFI_BENCH_API": json.dumps({"conn_type": "http", "host": info["base_url"], "login": info["key"],
                                                       "password": info["secret"], "extra": {"route_style": "shared"}}),
        })
        db.dsn.cache_clear()
        import psycopg

        from campus_sync import hierarchy
        from campus_sync.edfi.resync import _schema

        with psycopg.connect(state) as conn:
            schema = _schema()
            schema.ensure_state_schema(conn, hierarchy.load())
        # Inside Airflow a task finds Airflow loaded; here the first connection lookup would import it
        # (parsing AIRFLOW_CONN_*) on the clock of the first round: looked up before the clock starts.
        db.dsn("edfi_bench_state", "the state database")
        db.dsn("edfi_bench_district", "district bench")
        rounds = []
        for label in ("first send", "unchanged resync", "1% change"):
            if label == "1% change":
                with psycopg.connect(district) as conn:
                    conn.execute("UPDATE campus.personidentity SET firstname = firstname || 'x'"
                                 " WHERE personid IN (SELECT personid FROM campus.enrollment WHERE enrollmentid % 100 = 0)")
            c0, s0, d0 = _cpu(), _cpu_seconds(info["pid"]), _database_cpu(DATABASES[2])
            t0 = time.perf_counter()
            summary = resync.run({"configuration": "bench", "all_schools": True}, user="bench")
            seconds = time.perf_counter() - t0
            c1, s1, d1 = _cpu(), _cpu_seconds(info["pid"]), _database_cpu(DATABASES[2])
            processed = sum(r["processed"] for r in summary["results"])
            sent = sum(r["inserted"] + r["updated"] for r in summary["results"])
            rounds.append({"round": label, "status": summary["status"], "seconds": round(seconds, 3),
                           "processed": processed, "sent": sent,
                           "records_per_second": round(processed / seconds, 1) if seconds else None,
                           "sent_per_second": round(sent / seconds, 1) if seconds else None,
                           "errors": sum(r["errors"] for r in summary["results"]), "peak_rss_mb": round(_peak_mb(), 1),
                           "client_cpu_ms_per_record": _per_record_ms(c1 - c0, processed),
                           "api_cpu_ms_per_record": _per_record_ms(None if s0 is None or s1 is None else s1 - s0,
                                                                   processed),
                           "api_database_cpu_ms_per_record": _per_record_ms(d1 - d0, processed)})
        first = rounds[0]["seconds"]
        out = {"students": students, "concurrency": concurrency, "rounds": rounds,
               "unchanged_vs_first": round(rounds[1]["seconds"] / first, 3) if first else None}
        import shutil

        executable = lightbeam or shutil.which("lightbeam")
        if executable:
            req = resync.parse_request({"configuration": "bench", "all_schools": True})
            out["lightbeam"] = _lightbeam(executable, req, _fresh(server, "edfi_bench_api_lightbeam"),
                                          Path(scratch.name), concurrency, end_year)
            lb = out["lightbeam"]["first send"]["records_per_second"]
            out["first_send_vs_lightbeam"] = round(rounds[0]["sent_per_second"] / lb, 2) if lb else None
        else:
            out["lightbeam"] = "not installed: pip install -r requirements-bench.txt in a separate environment, then --lightbeam PATH"
        return out
    finally:
        api.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        db.dsn.cache_clear()
        scratch.cleanup()


def _uri(conninfo: str) -> str:
    """A libpq conninfo as the postgres URI AIRFLOW_CONN_* takes."""
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict

    d = conninfo_to_dict(conninfo)
    host = d.get("host", "localhost")
    auth = quote(d.get("user", "")) + (":" + quote(d["password"]) if d.get("password") else "")
    if host.startswith("/"):  # a socket directory: given as the host query parameter
        return f"postgresql://{auth}@/{d['dbname']}?host={quote(host)}" + (f"&port={d['port']}" if d.get("port") else "")
    return f"postgresql://{auth}@{host}:{d.get('port', 5432)}/{d['dbname']}"


def format_report(res: dict) -> str:
    lines = [f"Ed-Fi Resync against the local Ed-Fi API: {res['students']} students, concurrency {res['concurrency']}",
             f"  {'round':<18}{'status':>10}{'seconds':>9}{'processed':>10}{'sent':>7}{'records/s':>11}{'sent/s':>9}"
             f"{'errors':>7}{'peak MB':>9}   CPU ms/record: client, API, API's database"]
    for r in res["rounds"]:
        lines.append(f"  {r['round']:<18}{r['status']:>10}{r['seconds']:>9}{r['processed']:>10}{r['sent']:>7}"
                     f"{r['records_per_second']:>11}{r['sent_per_second']:>9}{r['errors']:>7}{r['peak_rss_mb']:>9}"
                     f"   {r.get('client_cpu_ms_per_record')}, {r.get('api_cpu_ms_per_record')}, "
                     f"{r.get('api_database_cpu_ms_per_record')}")
    lines.append(f"  unchanged resync / first send (time): {res['unchanged_vs_first']}")
    lb = res.get("lightbeam")
    if isinstance(lb, dict):
        for label in ("first send", "unchanged resend"):
            x = lb[label]
            lines.append(f"  lightbeam {label:<17} {x['seconds']:>8} s  {x['records_per_second']:>9} records/s  "
                         f"(exit {x['exit']}, {lb['documents']} documents; {lb.get('documents_at_api')} at the API after; "
                         f"CPU ms/record: client {x.get('client_cpu_ms_per_record')}, API {x.get('api_cpu_ms_per_record')}, "
                         f"API's database {x.get('api_database_cpu_ms_per_record')})")
        lines.append(f"  first send / lightbeam first send (records/s): {res.get('first_send_vs_lightbeam')}")
    else:
        lines.append(f"  lightbeam: {lb}")
    return "\n".join(lines)
