"""The Ed-Fi Resync: send a district's Campus data to an Ed-Fi API, in dependency order, only
what changed since the last successful send.

One request runs as:

    req = parse_request(params)                  # validation, no database (request.py)
    batch = start(req, user=..., dag_id=..., run_id=...)   # history row + read-only locks
    for r in plan(req):  send_resource(batch, req, r)      # one DAG task each, in this order
    for r in reversed(plan(req)):  delete_resource(batch, req, r)   # deletes, reverse order
    finish(batch, {r: (state, result), ...})     # closes the request, releases the locks

Per resource: the extract (include/sql/edfi/<resource>.sql) builds the documents at the
district in a read-only transaction; each document's hash is compared with the send log
(`edfi.send_log`, state database); only new or changed documents are POSTed; only a 2xx answer
writes the log, so a failed document goes again next run. A Campus row whose natural key
changed is a POST of the new document in the send step and a DELETE of the old one in the delete
step (reverse dependency order: documents referring to the old one have moved by then, where a
DELETE first would be refused with 409 dependent-item-exists). Person resources (students, staffs) follow
the Ed-Fi authorization order: their new documents are created in their own step, and their
changed documents are updated in the step of their last authorizing association (e.g. students
after studentSchoolAssociations).

Deletes: a logged document in the request's scope (its schools, and the given person, course and
section IDs) whose Campus row is gone is deleted by its id, in reverse dependency order, under
the mass-delete guard of the Campus syncs (`max_delete_share` of the configuration's sent
documents of that resource, at least `delete_guard_min_rows`; override `confirm_deletes`).

Read only while running: `start` locks every (configuration, school, resource) combination of the
request in `edfi.resync_lock`; a second request overlapping any of them is REFUSED (not queued),
with a message naming the overlap, because a queued resync would send data chosen before the
first one finished. The rows count only while their request is running: a request whose run
died is closed as abandoned by the liveness check, which frees them. Starts are serialized by a
PostgreSQL advisory lock, and each resource's send holds an advisory lock for its
(configuration, resource) for its duration, released by PostgreSQL if the process dies.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import functools
import hashlib
import importlib
import io
import json
from collections import Counter
from typing import Any

from campus_sync.edfi.request import (  # noqa: F401 - the public interface
    EdfiConfiguration,
    EdfiRequest,
    EdfiRequestError,
    configuration,
    configurations,
    form_choices,
    parse_request,
    plan,
    plan_order,
)

KIND = "edfi_resync"
CHUNK = 2000  # documents extracted, sent, then logged, at a time (the next extracted while one is sent)
JSON_CONTENT = {"Content-Type": "application/json"}
RESULT_FIELDS = ("processed", "errors", "inserted", "updated", "deleted", "unchanged")


class EdfiResyncBusy(EdfiRequestError):
    """Another running resync holds some of the request's (configuration, school, resource)."""


def _tool(name: str):
    """A module of the Campus tools (history, liveness), imported when a task runs, not at parse."""
    return importlib.import_module(f"campus_sync.tools.{name}")


def _schema():
    """The state DDL module, imported when needed (it pulls in psycopg)."""
    return importlib.import_module("campus_sync.engine.schema")


# ------------------------------------------------------------------ connections
def state_connection():
    from campus_sync import config, db

    return db.connect(db.dsn(config.load().state_conn_id, "the state database"))


def district_connection(district_id: str):
    from campus_sync import config, db

    d = config.load().district(district_id)
    return db.connect(db.dsn(d.conn_id, f"district {d.id}"))


_ENSURED: set[str] = set()


def ensure_state(conn) -> None:
    """The Ed-Fi Resync's tables in the state database (include/sql/state_edfi.sql); once per
    database and process (a request opens many connections)."""
    from campus_sync import paths

    where = conn.info.dsn
    if where in _ENSURED and conn.execute("SELECT to_regclass('edfi.send_log')").fetchone()[0]:
        return
    conn.execute((paths.sql_dir() / "state_edfi.sql").read_text(encoding="utf-8"))
    conn.commit()
    _ENSURED.add(where)


class StateTokenStore:
    """The API token shared by every task of every resync of one API and key, in the state
    database (edfi.api_token): an ODS/API refuses a client more than a few live tokens, and each
    Airflow task is a process of its own. A token is a bearer credential for at most its lifetime
    (ODS/API: 30 to 60 minutes), kept beside the data it gives access to, never in files or logs."""

    def get(self, oauth_url: str, key: str):
        with state_connection() as conn:
            ensure_state(conn)
            row = conn.execute("SELECT token, extract(epoch FROM expires_at) FROM edfi.api_token"
                               " WHERE oauth_url = %s AND client_key = %s AND expires_at > now()",
                               (oauth_url, key)).fetchone()
        return (row[0], float(row[1])) if row else None

    def put(self, oauth_url: str, key: str, token: str, expires: float) -> None:
        with state_connection() as conn:
            ensure_state(conn)
            conn.execute("""INSERT INTO edfi.api_token (oauth_url, client_key, token, expires_at)
                            VALUES (%s, %s, %s, to_timestamp(%s))
                            ON CONFLICT (oauth_url, client_key) DO UPDATE SET token = EXCLUDED.token,
                                expires_at = EXCLUDED.expires_at""", (oauth_url, key, token, expires))
            conn.execute("DELETE FROM edfi.api_token WHERE expires_at < now()")


