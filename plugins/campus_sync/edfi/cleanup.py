"""Run Clean-up Logic, the Ed-Fi Resync's Tennessee option: documents at the API, in the request's
scope, that the current Campus extract does not have, whoever sent them (this package, Campus's
real-time path, or anything before the send log existed).

The send log's deletes (`resync.delete_resource`) only reach documents this package sent. The
clean-up reads the API itself, so it costs a full read of every planned resource in scope: it is
opt-in, and the form warns that it may dramatically increase processing time. It runs in the
delete step, after each resource's send-log deletes, so the resources go in reverse dependency
order (children before their parents, which the API would refuse with 409 dependent-item-exists).

Per resource:
1. Scope: the documents of the request's schools (every school of the district with All
   Schools; never another district's) and, when the request names people, of those people's Ed-Fi
   IDs (Campus's and those the send log sent for them). A resource whose natural key carries the
   school year is read for the request's year only. Not cleaned, and said so in the request's
   `details.cleanup`: a resource whose documents name no school (students, staffs: they cannot be
   tied to the district's schools), one without a person in a request that names people, and one
   without a school year in its key when the API keeps every year (shared routes), where last
   year's documents would look absent from this year's Campus.
2. Read: paged GETs (limit/offset) filtered by school, or by person, and school year.
3. Absent: a document whose natural key the Campus extract does not build. A Campus row that is
   still there but cannot be sent (no Ed-Fi ID...) keeps the document the send log has for it.
4. Dry run (no `confirm_cleanup`): nothing is deleted; each absent document is counted under the
   reason `cleanup_dry_run` (not an error) and listed in the request's error report.
   Confirmed: each is deleted by its id, under the mass-delete guard of the other deletes (more
   than `max_delete_share` of the documents read, at least `delete_guard_min_rows`, is refused
   unless `confirm_deletes`), and its send-log row, if any, is dropped.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass

DRY_RUN = "cleanup_dry_run"
REFUSED = "mass_delete_refused"
OPERATION = "cleanup"
PAGE_LIMITS = (500, 100, 25)  # the ODS/API's usual maximum page first; smaller where the host allows less
PERSON_FIELDS = ("studentUniqueId", "staffUniqueId", "contactUniqueId", "parentUniqueId")
YEAR_SPECIFIC_ROUTES = ("year", "context-year", "tenant-year")  # one ODS per school year


class CleanupError(RuntimeError):
    """The API would not list a resource's documents; the message names the request and the answer."""


@dataclass(frozen=True)
class Scope:
    """Where a resource's documents name their school, school year and person: (key path, query
    parameter) each, or None."""

    school: tuple[str, str] | None
    year: tuple[str, str] | None
    person: tuple[str, str] | None


def scope_of(m, resource) -> Scope:
    """The key paths (and their GET query parameters) the clean-up scopes a resource by."""
    by_path = {path: name for name, (paths, _) in m.query_parameters(resource).items() for path in paths}

    def find(*fields: str) -> tuple[str, str] | None:
        for f in fields:
            for path in resource.key_paths:
                if path.rsplit(".", 1)[-1] == f and path in by_path:
                    return path, by_path[path]
        return None

    return Scope(school=find("schoolId") or find("educationOrganizationId"), year=find("schoolYear"),
                 person=find(*PERSON_FIELDS))


def skip_reason(scope: Scope, route_style: str, names_people: bool) -> str | None:
    """Why a resource is not cleaned in this request, or None."""
    if scope.school is None:
        return "not cleaned: its documents name no school, so they cannot be tied to the request's schools"
    if names_people and scope.person is None:
        return "not cleaned: the request names people and its documents name none"
    if scope.year is None and route_style not in YEAR_SPECIFIC_ROUTES:
        return ("not cleaned: its documents carry no school year and the API keeps every year (shared routes), "
                "so another year's would look absent from Campus")
    return None


def key_text(m, resource, doc: dict) -> str:
    """A document's natural key as the send log writes it; a date the API returns with a time
    (`2026-08-15T00:00:00`, older ODS/APIs) compares as the date Campus sends."""
    from campus_sync.edfi import resync

    key = list(m.key_of(resource, doc))
    for i, path in enumerate(resource.key_paths):
        if isinstance(key[i], str) and len(key[i]) > 10 and m.property_at(resource, path).type == "date":
            key[i] = key[i][:10]
    return resync.natural_key_text(tuple(key))


def _at(doc: dict, path: str):
    value = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


# ------------------------------------------------------------------ the delete step
def run(params, *, user: str, on_resource=None) -> dict:
    """A whole request in this process (`resync.run`), its delete step this module's: the CLI's
    entry point, with or without run_cleanup."""
    from campus_sync.edfi import resync

    return resync.run(params, user=user, on_resource=on_resource, delete_step=delete_step)


