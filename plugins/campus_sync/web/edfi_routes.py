"""The Ed-Fi Resync tab's JSON API (`/campus-sync/api/edfi/...`).

Every route needs the tab's Read (`rights.require_edfi_read`, on top of the page's Read the app
asks of every route); Start Resync needs Write (`rights.check_edfi_write`). Add and Delete provide no
function for this tool. The form is validated by the same code as the DAG's first task
(`campus_sync.edfi.request.parse_request`): a bad value answers 400 naming it, before anything is
triggered. The run is created through Airflow's REST API as the user, as the page's other actions.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path as PathParam, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from campus_sync.web import airflow_api, dag_state, rights

BatchId = Annotated[int, PathParam(ge=1, le=2**63 - 1, description="a request id")]
IdsText = Annotated[str, Field(default="", max_length=200_000)]


class EdfiBody(BaseModel):
    """The Ed-Fi Resync form; a field it does not declare is refused (422 naming it), and a switch
    must be true or false ("yes" is refused, not read as true)."""

    model_config = ConfigDict(extra="forbid")
    configuration: str
    schools: list[int | str] = Field(default_factory=list, max_length=10_000)
    all_schools: StrictBool = False
    person_ids: IdsText = ""
    course_ids: IdsText = ""
    section_ids: IdsText = ""
    resources: list[str] = Field(default_factory=list, max_length=500)
    select_dependencies: StrictBool = True
    run_cleanup: StrictBool = False
    confirm_cleanup: StrictBool = False
    confirm_deletes: StrictBool = False


def _json(value: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(jsonable_encoder(value), status_code=status_code)


def plan_edfi(body: EdfiBody) -> dict[str, Any]:
    """Validate the form as the DAG's first task does; the run's conf and the planned resources in order."""
    from campus_sync.edfi import request as edfi_request

    params = body.model_dump()
    try:
        req = edfi_request.parse_request(params)
    except (edfi_request.EdfiRequestError, edfi_request.EdfiConfigError) as exc:
        raise HTTPException(400, str(exc)) from None
    order = edfi_request.plan(req)
    conf = {k: v for k, v in params.items() if v not in ("", [], None)}
    conf["schools"] = [str(s) for s in params["schools"]]
    return {"dag_id": rights.EDFI, "conf": conf, "plan": order, "chosen": list(req.chosen),
            "added": [r for r in order if r not in req.chosen], "district": req.district_id,
            "school_year": req.school_year, "schools": list(req.schools) if req.schools is not None else None}


def _batch(run_id: str) -> dict | None:
    from campus_sync.edfi import resync
    from campus_sync.tools import history

    with resync.state_connection() as conn:
        row = conn.execute("SELECT id FROM sync.batch WHERE dag_id = %s AND run_id = %s AND kind = %s",
                           (rights.EDFI, run_id, resync.KIND)).fetchone()
        if row is None:
            return None
        (batch,) = history.batches(conn, limit=1, batch_id=row[0])
    return batch


def router() -> APIRouter:
    r = APIRouter(prefix="/api/edfi", dependencies=[Depends(rights.require_edfi_read)])

    @r.get("/rights")
    def my_rights(user: rights.EdfiReadUser) -> JSONResponse:
        """What the tab offers this user (the server checks again on every action)."""
        return _json({"user": user.get_name(), "read": True, "write": rights.can_edfi_write(user)})

    @r.get("/configurations")
    def configurations() -> JSONResponse:
        """Each configuration's form: its schools by name, its resources in order, run_cleanup offered or not."""
        from campus_sync.edfi import request as edfi_request

        try:
            names = sorted(edfi_request.configurations())
            return _json({"configurations": [edfi_request.form_choices(n) for n in names]})
        except edfi_request.EdfiConfigError as exc:
            raise HTTPException(500, f"the deployment configuration's edfi section: {exc}") from None

    @r.post("/plan")
    def plan(body: EdfiBody) -> JSONResponse:
        return _json(plan_edfi(body))

    @r.post("/resync")
    async def start(body: EdfiBody, request: Request, user: rights.EdfiReadUser) -> JSONResponse:
        await run_in_threadpool(rights.check_edfi_write, user)
        planned = await run_in_threadpool(plan_edfi, body)
        try:
            run = await airflow_api.trigger(rights.EDFI, planned["conf"], token=airflow_api.user_token(request),
                                            user=user)
        except airflow_api.AirflowApiError as exc:
            raise HTTPException(exc.status_code, exc.detail) from None
        return _json({"dag_id": rights.EDFI, "dag_run_id": run.get("dag_run_id"), "state": run.get("state"),
                      "plan": planned})

    @r.get("/progress")
    async def progress(request: Request, user: rights.EdfiReadUser,
                       run_id: str = Query(..., min_length=1, max_length=250)) -> JSONResponse:
        try:
            run = await airflow_api.dag_run(rights.EDFI, run_id, token=airflow_api.user_token(request), user=user)
        except airflow_api.AirflowApiError as exc:
            raise HTTPException(exc.status_code, exc.detail) from None
        out = {"run_id": run_id, "state": run.get("state"), "batch": await run_in_threadpool(_batch, run_id)}
        if run.get("state") == "queued":  # why it waits (a paused DAG's runs wait for ever)
            out["waiting"] = await dag_state.why_waiting(request, user, rights.EDFI, run)
        return _json(out)

    @r.get("/history")
    def history_list(limit: int = Query(10, ge=1, le=100)) -> JSONResponse:
        from campus_sync.edfi import resync
        from campus_sync.tools import history

        with resync.state_connection() as conn:
            ids = [row[0] for row in conn.execute("SELECT id FROM sync.batch WHERE kind = %s ORDER BY id DESC LIMIT %s",
                                                  (resync.KIND, limit))]
            out = [history.batches(conn, limit=1, batch_id=i)[0] for i in ids]
        return _json({"requests": out})

    @r.get("/read-only")
    def read_only(configuration: str | None = Query(None, max_length=60)) -> JSONResponse:
        from campus_sync.edfi import resync

        return _json({"read_only": resync.read_only(configuration or None)})

    @r.get("/{batch_id}/failed.csv")
    def failed_csv(batch_id: BatchId) -> Response:
        from campus_sync.edfi import resync

        with resync.state_connection() as conn:
            kind = conn.execute("SELECT kind FROM sync.batch WHERE id = %s", (batch_id,)).fetchone()
        if kind is None or kind[0] != resync.KIND:
            raise HTTPException(404, f"no Ed-Fi resync request with id {batch_id}")
        return Response(resync.failed_documents_csv(batch_id), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="edfi-resync-{batch_id}-errors.csv"'})

    return r