def api_of(conf: EdfiConfiguration, school_year: int):
    from campus_sync.edfi import client

    return client.resolve(conf.conn_id, school_year)


@functools.lru_cache(maxsize=1)
def descriptor_maps() -> str:
    import yaml

    from campus_sync.edfi import model

    path = model.model_dir() / "descriptor_maps.yaml"
    return json.dumps(yaml.safe_load(path.read_text(encoding="utf-8")) or {})


def _sql(resource: str) -> str:
    from campus_sync import paths

    return (paths.sql_dir() / "edfi" / f"{resource}.sql").read_text(encoding="utf-8")


def _ids(values: tuple[str, ...]) -> list[int] | None:
    return [int(v) for v in values] if values else None


def extract_chunks(request: EdfiRequest, resource: str, size: int = CHUNK):
    """The resource's documents at the district, streamed (a server-side cursor in a read-only
    transaction) in lists of at most `size` rows of (source_id, school_id, person_id, course_id,
    section_id, problem, doc as JSON text): memory stays flat whatever the district's size."""
    from campus_sync.edfi import model

    params = {"end_year": request.school_year, "schools": list(request.schools) if request.schools is not None else None,
              "person_ids": _ids(request.person_ids), "course_ids": _ids(request.course_ids),
              "section_ids": _ids(request.section_ids), "maps": descriptor_maps(),
              "ns": model.load().descriptor_namespace}
    with district_connection(request.district_id) as conn:
        conn.read_only = True
        with conn.transaction(), conn.cursor(name=f"edfi_{resource.lower()}") as cur:
            cur.itersize = size
            cur.execute(f"SELECT source_id, school_id, person_id, course_id, section_id, problem, doc::text "
                        f"FROM ({_sql(resource)}) AS d", params)  # the query is a project file
            while rows := cur.fetchmany(size):
                yield rows


def extract(request: EdfiRequest, resource: str) -> list[tuple]:
    """Every document of the resource at the district (see extract_chunks)."""
    return [row for rows in extract_chunks(request, resource) for row in rows]


def district_schools(district_id: str) -> list[tuple[int, str]]:
    from campus_sync.edfi.request import write_school_cache

    with district_connection(district_id) as conn:
        rows = [(int(r[0]), str(r[1])) for r in conn.execute("SELECT schoolid, name FROM campus.school ORDER BY schoolid")]
    write_school_cache(district_id, rows)
    return rows


# ------------------------------------------------------------------ start
_START_LOCK = "campus_sync:edfi_resync:start"