def delete_step(batch_id: int, request, resource: str) -> dict:
    """One resource's delete step: the send log's deletes, then, when the request runs the
    clean-up, the clean-up (call in reverse plan order). The counters of both, merged."""
    from campus_sync.edfi import resync

    out = resync.delete_resource(batch_id, request, resource)
    if not request.run_cleanup:
        return out
    if out.get("status") == "failed":
        _note(batch_id, resource, {"skipped": "not cleaned: the send log's deletes of this resource were refused"})
        return out
    return clean_resource(batch_id, request, resource, before=out)


def clean_resource(batch_id: int, request, resource: str, *, before: dict | None = None) -> dict:
    """Find (and, confirmed, delete) the resource's documents at the API in the request's scope
    that the Campus extract does not build. Counters are added to the resource's in the history;
    what was read, found and deleted goes to the request's `details.cleanup`."""
    from campus_sync.edfi import model, resync

    conf = resync.configuration(request.configuration)
    m = model.load()
    res = m.resource(resource)
    api = resync.api_of(conf, request.school_year)
    scope = scope_of(m, res)
    skipped = skip_reason(scope, api.route_style, bool(request.person_ids))
    if skipped:
        _note(batch_id, resource, {"skipped": skipped})
        return {**(before or {}), "cleanup": {"skipped": skipped}}

    schools = set(request.schools) if request.schools is not None else \
        {s for s, _ in resync.district_schools(request.district_id)}
    people = _people(request, conf.name, m) if request.person_ids else None
    present, unsendable = _campus(request, resource, m, res)
    with resync.state_connection() as conn:
        resync.ensure_state(conn)
        logged = {key: source for key, source in conn.execute(
            "SELECT natural_key, source_id FROM edfi.send_log WHERE configuration = %s AND resource = %s",
            (conf.name, resource))}

    year = {scope.year[1]: request.school_year} if scope.year else {}
    if people is not None:
        queries = [{**year, scope.person[1]: p} for p in sorted(people)]
    else:
        queries = [{**year, scope.school[1]: s} for s in sorted(schools)]

    def within(doc: dict) -> bool:
        if _at(doc, scope.school[0]) not in schools:
            return False
        if scope.year and _at(doc, scope.year[0]) != request.school_year:
            return False
        return people is None or _at(doc, scope.person[0]) in people

    run = resync.ResourceRun()
    read = asyncio.run(_read(api, conf, resource, queries, within, lambda d: key_text(m, res, d), run.http))
    absent = sorted((key, api_id) for api_id, key in read.items()
                    if key not in present and logged.get(key) not in unsendable)
    note = {"read": len(read), "absent": len(absent), "deleted": 0, "confirmed": request.confirm_cleanup}
    status = message = None
    if absent and not request.confirm_cleanup:
        for key, api_id in absent:
            run.reasons[DRY_RUN] += 1
            run.failed.append((OPERATION, key, logged.get(key), DRY_RUN, None,
                               f"at the API (id {api_id}) but not in Campus: not deleted, a dry run "
                               "(confirm_cleanup deletes it)"))
    elif absent and not request.confirm_deletes and len(absent) >= conf.delete_guard_min_rows \
            and len(absent) > conf.max_delete_share * len(read):
        status = "failed"
        message = (f"mass delete refused: the clean-up would delete {len(absent)} of the {len(read)} {resource} "
                   f"documents it read at the API (more than {conf.max_delete_share:.0%}); confirm deletes to delete "
                   "them")
        for key, api_id in absent:
            run.reasons[REFUSED] += 1
            run.failed.append((OPERATION, key, logged.get(key), REFUSED, None,
                               f"at the API (id {api_id}) but not in Campus: not deleted, {message}"))
    elif absent:
        asyncio.run(_delete(api, conf, resource, absent, logged, run))
        note["deleted"] = run.counts["deleted"]
    with resync.state_connection() as conn:
        resync.write_run(conn, batch_id, conf.name, resource, run)
    _note(batch_id, resource, note)
    out = resync.record_run(batch_id, request, resource, run, merge=True, status=status, message=message)
    out["http"] = dict(Counter((before or {}).get("http") or {}) + Counter(out.get("http") or {}))
    out["cleanup"] = note
    return out


# ------------------------------------------------------------------ Campus and the state
def _campus(request, resource: str, m, res) -> tuple[set[str], set[str]]:
    """The natural keys the Campus extract builds (sendable or not), and the Campus rows whose
    document has no complete key (their logged documents are kept)."""
    from campus_sync.edfi import resync

    present: set[str] = set()
    unsendable: set[str] = set()
    for rows in resync.extract_chunks(request, resource):
        for source, *_, problem, text in rows:
            try:
                present.add(key_text(m, res, json.loads(text)))
            except (KeyError, TypeError):
                unsendable.add(source)
                continue
            if problem:
                unsendable.add(source)
    return present, unsendable


