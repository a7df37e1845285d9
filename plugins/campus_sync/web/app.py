"""The Resync State Data page: a FastAPI app Airflow mounts under `/campus-sync/`.

One server-rendered HTML page with small vanilla JS (no build step) and a JSON API it calls.
Every route depends on `rights.require_read` (app-wide dependency, so a route cannot forget it);
actions check Write or Delete on top. Triggers go through Airflow's own REST API as the user
(`airflow_api`). State-changing requests must be JSON and carry the `X-Campus-Sync` header, which
a cross-site form cannot send (the session cookie is SameSite=Lax on top).

Bad input answers 422 naming the field: request bodies refuse fields they do not declare (nothing
is dropped silently), numbers are bounded before they reach the database. The page shows a paused
campus DAG before the user acts (a run of a paused DAG waits queued for ever) and unpauses it as
the user; a queued run's progress says why it waits. A resync the delete guards refused is shown
with its counts, and a user with Delete rights may rerun exactly it with `confirm_deletes`.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

import psycopg
from fastapi import Depends, FastAPI, HTTPException, Path as PathParam, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from campus_sync import config as config_mod
from campus_sync import hierarchy
from campus_sync.tools import requests
from campus_sync.engine import schema
from campus_sync.tools import selective
from campus_sync.web import airflow_api, data, rights
from campus_sync.web.dag_state import dag_states, why_waiting

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"app.js": "text/javascript", "edfi.js": "text/javascript", "app.css": "text/css"}
PREFIX = "/campus-sync"
CSRF_HEADER = "x-campus-sync"
BIGINT_MAX = 2**63 - 1  # request ids are bigserial: a larger one answers 422, never reaches the database

BatchId = Annotated[int, PathParam(ge=1, le=BIGINT_MAX, description="a request id")]

_schema_lock = threading.Lock()
_schema_ready: set[str] = set()


def _csrf(request: Request) -> None:
    """Refuse state-changing requests a foreign page could forge (no custom header possible)."""
    if request.method not in ("GET", "HEAD", "OPTIONS") and not request.headers.get(CSRF_HEADER):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"missing {CSRF_HEADER} header")


def state_conn() -> psycopg.Connection:
    """A connection to the state database (schema and the page's indexes ensured once per process)."""
    from campus_sync.orchestration import tasks

    dsn = tasks.state_dsn(config_mod.load())
    conn = psycopg.connect(dsn)
    if dsn not in _schema_ready:
        with _schema_lock:
            if dsn not in _schema_ready:
                schema.ensure_state_schema(conn, hierarchy.load())
                _schema_ready.add(dsn)
    return conn


def _cfg() -> config_mod.Config:
    return config_mod.load()


def _graph():
    return hierarchy.load()


def _district(cfg: config_mod.Config, district: str | None) -> str:
    if not district:
        return cfg.district_ids[0]
    if district not in cfg.district_ids:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            f"unknown district {district!r}; configured: {', '.join(cfg.district_ids)}")
    return district