def start(request: EdfiRequest, *, user: str, dag_id: str | None = None, run_id: str | None = None) -> int:
    """Open the request in the history (kind edfi_resync) and lock its (configuration, school,
    resource) combinations; EdfiResyncBusy names an overlap with a running resync, and then
    nothing is written. Idempotent per DAG run (a retried first task gets the same batch)."""
    history, liveness = _tool("history"), _tool("liveness")
    conf = configuration(request.configuration)
    known = district_schools(request.district_id)
    ids = [s for s, _ in known]
    if request.schools is not None:
        unknown = sorted(set(request.schools) - set(ids))
        if unknown:
            raise EdfiRequestError(f"schools: {', '.join(map(str, unknown))} not a school of district "
                                   f"{request.district_id}; its schools: {', '.join(map(str, ids))}")
    schools = list(request.schools) if request.schools is not None else ids
    resources = plan(request)
    dep_check: list[str] | str
    try:
        dep_check = check_dependencies(api_of(conf, request.school_year), resources)
    except Exception as exc:  # noqa: BLE001 - reported, not fatal: the send reports the API's state
        dep_check = f"not checked: {exc}"
    with state_connection() as conn:
        ensure_state(conn)
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (_START_LOCK,))
        try:
            liveness.reap(conn, liveness.ambient_dagrun_state(), commit=True)
            busy = conn.execute(
                """SELECT l.school_id, l.resource, b.id, b.requested_by
                     FROM edfi.resync_lock l JOIN sync.batch b ON b.id = l.batch_id
                    WHERE b.status = 'running' AND l.configuration = %s AND l.school_id = ANY(%s)
                      AND l.resource = ANY(%s) AND (b.dag_id IS DISTINCT FROM %s OR b.run_id IS DISTINCT FROM %s
                                                    OR %s::text IS NULL)
                    ORDER BY b.id, l.school_id, l.resource""",
                (conf.name, schools, resources, dag_id, run_id, dag_id)).fetchall()
            conn.commit()
            if busy:
                by_batch: dict[tuple, list[str]] = {}
                for school, resource, bid, who in busy:
                    by_batch.setdefault((bid, who), []).append(f"school {school} {resource}")
                text = "; ".join(f"request {bid} by {who} holds {', '.join(items[:10])}"
                                 + (f" and {len(items) - 10} more" if len(items) > 10 else "")
                                 for (bid, who), items in by_batch.items())
                raise EdfiResyncBusy(f"configuration {conf.name!r}: an Ed-Fi resync is running over the same "
                                     f"schools and resources ({text}); they are read only until it finishes")
            batch_id = history.create_batch(
                conn, kind=KIND, requested_by=user,
                school_year="current" if conf.school_year == "current" else str(request.school_year),
                end_year=request.school_year, check_dependencies=request.select_dependencies,
                districts=[request.district_id], objects=resources, dag_id=dag_id, run_id=run_id,
                details={"edfi": request.to_dict(), "dependency_check": dep_check})
            with conn.transaction():
                # locks of finished or abandoned requests, and what Clear History left behind
                conn.execute("DELETE FROM edfi.resync_lock l WHERE NOT EXISTS (SELECT 1 FROM sync.batch b"
                             " WHERE b.id = l.batch_id AND b.status = 'running')")
                conn.execute("DELETE FROM edfi.failed_document f WHERE NOT EXISTS (SELECT 1 FROM sync.batch b"
                             " WHERE b.id = f.batch_id)")
                with conn.cursor() as cur:
                    cur.executemany(
                        """INSERT INTO edfi.resync_lock (configuration, school_id, resource, batch_id)
                           VALUES (%s, %s, %s, %s)
                           ON CONFLICT (configuration, school_id, resource) DO UPDATE SET batch_id = EXCLUDED.batch_id""",
                        [(conf.name, s, r, batch_id) for s in schools for r in resources])
            for r in resources:
                history.record_start(conn, batch_id, request.district_id, r)
            return batch_id
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (_START_LOCK,))
            conn.commit()


def read_only(configuration_name: str | None = None) -> list[dict]:
    """The (configuration, school, resource) combinations running resyncs hold (for the page)."""
    with state_connection() as conn:
        ensure_state(conn)
        rows = conn.execute(
            """SELECT l.configuration, l.school_id, l.resource, l.batch_id, b.requested_by, b.requested_at
                 FROM edfi.resync_lock l JOIN sync.batch b ON b.id = l.batch_id
                WHERE b.status = 'running' AND (%s::text IS NULL OR l.configuration = %s)
                ORDER BY l.configuration, l.school_id, l.resource""", (configuration_name, configuration_name)).fetchall()
    return [dict(zip(("configuration", "school_id", "resource", "batch_id", "requested_by", "requested_at"), r))
            for r in rows]


# ------------------------------------------------------------------ send
def _colour(processed: int, errors: int) -> str:
    if errors == 0:
        return "green"
    return "yellow" if errors * 100 <= processed else "red"


_KEY_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))
_JSON_STRING = json.encoder.encode_basestring_ascii  # the escaping json.dumps itself uses


def natural_key_text(key: tuple) -> str:
    """The key as `json.dumps(list(key), default=str, separators=(",", ":"))` writes it (the
    send log's natural_key), built directly for the usual parts (text, integers, null): it runs
    for every document of every resync, changed or not."""
    parts = []
    for value in key:
        kind = type(value)
        if kind is str:
            parts.append(_JSON_STRING(value))
        elif value is None:
            parts.append("null")
        elif kind is int:
            parts.append(int.__repr__(value))
        else:  # booleans, numbers with a fraction, anything else: the encoder
            return _KEY_ENCODER.encode(list(key))
    return "[" + ",".join(parts) + "]"


