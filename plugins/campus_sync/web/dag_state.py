"""What the scheduler will do with the page's DAGs, in words a user can act on: a paused DAG
(its runs wait queued for ever), max_active_runs taken, the scheduler down. The Campus tabs and
the Ed-Fi tab ask the same questions, through Airflow's REST API as the user."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from campus_sync.web import airflow_api, rights

ACTIONS = {rights.FULL: "Send Resync (every object)", rights.PARTIAL: "Send Resync",
           rights.SELECTIVE: "Selective Sync", rights.VERIFICATION: "Re-Verify",
           rights.EDFI: "Start Resync (Ed-Fi)"}


async def dag_states(request: Request, user) -> dict[str, dict]:
    """Each campus DAG as the scheduler sees it, for this user: paused (runs wait queued), active
    runs against max_active_runs, and whether this user may unpause it (else who may)."""
    token = airflow_api.user_token(request)

    async def one(dag_id: str) -> dict:
        out: dict[str, Any] = {"dag_id": dag_id, "action": ACTIONS[dag_id]}
        try:
            dag, active = await asyncio.gather(
                airflow_api.dag(dag_id, token=token, user=user),
                airflow_api.runs(dag_id, ("queued", "running"), token=token, user=user, limit=1))
        except airflow_api.AirflowApiError as exc:
            known = exc.status_code != 404
            out.update(error=(f"Airflow does not know {dag_id} yet (the dag-processor has not parsed it)"
                              if not known else f"Airflow answered {exc.status_code}: {exc.detail}"))
            return out
        out.update(is_paused=bool(dag.get("is_paused")), max_active_runs=dag.get("max_active_runs"),
                   active_runs=int(active.get("total_entries") or 0))
        out["can_unpause"] = await run_in_threadpool(rights.can_edit_dag, user, dag_id)
        if out["is_paused"] and not out["can_unpause"]:
            out["who_can_unpause"] = await run_in_threadpool(rights.who_can_text, dag_id)
        return out

    shown = list(rights.CAMPUS_DAGS)
    if await run_in_threadpool(rights.can_edfi_read, user):
        shown.append(rights.EDFI)
    found = await asyncio.gather(*(one(d) for d in shown))
    return {d["dag_id"]: d for d in found}


async def why_waiting(request: Request, user, dag_id: str, run: dict) -> dict:
    """Why a queued run is not started yet, in the scheduler's terms: the DAG is paused, its
    max_active_runs are taken (by which runs), the scheduler is not running, or none of these
    (it is waiting for the scheduler's next loop)."""
    token = airflow_api.user_token(request)
    reasons: list[str] = []
    dag, active, health = await asyncio.gather(
        airflow_api.dag(dag_id, token=token, user=user),
        airflow_api.runs(dag_id, ("running", "queued"), token=token, user=user, limit=50),
        airflow_api.health(token=token, user=user), return_exceptions=True)
    paused = isinstance(dag, dict) and bool(dag.get("is_paused"))
    can = paused and await run_in_threadpool(rights.can_edit_dag, user, dag_id)
    if paused:
        reasons.append(f"{dag_id} is paused in Airflow: the scheduler starts no run of a paused DAG. "
                       + ("Unpause it here to let this run start." if can
                          else f"Ask {await run_in_threadpool(rights.who_can_text, dag_id)} to unpause it."))
    if isinstance(dag, dict) and isinstance(active, dict):
        limit = dag.get("max_active_runs")
        others = [r for r in active.get("dag_runs", []) if r.get("dag_run_id") != run.get("dag_run_id")]
        running = [r for r in others if r.get("state") == "running"]
        ahead = [r for r in others if r.get("state") == "queued"
                 and str(r.get("queued_at") or "") < str(run.get("queued_at") or "~")]
        if limit and len(running) >= int(limit):
            names = ", ".join(r.get("dag_run_id", "?") for r in running[:3])
            reasons.append(f"{dag_id} runs at most {limit} run(s) at a time (max_active_runs) and "
                           f"{len(running)} is running ({names}): this run starts when it ends"
                           + (f", after {len(ahead)} queued before it" if ahead else "") + ".")
        elif ahead:
            reasons.append(f"{len(ahead)} run(s) of {dag_id} were queued before this one.")
    if isinstance(health, dict):
        sched = health.get("scheduler") or {}
        if sched.get("status") not in (None, "healthy"):
            beat = sched.get("latest_scheduler_heartbeat") or "never"
            reasons.append(f"Airflow's scheduler is not running (last heartbeat: {beat}): "
                           "no run starts until it is back.")
    if not reasons:
        reasons.append("waiting for Airflow's scheduler to start it (it picks up queued runs every few seconds).")
    return {"reasons": reasons, "paused": paused, "can_unpause": bool(can)}