def _json(value: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(jsonable_encoder(value), status_code=status_code)


class Body(BaseModel):
    """A request body: a field the model does not declare is refused (422 naming it), never dropped."""

    model_config = ConfigDict(extra="forbid")


class ResyncBody(Body):
    objects: list[str] = Field(default_factory=list)
    check_dependencies: bool = True
    districts: list[str] = Field(default_factory=list)
    school_year: Literal["current", "previous", "next"] = "current"
    requested_by: Literal["district", "state"] = "district"
    # Allow this run's mass deletes / emptied objects (the engine's delete guards): Delete rights.
    confirm_deletes: bool = False


class SelectiveBody(Body):
    object: str
    ids: str | list[int | str]
    district: str


class VerifyBody(Body):
    districts: list[str] = Field(default_factory=list)


class ClearBody(Body):
    confirm: bool = False
    before: dt.date | None = None
    district: str | None = None  # only this district's history (None: every district)


def plan_request(body: ResyncBody, user_name: str) -> dict[str, Any]:
    """The same validation and planner as the partial resync's first task and `campus-sync plan`:
    which DAG runs, with which conf, running which objects for which districts."""
    cfg, graph = _cfg(), _graph()
    params = body.model_dump()
    kind = "state_request" if body.requested_by == "state" else "partial"
    try:
        req = requests.build(graph, cfg, params, kind=kind, user=user_name)
    except requests.RequestError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    offered = graph.enabled(cfg.state, body.school_year)
    everything = set(req.requested) >= set(offered)
    full = everything and body.school_year == "current" and body.requested_by == "district"
    if full:
        dag_id, conf = rights.FULL, {"districts": list(req.districts)}
    else:
        dag_id = rights.PARTIAL
        conf = {"objects": list(req.requested), "check_dependencies": req.check_dependencies,
                "districts": list(req.districts), "school_year": req.school_year,
                "requested_by": body.requested_by}
    if req.confirm_deletes:  # both resync DAGs take the param (dagbuild.confirm_deletes_param)
        conf["confirm_deletes"] = True
    plan = graph.plan(req.requested, req.check_dependencies, req.school_year, cfg.state)
    return {"dag_id": dag_id, "conf": conf, "kind": "full" if full else kind,
            "confirm_deletes": req.confirm_deletes,
            "objects": list(req.objects), "requested": list(req.requested), "added": list(plan.added),
            "stages": [list(s) for s in plan.stages], "districts": list(req.districts),
            "school_year": req.school_year, "end_year": req.end_year,
            "school_year_label": data.alerts.school_year_label(req.end_year)}


async def _trigger(request: Request, user, dag_id: str, conf: dict) -> dict:
    try:
        run = await airflow_api.trigger(dag_id, conf, token=airflow_api.user_token(request), user=user)
    except airflow_api.AirflowApiError as exc:
        raise HTTPException(exc.status_code, exc.detail) from None
    return {"dag_id": dag_id, "dag_run_id": run.get("dag_run_id"), "state": run.get("state"), "conf": conf}


def _validation_detail(exc: RequestValidationError) -> str:
    """One sentence naming every refused field: `page: Input should be less than or equal to 1000000`."""
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path")]
        if err.get("type") == "extra_forbidden":
            parts.append(f"{'.'.join(loc)}: unknown field (not one this request takes)")
        else:
            parts.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _api(coro):
    """An Airflow REST API call; its refusal becomes this page's answer with the same status."""
    try:
        return await coro
    except airflow_api.AirflowApiError as exc:
        raise HTTPException(exc.status_code, exc.detail) from None


def create_app() -> FastAPI:
    app = FastAPI(title="Resync State Data", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(rights.require_read), Depends(_csrf)])

    @app.exception_handler(HTTPException)
    async def _html_errors(request: Request, exc: HTTPException):
        """The page itself answers a signed-out browser with a sign-in link (still 401/403)."""
        if request.url.path.rstrip("/").endswith(PREFIX) and "text/html" in request.headers.get("accept", ""):
            login = f"/auth/login?next={PREFIX}/"
            body = (f"<!doctype html><title>Resync State Data</title><p>{exc.status_code}: {exc.detail}</p>"
                    f"<p><a href='{login}' target='_top'>Sign in to Airflow</a></p>")
            return HTMLResponse(body, status_code=exc.status_code)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        """Bad input: 422 with one sentence naming each refused field (never a 500 further down)."""
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"),
                            headers={"Cache-Control": "no-store"})

    @app.get("/static/{name}")
    def static(name: str) -> FileResponse:
        if name not in STATIC_FILES:
            raise HTTPException(404, "not found")
        return FileResponse(STATIC / name, media_type=STATIC_FILES[name])

    @app.get("/api/me")
    def me(user: rights.ReadUser) -> JSONResponse:
        cfg = _cfg()
        return _json({"user": user.get_name(), "rights": rights.rights_of(user, cfg.state_conn_id)})

    @app.get("/api/catalog")
    def catalog() -> JSONResponse:
        return _json(data.object_catalog(_graph(), _cfg()))

    @app.get("/api/resync")
    def resync(district: str | None = None,
               school_year: Literal["current", "previous", "next"] = "current") -> JSONResponse:
        cfg = _cfg()
        d = _district(cfg, district)
        with state_conn() as conn:
            rows = data.resync_rows(conn, _graph(), cfg, d, school_year)
        return _json({"district": d, "school_year": school_year, "end_year": cfg.end_year(school_year),
                      "rows": rows})

    @app.post("/api/plan")
    def plan(body: ResyncBody, user: rights.ReadUser) -> JSONResponse:
        return _json(plan_request(body, user.get_name()))

    @app.post("/api/resync")
    async def send_resync(body: ResyncBody, request: Request, user: rights.ReadUser) -> JSONResponse:
        planned = await run_in_threadpool(plan_request, body, user.get_name())
        await run_in_threadpool(rights.check_write, user, planned["dag_id"])
        if body.confirm_deletes:
            await run_in_threadpool(rights.check_delete, user, _cfg().state_conn_id,
                                    "confirm a resync's mass deletes")
        run = await _trigger(request, user, planned["dag_id"], planned["conf"])
        return _json(dict(run, plan=planned))

    @app.get("/api/dags")
    async def dags(request: Request, user: rights.ReadUser) -> JSONResponse:
        return _json({"dags": await dag_states(request, user)})

    @app.post("/api/dags/{dag_id}/unpause")
    async def unpause(dag_id: str, request: Request, user: rights.ReadUser) -> JSONResponse:
        if dag_id not in rights.PAGE_DAGS:
            raise HTTPException(404, f"not a DAG of this page: {dag_id!r}")
        await run_in_threadpool(rights.check_edit_dag, user, dag_id)
        dag = await _api(airflow_api.unpause(dag_id, token=airflow_api.user_token(request), user=user))
        return _json({"dag_id": dag_id, "is_paused": bool(dag.get("is_paused"))})

    @app.get("/api/progress")
    async def progress(dag_id: str, run_id: str, request: Request, user: rights.ReadUser) -> JSONResponse:
        if dag_id not in rights.CAMPUS_DAGS:
            raise HTTPException(400, f"not a campus DAG: {dag_id!r}")
        try:
            run = await airflow_api.dag_run(dag_id, run_id, token=airflow_api.user_token(request), user=user)
        except airflow_api.AirflowApiError as exc:
            raise HTTPException(exc.status_code, exc.detail) from None

        def batch():
            with state_conn() as conn:
                return data.batch_by_run(conn, dag_id, run_id)

        out = {"dag_id": dag_id, "run_id": run_id, "state": run.get("state"),
               "batch": await run_in_threadpool(batch)}
        if run.get("state") == "queued":
            out["waiting"] = await why_waiting(request, user, dag_id, run)
        return _json(out)

    @app.get("/api/history")
    def history_list(page: int = Query(1, ge=1, le=data.MAX_PAGE),
                     per_page: int = Query(25, ge=1, le=data.MAX_PER_PAGE),
                     kind: str | None = None, district: str | None = None) -> JSONResponse:
        if kind and kind not in data.KINDS:
            raise HTTPException(400, f"unknown kind {kind!r}; use one of {', '.join(data.KINDS)}")
        with state_conn() as conn:
            return _json(data.history_page(conn, page=page, per_page=per_page, kind=kind or None,
                                           district_id=district or None))

    @app.get("/api/history.csv")
    def history_csv(kind: str | None = None, district: str | None = None) -> Response:
        if kind and kind not in data.KINDS:
            raise HTTPException(400, f"unknown kind {kind!r}")
        with state_conn() as conn:
            body = data.history_csv(conn, kind=kind or None, district_id=district or None)
        return Response(body, media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="resync-history.csv"'})

    @app.get("/api/history/clear")
    def clear_preview(before: dt.date | None = None, district: str | None = None) -> JSONResponse:
        """What Clear History would delete, for one district (or every one) and before a date."""
        d = _district(_cfg(), district) if district else None
        with state_conn() as conn:
            return _json(dict(data.clear_preview(conn, before, d), district=d, before=data.cutoff(conn, before)))

    @app.post("/api/history/clear")
    def clear(body: ClearBody, user: rights.ReadUser) -> JSONResponse:
        rights.check_delete(user, _cfg().state_conn_id)
        if not body.confirm:
            raise HTTPException(400, "Clear History needs confirmation: send {\"confirm\": true}")
        d = _district(_cfg(), body.district) if body.district else None
        with state_conn() as conn:
            return _json({"deleted": data.clear_history(conn, body.before, d), "district": d,
                          "before": data.cutoff(conn, body.before)})

    @app.get("/api/history/{batch_id}/refused")
    def history_refused(batch_id: BatchId) -> JSONResponse:
        """The request's results the delete guards refused, with their counts and the reruns that
        would confirm exactly those deletes (sent by a user with Delete rights)."""
        with state_conn() as conn:
            found = data.refusals(conn, batch_id)
        if found is None:
            raise HTTPException(404, f"no request with id {batch_id}")
        return _json(found)

    @app.get("/api/history/{batch_id}")
    def history_detail(batch_id: BatchId, district: str | None = None) -> JSONResponse:
        with state_conn() as conn:
            detail = data.batch_detail(conn, _graph(), batch_id, district)
        if detail is None:
            raise HTTPException(404, f"no request with id {batch_id}")
        return _json(detail)

    @app.get("/api/history/{batch_id}/results.csv")
    def history_detail_csv(batch_id: BatchId, district: str | None = None) -> Response:
        with state_conn() as conn:
            detail = data.batch_detail(conn, _graph(), batch_id, district)
        if detail is None:
            raise HTTPException(404, f"no request with id {batch_id}")
        return Response(data.batch_csv(detail), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="request-{batch_id}-{detail["district"]}.csv"'})

    @app.post("/api/selective")
    async def selective_sync(body: SelectiveBody, request: Request, user: rights.ReadUser) -> JSONResponse:
        await run_in_threadpool(rights.check_write, user, rights.SELECTIVE)
        params = body.model_dump()
        try:
            req = selective.build_request(_graph(), _cfg(), params, user=user.get_name())
        except selective.SelectiveError as exc:
            raise HTTPException(400, str(exc)) from None
        conf = {"object": req.object, "ids": ", ".join(str(k) for k in req.keys), "district": req.district_id}
        run = await _trigger(request, user, rights.SELECTIVE, conf)
        return _json(dict(run, objects=list(req.objects), keys=list(req.keys)))

    @app.get("/api/selective/{batch_id}/report.{fmt}")
    def selective_report(batch_id: BatchId, fmt: Literal["pdf", "csv"]) -> Response:
        from campus_sync.tools import report

        with state_conn() as conn:
            try:
                rep = selective.batch_report(conn, batch_id, _cfg())
            except selective.SelectiveError as exc:
                raise HTTPException(404, str(exc)) from None
        name = f"sync-request-{batch_id}.{fmt}"
        if fmt == "pdf":
            return Response(report.to_pdf(rep), media_type="application/pdf",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
        return Response(report.to_csv(rep), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/api/verification")
    def verification(district: str | None = None) -> JSONResponse:
        cfg = _cfg()
        d = _district(cfg, district)
        with state_conn() as conn:
            return _json(data.verification(conn, cfg, d))

    @app.get("/api/verification.csv")
    def verification_csv() -> Response:
        with state_conn() as conn:
            body = data.verification_csv(conn, _cfg())
        return Response(body, media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="verification-summary.csv"'})

    @app.post("/api/verification/run")
    async def reverify(body: VerifyBody, request: Request, user: rights.ReadUser) -> JSONResponse:
        await run_in_threadpool(rights.check_write, user, rights.VERIFICATION)
        cfg = _cfg()
        districts = [_district(cfg, d) for d in body.districts]
        return _json(await _trigger(request, user, rights.VERIFICATION, {"districts": districts}))

    @app.get("/api/alerts")
    def process_alerts(district: str | None = None) -> JSONResponse:
        cfg = _cfg()
        d = _district(cfg, district)
        with state_conn() as conn:
            return _json({"district": d, "alerts": data.alerts.list_alerts(conn, d)})

    from campus_sync.web import edfi_routes

    app.include_router(edfi_routes.router())  # the Ed-Fi Resync tab (its own Read/Write on top)
    return app


@functools.lru_cache(maxsize=1)
def app() -> FastAPI:
    return create_app()