class ResourceRun:
    """One resource's send or delete: counters and the rows to write to the state."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.reasons: Counter = Counter()
        self.failed: list[tuple] = []  # (operation, natural_key, source_id, reason, status, message)
        self.logged: list[tuple] = []
        self.unlogged: list[str] = []
        self.http: Counter = Counter()  # the client's retries, token renewals, Retry-After waits

    def fail(self, operation: str, key: str | None, source: str | None, reason: str,
             status: int | None = None, message: str | None = None) -> None:
        self.counts["errors"] += 1
        self.reasons[reason] += 1
        self.failed.append((operation, key, source, reason, status, message))


def write_run(conn, batch_id: int, conf_name: str, resource: str, run: ResourceRun) -> None:
    """Log what succeeded and keep what failed, in one transaction."""
    with conn.transaction(), conn.cursor() as cur:
        if run.unlogged:
            cur.execute("DELETE FROM edfi.send_log WHERE configuration = %s AND resource = %s AND natural_key = ANY(%s)",
                        (conf_name, resource, run.unlogged))
        if run.logged:
            cur.executemany(
                """INSERT INTO edfi.send_log (configuration, resource, natural_key, source_id, school_id, person_id,
                                              course_id, section_id, hash, api_id, batch_id, sent_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
                   ON CONFLICT (configuration, resource, natural_key) DO UPDATE SET
                       source_id = EXCLUDED.source_id, school_id = EXCLUDED.school_id, person_id = EXCLUDED.person_id,
                       course_id = EXCLUDED.course_id, section_id = EXCLUDED.section_id, hash = EXCLUDED.hash,
                       api_id = coalesce(EXCLUDED.api_id, edfi.send_log.api_id), batch_id = EXCLUDED.batch_id,
                       sent_at = now()""",
                [(conf_name, resource, *row, batch_id) for row in run.logged])
        if run.failed:
            cur.executemany(
                """INSERT INTO edfi.failed_document (batch_id, resource, operation, natural_key, source_id, reason,
                                                     http_status, message) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
                [(batch_id, resource, *f) for f in run.failed])
    run.logged, run.unlogged, run.failed = [], [], []


def _api_id(response) -> str | None:
    location = response.headers.get("location")
    return location.rstrip("/").rsplit("/", 1)[1] if location else None


async def _post_documents(c, url: str, work: list[tuple], run: ResourceRun) -> None:
    """POST each (body: the document's JSON as the extract wrote it, key, hash, Campus row and
    scope) with the client `c`; only a 2xx answer is logged. As many workers as the client's
    concurrency take the documents in turn (not one task per document: less CPU per request)."""
    from campus_sync.edfi import client as http

    documents = iter(work)

    async def worker() -> None:
        for doc, key, hsh, scope in documents:  # shared: each document is taken by one worker
            try:
                r = await c.request("POST", url, content=doc, headers=JSON_CONTENT)
            except http.TransportError as exc:
                run.fail("post", key, scope[0], "connection", None, f"{type(exc).__name__}: {exc}")
                continue
            if r.status_code in (200, 201):
                run.counts["inserted" if r.status_code == 201 else "updated"] += 1
                run.logged.append((key, *scope, hsh, _api_id(r)))
            else:
                run.fail("post", key, scope[0], f"http_{r.status_code}", r.status_code, http.problem_message(r))

    await asyncio.gather(*(worker() for _ in range(min(c.concurrency, len(work)))))


def _key_function(m, res):
    """`m.key_of(res, doc)` with the resource's key paths resolved once: it runs for every
    document of every resync, changed or not."""
    if res.kind == "descriptor":
        return functools.partial(m.key_of, res)
    paths = [(tuple(path.split(".")), m.property_at(res, path)) for path in res.key_paths]
    key_value = m.key_value

    def key_of(doc) -> tuple:
        out = []
        for parts, prop in paths:
            value = doc
            for part in parts:
                value = value[part]
            out.append(key_value(prop, value))
        return tuple(out)

    return key_of


def _prefetched(chunks):
    """The chunks of an extract, each next one fetched in a thread while the caller works on the
    one before: the district's database builds documents while this process hashes and keys them.
    Closes the extract when done or abandoned."""
    from concurrent.futures import ThreadPoolExecutor

    try:
        with ThreadPoolExecutor(1, thread_name_prefix="edfi-extract") as pool:
            ahead = pool.submit(next, chunks, None)
            while (rows := ahead.result()) is not None:
                ahead = pool.submit(next, chunks, None)
                yield rows
    finally:
        chunks.close()