def _people(request, conf_name: str, m) -> set[str]:
    """The Ed-Fi IDs of the request's people: Campus's today, and those the send log sent for them."""
    from campus_sync.edfi import resync

    ids = [int(p) for p in request.person_ids]
    with resync.district_connection(request.district_id) as conn:
        conn.read_only = True
        out = {r[0] for r in conn.execute(
            "SELECT edfiid FROM campus_edfi.person_edfi_id WHERE personid = ANY(%s) AND nullif(btrim(edfiid), '') IS NOT NULL",
            (ids,))}
    with resync.state_connection() as conn:
        resync.ensure_state(conn)
        rows = conn.execute("SELECT resource, natural_key FROM edfi.send_log WHERE configuration = %s"
                            " AND person_id = ANY(%s)", (conf_name, ids)).fetchall()
    for resource, key in rows:
        if resource not in m.resources:
            continue
        res = m.resource(resource)
        person = scope_of(m, res).person
        if person is not None:
            out.add(json.loads(key)[res.key_paths.index(person[0])])
    return out


def _note(batch_id: int, resource: str, note: dict) -> None:
    """What the clean-up did for a resource, in the request's details (`details.cleanup`)."""
    from campus_sync.edfi import resync

    with resync.state_connection() as conn:
        conn.execute(
            """UPDATE sync.batch SET details = jsonb_set(coalesce(details, '{}'::jsonb), '{cleanup}',
                   coalesce(details->'cleanup', '{}'::jsonb) || jsonb_build_object(%s::text, %s::jsonb))
                WHERE id = %s""", (resource, json.dumps(note), batch_id))
        conn.commit()


# ------------------------------------------------------------------ HTTP
def _client(api, conf, stats: Counter):
    from campus_sync.edfi import client as http
    from campus_sync.edfi import resync

    return http.Client(api, concurrency=conf.concurrency, stats=stats, token_store=resync.StateTokenStore())


async def pages(c, url: str, params: dict):
    """Every page of a GET (offset/limit paging on the client's public `request`, the query
    encoded here): the largest page the host accepts, then smaller ones when it refuses the
    limit (400)."""
    from urllib.parse import urlencode

    from campus_sync.edfi import client as http

    limits = list(PAGE_LIMITS)
    offset = 0
    while True:
        query = urlencode({**params, "offset": offset, "limit": limits[0]})
        r = await c.request("GET", f"{url}?{query}", headers={"Accept": "application/json"})
        if r.status_code == 400 and offset == 0 and len(limits) > 1:
            limits.pop(0)
            continue
        if r.status_code != 200:
            raise CleanupError(f"GET {url} {params}: {r.status_code} {http.problem_message(r)}")
        page = r.json()
        if not isinstance(page, list):
            raise CleanupError(f"GET {url} {params}: expected a list of documents, got {type(page).__name__}")
        yield page
        if len(page) < limits[0]:
            return
        offset += len(page)


async def _read(api, conf, resource: str, queries: list[dict], within, key_of, stats: Counter) -> dict[str, str]:
    """id → natural key of the documents the queries list that are within the scope."""
    url = f"{api.data_url}/ed-fi/{resource}"
    out: dict[str, str] = {}
    async with _client(api, conf, stats) as c:
        async def one(params: dict) -> None:
            async for page in pages(c, url, params):
                for doc in page:
                    if within(doc):
                        out[str(doc["id"])] = key_of(doc)

        for failure in await asyncio.gather(*(one(q) for q in queries), return_exceptions=True):
            if isinstance(failure, BaseException):
                raise failure
    return out


async def _delete(api, conf, resource: str, absent: list[tuple[str, str]], logged: dict, run) -> None:
    """DELETE each (natural key, id); 404 counts as done (someone else deleted it)."""
    import httpx

    from campus_sync.edfi import client as http

    url = f"{api.data_url}/ed-fi/{resource}"
    async with _client(api, conf, run.http) as c:
        async def one(key: str, api_id: str) -> None:
            try:
                r = await c.request("DELETE", f"{url}/{api_id}")
            except httpx.TransportError as exc:
                run.fail(OPERATION, key, logged.get(key), "connection", None, f"{type(exc).__name__}: {exc}")
                return
            if r.status_code in (200, 204, 404):
                run.counts["deleted"] += 1
                run.unlogged.append(key)
            else:
                run.fail(OPERATION, key, logged.get(key), f"http_{r.status_code}", r.status_code,
                         http.problem_message(r))

        await asyncio.gather(*(one(k, i) for k, i in absent))