def _send(batch_id: int, request: EdfiRequest, resource: str, mode: str) -> ResourceRun:
    """mode: all (every new or changed document), create (new ones only: a person resource whose
    updates wait for its associations) or update (the rest of a person resource).

    Chunk by chunk, in a pipeline: while one chunk's documents are POSTed, a thread writes the
    previous chunk's results to the state and then extracts the next chunk and compares it with
    the send log. At most three chunks are held, whatever the district's size."""
    import msgspec

    from campus_sync.edfi import client as http
    from campus_sync.edfi import model

    conf = configuration(request.configuration)
    m = model.load()
    key_of = _key_function(m, m.resource(resource))
    decode = msgspec.json.decode
    api = api_of(conf, request.school_year)
    url = f"{api.data_url}/ed-fi/{resource}"
    run = ResourceRun()
    lock = f"campus_sync:edfi_send:{conf.name}:{resource}"
    with state_connection() as conn:
        ensure_state(conn)
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (lock,))
        conn.commit()
        seen: set[str] = set()
        chunks = _prefetched(extract_chunks(request, resource))

        def prepare() -> tuple[ResourceRun, list[tuple]] | None:
            """The next chunk's counters and unsendable rows, and its work (the documents new or
            changed); None after the last chunk."""
            rows = next(chunks, None)
            if rows is None:
                return None
            part = ResourceRun()
            candidates: list[tuple] = []
            for source, school, person, course, section, problem, text in rows:
                if mode != "update":
                    part.counts["processed"] += 1
                if problem:
                    if mode != "update":
                        part.fail("post", None, source, problem, None, f"not sent: {problem.replace('_', ' ')}")
                    continue
                try:
                    key = natural_key_text(key_of(decode(text)))
                except (KeyError, TypeError):
                    if mode != "update":
                        part.fail("post", None, source, "incomplete_key", None, "the document lacks part of its natural key")
                    continue
                if key in seen:
                    if mode != "update":
                        part.fail("post", key, source, "duplicate_key", None, "another Campus row has the same natural key")
                    continue
                seen.add(key)
                body = text.encode()
                candidates.append((body, key, hashlib.sha256(body).hexdigest(),
                                   (source, school, person, course, section)))
            # %b: the keys go as a binary array (a text array literal escapes every key)
            logged = dict(conn.execute(
                "SELECT natural_key, hash FROM edfi.send_log WHERE configuration = %s AND resource = %s"
                " AND natural_key = ANY(%b)", (conf.name, resource, [c[1] for c in candidates])).fetchall())
            conn.commit()
            work = []
            for doc, key, hsh, scope in candidates:
                before = logged.get(key)
                if before == hsh:
                    if mode != "update":
                        part.counts["unchanged"] += 1
                    continue
                if mode == "create" and before is not None:
                    continue  # an update: after the authorizing associations
                if mode == "update" and before is None:
                    continue  # a create: its own step sent it
                # a Campus row whose natural key changed is POSTed under its new key here; its old
                # document is DELETEd in the delete step (reverse order, after its referrers moved)
                work.append((doc, key, hsh, scope))
            return part, work

        def step(done: ResourceRun | None) -> tuple[ResourceRun, list[tuple]] | None:
            """Log a sent chunk's results (when given), then prepare the next chunk: the state
            connection serves one thread at a time."""
            if done is not None:
                write_run(conn, batch_id, conf.name, resource, done)
            return prepare()

        async def pipeline() -> None:
            async with http.Client(api, concurrency=conf.concurrency, token_store=StateTokenStore()) as c:
                ahead = asyncio.ensure_future(asyncio.to_thread(step, None))
                sent: ResourceRun | None = None
                try:
                    while (got := await ahead) is not None:
                        part, work = got
                        # the last chunk's log and the next chunk's extract happen while this one is POSTed
                        ahead = asyncio.ensure_future(asyncio.to_thread(step, sent))
                        sent = None
                        if work:
                            await _post_documents(c, url, work, part)
                        run.counts.update(part.counts)
                        run.reasons.update(part.reasons)
                        sent = part
                    if sent is not None:
                        await asyncio.to_thread(write_run, conn, batch_id, conf.name, resource, sent)
                finally:
                    if not ahead.done():  # a thread cannot be cancelled: let it finish with the connection
                        await asyncio.wait([ahead])
                    if not ahead.cancelled():
                        ahead.exception()  # retrieved: the error raised above is the one reported
            run.http.update(c.stats)

        try:
            http.run(pipeline())
        finally:
            chunks.close()
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (lock,))
        conn.commit()
    return run


def _result_row(conn, batch_id: int, district: str, resource: str) -> dict:
    row = conn.execute(
        """SELECT processed, errors, inserted, updated, deleted, unchanged, error_reasons, started_at
             FROM sync.batch_result WHERE batch_id = %s AND district_id = %s AND object = %s""",
        (batch_id, district, resource)).fetchone()
    if row is None:
        return {f: 0 for f in RESULT_FIELDS} | {"error_reasons": {}, "started_at": None}
    return dict(zip((*RESULT_FIELDS, "error_reasons", "started_at"), row))


def record_run(batch_id: int, request: EdfiRequest, resource: str, run: ResourceRun, *, merge: bool,
            status: str | None = None, message: str | None = None) -> dict:
    """Write the resource's counters to the history (added to what is there when `merge`)."""
    history = _tool("history")
    with state_connection() as conn:
        base = _result_row(conn, batch_id, request.district_id, resource) if merge else \
            {f: 0 for f in RESULT_FIELDS} | {"error_reasons": {}, "started_at": None}
        out = {f: int(base[f] or 0) + int(run.counts.get(f, 0)) for f in RESULT_FIELDS}
        reasons = Counter(base["error_reasons"] or {})
        reasons.update(run.reasons)
        out["error_reasons"] = dict(sorted(reasons.items()))
        result = {**out, "district_id": request.district_id, "object": resource,
                  "started_at": base["started_at"].isoformat() if base["started_at"] else None, "excluded": 0}
        history.record_result(conn, batch_id, result, status=status or _colour(out["processed"], out["errors"]),
                              message=message)
    return {**out, "status": status or _colour(out["processed"], out["errors"]), "resource": resource,
            "http": dict(run.http), **({"message": message} if message else {})}


def send_resource(batch_id: int, request: EdfiRequest, resource: str) -> dict:
    """Send one resource of the request (new and changed documents; key changes); its counters:
    processed, errors (by reason), inserted, updated, deleted, unchanged. Safe to retry: what
    was sent is logged and not sent again. For an association that authorizes a person
    resource's updates, the person resource's deferred updates follow it here."""
    from campus_sync.edfi import model

    if resource not in request.resources:
        raise EdfiRequestError(f"resource {resource!r} is not part of this request ({', '.join(request.resources)})")
    m = model.load()
    order = plan(request)
    waits_for = [a for a in m.person_updates_after.get(resource, ()) if a in request.resources]
    run = _send(batch_id, request, resource, "create" if waits_for else "all")
    out = record_run(batch_id, request, resource, run, merge=False)
    for person, after in sorted(m.person_updates_after.items()):
        inside = [a for a in after if a in request.resources]
        if person in request.resources and inside and resource == max(inside, key=order.index):
            update = _send(batch_id, request, person, "update")
            out["person_updates"] = {person: record_run(batch_id, request, person, update, merge=True)}
    return out


# ------------------------------------------------------------------ delete
def _in_scope(request: EdfiRequest, school, person, course, section) -> bool:
    def ok(values: tuple[str, ...] | None, value) -> bool:
        return not values or value is None or str(value) in values

    return (request.schools is None or school is None or int(school) in request.schools) and \
        ok(request.person_ids, person) and ok(request.course_ids, course) and ok(request.section_ids, section)


def delete_resource(batch_id: int, request: EdfiRequest, resource: str) -> dict:
    """Delete the resource's documents sent earlier in the request's scope whose Campus rows are
    gone, or whose Campus rows now have another natural key (call in reverse plan order, after
    every send_resource). A Campus row that is still there but cannot be sent (no Ed-Fi ID) keeps
    its document. Refused, deleting nothing,
    when that is more than the guard's share of the configuration's sent documents of the
    resource, unless the request confirms deletes."""
    import httpx
    import msgspec

    from campus_sync.edfi import client as http

    from campus_sync.edfi import model

    conf = configuration(request.configuration)
    m = model.load()
    key_of = _key_function(m, m.resource(resource))
    present_keys: set[str] = set()
    unsendable: set[str] = set()  # Campus rows still there but not sendable (no Ed-Fi ID...): kept
    for rows in _prefetched(extract_chunks(request, resource)):  # streamed: only the keys are kept
        for source, *_, problem, text in rows:
            try:
                if problem:
                    raise KeyError(problem)
                present_keys.add(natural_key_text(key_of(msgspec.json.decode(text))))
            except (KeyError, TypeError):
                unsendable.add(source)
    run = ResourceRun()
    with state_connection() as conn:
        ensure_state(conn)
        total, gone = 0, []
        # the log read in chunks (a server-side cursor): memory holds what is gone, not the whole log
        with conn.cursor(name=f"edfi_log_{resource.lower()}") as cur:
            cur.itersize = CHUNK
            cur.execute("""SELECT natural_key, source_id, school_id, person_id, course_id, section_id, api_id
                             FROM edfi.send_log WHERE configuration = %s AND resource = %s ORDER BY natural_key""",
                        (conf.name, resource))
            for r in cur:
                total += 1
                # gone from Campus, or sent under a natural key its Campus row no longer has (a key change)
                if r[0] not in present_keys and r[1] not in unsendable and _in_scope(request, *r[2:6]):
                    gone.append(r)
        conn.commit()
        if gone and not request.confirm_deletes and len(gone) >= conf.delete_guard_min_rows \
                and len(gone) > conf.max_delete_share * total:
            message = (f"mass delete refused: would delete {len(gone)} of the {total} {resource} documents sent "
                       f"for configuration {conf.name} (more than {conf.max_delete_share:.0%}); confirm deletes to "
                       "delete them")
            run.reasons["mass_delete_refused"] += len(gone)
            return record_run(batch_id, request, resource, run, merge=True, status="failed", message=message)
        if gone:
            api = api_of(conf, request.school_year)
            url = f"{api.data_url}/ed-fi/{resource}"

            c_stats: Counter = Counter()

            async def go() -> None:
                async with http.Client(api, concurrency=conf.concurrency, stats=c_stats,
                                       token_store=StateTokenStore()) as c:
                    async def one(key: str, source: str, api_id: str | None) -> None:
                        if not api_id:
                            run.fail("delete", key, source, "no_api_id", None, "the send log has no id for it")
                            return
                        try:
                            r = await c.request("DELETE", f"{url}/{api_id}")
                        except httpx.TransportError as exc:
                            run.fail("delete", key, source, "connection", None, f"{type(exc).__name__}: {exc}")
                            return
                        if r.status_code in (200, 204, 404):
                            run.counts["deleted"] += 1
                            run.unlogged.append(key)
                        else:
                            run.fail("delete", key, source, f"http_{r.status_code}", r.status_code,
                                     http.problem_message(r))
                    await asyncio.gather(*(one(r[0], r[1], r[6]) for r in gone))

            asyncio.run(go())
            run.http.update(c_stats)
            write_run(conn, batch_id, conf.name, resource, run)
    return record_run(batch_id, request, resource, run, merge=True)


# ------------------------------------------------------------------ finish
def finish(batch_id: int, outcomes: dict[str, tuple[str, Any]]) -> dict:
    """Close the request: each resource's outcome is (state, result) with state success, failed,
    upstream_failed or skipped; a resource that did not succeed is recorded as failed or
    not_run. Releases the request's read-only locks. Returns the request's summary."""
    history = _tool("history")
    with state_connection() as conn:
        ensure_state(conn)
        batch = conn.execute("SELECT districts, objects, status FROM sync.batch WHERE id = %s", (batch_id,)).fetchone()
        if batch is None:
            raise ValueError(f"no Ed-Fi resync request {batch_id}")
        district = batch[0][0]
        failed = False
        for resource in batch[1]:
            state, result = outcomes.get(resource, ("not_run", None))
            row = _result_row(conn, batch_id, district, resource)
            if state == "success":
                current = conn.execute("SELECT status FROM sync.batch_result WHERE batch_id = %s AND district_id = %s"
                                       " AND object = %s", (batch_id, district, resource)).fetchone()
                failed |= bool(current and current[0] == "failed")
                continue
            failed = True
            status = "failed" if state == "failed" else "not_run"
            message = (result if isinstance(result, str) else None) or \
                ("the send failed" if state == "failed" else "not run: a resource it depends on did not succeed")
            history.record_result(conn, batch_id, {**{f: row[f] for f in RESULT_FIELDS}, "excluded": 0,
                                                   "district_id": district, "object": resource,
                                                   "error_reasons": row["error_reasons"] or {},
                                                   "started_at": row["started_at"].isoformat() if row["started_at"] else None},
                                  status=status, message=message)
        status = "failed" if failed else "complete"
        history.finish_batch(conn, batch_id, status)
        conn.execute("DELETE FROM edfi.resync_lock WHERE batch_id = %s", (batch_id,))
        conn.commit()
        summary = history.batches(conn, limit=1, batch_id=batch_id)[0]
    return {"batch_id": batch_id, "status": status, "results": summary["results"]}


# ------------------------------------------------------------------ reports
def failed_documents(batch_id: int) -> list[dict]:
    with state_connection() as conn:
        ensure_state(conn)
        cur = conn.execute(
            """SELECT resource, operation, natural_key, source_id, reason, http_status, message, at
                 FROM edfi.failed_document WHERE batch_id = %s ORDER BY resource, at, natural_key""", (batch_id,))
        names = [d.name for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def failed_documents_csv(batch_id: int) -> str:
    """The request's failed documents as CSV: resource, operation, natural key, Campus row,
    reason, HTTP status and the API's message."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["resource", "operation", "natural_key", "campus_row", "reason", "http_status", "message", "at"])
    for d in failed_documents(batch_id):
        w.writerow([d["resource"], d["operation"], d["natural_key"] or "", d["source_id"] or "", d["reason"],
                    d["http_status"] if d["http_status"] is not None else "", d["message"] or "",
                    d["at"].isoformat() if isinstance(d["at"], dt.datetime) else d["at"]])
    return out.getvalue()


def check_dependencies(api, resources: list[str] | None = None) -> list[str]:
    """Where the plan's order disagrees with the API's `/metadata/data/v3/dependencies`: a
    resource the API lists no earlier than one it depends on, or one the API does not list.
    `api` is an ApiConnection or a base URL (shared routes). Empty when they agree, or when the
    API does not serve the list (404)."""
    import httpx

    from campus_sync.edfi import client as http
    from campus_sync.edfi import model

    url = api.dependencies_url if isinstance(api, http.ApiConnection) else f"{str(api).rstrip('/')}/metadata/data/v3/dependencies"
    # the sender's TLS context, made once per process (httpx would load the CA bundle again per call)
    r = httpx.get(url, timeout=30, headers={"Accept": "application/json"}, verify=http._ssl_context())
    if r.status_code == 404:
        return []
    r.raise_for_status()
    orders: dict[str, int] = {}
    for entry in r.json():
        name = str(entry.get("resource", "")).rsplit("/", 1)[-1]
        if "Create" in (entry.get("operations") or ["Create"]):
            orders.setdefault(name, int(entry.get("order", 0)))
    m = model.load()
    names = list(resources) if resources is not None else sorted(n for n in plan_order(
        {c for conf in configurations().values() for c in conf.resources}))
    out = []
    for i, r_name in enumerate(names):
        if r_name not in orders:
            out.append(f"{r_name}: not in the API's dependency list")
            continue
        deps = m.references_of(m.resource(r_name)) if r_name in m.resources else set()
        for dep in sorted(deps):
            if dep not in names or dep not in orders:
                continue
            if orders[dep] >= orders[r_name]:
                out.append(f"{r_name} depends on {dep}, but the API orders {dep} at {orders[dep]} and "
                           f"{r_name} at {orders[r_name]}")
            elif names.index(dep) > i:
                out.append(f"the plan sends {r_name} before {dep}, which the API orders first "
                           f"({orders[dep]} < {orders[r_name]})")
    return out


# ------------------------------------------------------------------ a whole request in-process
def run(params: dict, *, user: str, on_resource=None, delete_step=None) -> dict:
    """Validate, start, send every resource, delete in reverse order and finish, in this process
    (the CLI and automatic resyncs). A resource whose send fails is recorded as failed and the
    resources depending on it are not run. `delete_step(batch_id, request, resource)` replaces
    delete_resource: a request with run_cleanup needs the clean-up's (`cleanup.run` passes it)."""
    import os

    request = parse_request(params) if isinstance(params, dict) else params
    if request.run_cleanup and delete_step is None:
        raise EdfiRequestError("run_cleanup needs the clean-up's delete step: run it with campus_sync.edfi.cleanup.run")
    liveness = _tool("liveness")
    owner_conn = None
    if not os.environ.get(liveness.OWNER_ENV):
        # a one-process run: this state connection lives as long as the process, so a killed run's request
        # is found dead (and its read-only locks freed) by the next request's liveness check
        owner_conn = state_connection()
        os.environ[liveness.OWNER_ENV] = json.dumps(liveness.process_owner(owner_conn))
    try:
        return _run(request, user, on_resource, delete_step or delete_resource)
    finally:
        if owner_conn is not None:
            os.environ.pop(liveness.OWNER_ENV, None)
            owner_conn.close()


def _run(request: EdfiRequest, user: str, on_resource, delete_step) -> dict:
    from campus_sync.edfi import model

    batch_id = start(request, user=user)
    m = model.load()
    outcomes: dict[str, tuple[str, Any]] = {}
    order = plan(request)
    traffic: Counter = Counter()  # the client's retries, renewals and waits over the whole request

    def count(result: dict) -> dict:
        traffic.update(result.get("http") or {})
        for person in (result.get("person_updates") or {}).values():
            traffic.update(person.get("http") or {})
        return result

    try:
        for resource in order:
            deps = m.references_of(m.resource(resource))
            if any(outcomes.get(d, ("success",))[0] != "success" for d in deps if d in order):
                outcomes[resource] = ("upstream_failed", None)
                continue
            try:
                outcomes[resource] = ("success", count(send_resource(batch_id, request, resource)))
            except Exception as exc:  # noqa: BLE001 - recorded per resource, as a task failure would be
                outcomes[resource] = ("failed", f"{type(exc).__name__}: {exc}")
            if on_resource:
                on_resource(resource, outcomes[resource])
        for resource in reversed(order):
            if outcomes[resource][0] == "success":
                try:
                    outcomes[resource] = ("success", count(delete_step(batch_id, request, resource)))
                except Exception as exc:  # noqa: BLE001
                    outcomes[resource] = ("failed", f"{type(exc).__name__}: {exc}")
    finally:
        summary = finish(batch_id, outcomes)
    summary["http"] = dict(sorted(traffic.items()))
    return summary


# ------------------------------------------------------------------ automatic resyncs
def person_resources(conf: EdfiConfiguration) -> list[str]:
    """The configuration's resources that carry a person (those whose extract filters on person_ids)."""
    return [r for r in conf.resources if "person_ids" in _sql(r)]


def edfi_id_changed(configuration_name: str, person_id: int | str, *, user: str = "edfi_id_changed") -> dict:
    """An Ed-Fi ID added or changed on a person: resync that person's resources, every school."""
    conf = configuration(configuration_name)
    return run({"configuration": conf.name, "all_schools": True, "person_ids": str(person_id),
                "resources": person_resources(conf), "select_dependencies": False}, user=user)


def combine_person(configuration_name: str, deleted_person_id: int | str, kept_person_id: int | str, *,
                   user: str = "combine_person") -> dict:
    """Combine Person: the deleted person's documents are removed from Ed-Fi (its Campus rows are
    gone, so the person-scoped deletes take them; confirmed, as the tool asked for it) and the
    kept person is resynced. Both in one request scoped to the two people."""
    conf = configuration(configuration_name)
    return run({"configuration": conf.name, "all_schools": True,
                "person_ids": f"{deleted_person_id} {kept_person_id}", "resources": person_resources(conf),
                "select_dependencies": False, "confirm_deletes": True}, user=user)
