"""Airflow DAGs of the Ed-Fi Resync (the DAG files only call these).

edfi_resync (manual): Campus's Ed-Fi Resync tool.

    start_request ──► send_<resource> (one per resource, wired by the Ed-Fi references)
          │                 │  schools ─► sessions ─► courseOfferings ─► sections ─► ...
          │                 ▼
          └────────► delete_documents ──► finish_request
                     (one task: each planned resource's deletes, reverse dependency order)

- `start_request` validates the form (`campus_sync.edfi.request.parse_request`), opens the
  request in the history (kind `edfi_resync`), locks its (configuration, school, resource)
  combinations, logs the plan and the check of the plan against the API's
  `/metadata/data/v3/dependencies` (also kept in the history), and has the scheduler skip every
  send task outside the plan (a skip-capable task, as in the Campus resync DAGs: no worker starts
  for them).
- `send_<resource>` posts the resource's new and changed documents. Each depends on the send
  tasks of the resources its documents refer to (the resource model's references, as the
  Campus DAGs wire the hierarchy), so the scheduler runs them in Ed-Fi dependency order; an
  unplanned parent is skipped at once and its children run (`none_failed`); a failed one
  leaves its dependants `upstream_failed` (recorded as not run).
- Deletes are ONE ordered task, `delete_documents`, not one task per resource: a delete may only
  run once every send has finished (a key change moves the referring documents first, where an
  earlier DELETE would be refused with 409), and then strictly in reverse dependency order, so
  per-resource delete tasks would be a chain of N tasks behind a join, each a worker process, for
  no parallelism. The task deletes, in reverse plan order, for each resource whose send
  succeeded; each resource's deletes still get their own counters in the history. With
  run_cleanup (Tennessee) each resource's deletes are followed by its clean-up
  (`campus_sync.edfi.cleanup`), in the same order.
- `finish_request` (`all_done`) depends on every task and is the run's only leaf: it closes the
  request, releases the locks, and fails the run when any resource failed.

edfi_person_event (triggered): the automatic resyncs. An Ed-Fi ID added or changed on a person
resyncs that person's resources; Combine Person removes the deleted person's records from Ed-Fi
and resyncs the kept person. Triggered by a REST call with a conf, or by an event on the Airflow
Asset `PERSON_EVENT_ASSET` whose `extra` carries the same fields (docs/edfi.md).

Parse cost: nothing heavy at import (no psycopg, no httpx); the task bodies import
`campus_sync.edfi.resync` when they run.
"""

from __future__ import annotations

import datetime as dt
import logging

from airflow.sdk import DAG, Asset, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from campus_sync.edfi import request as edfi_request
from campus_sync.orchestration.dagbuild import (BOOKKEEPING_ARGS, DEFAULT_ARGS, skip_downstream, skipping_task,
                                                triggering_user)
from campus_sync.orchestration.refusals import checked_request, finish_unstarted

START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
DELETE_TASK = "delete_documents"
DELETES_KEY = "delete_outcomes"  # delete_documents' per-resource outcomes (read by finish_request)
PERSON_EVENT_ASSET = "campus-sync://edfi/person-events"
PERSON_EVENTS = ("edfi_id_changed", "combine_person")
log = logging.getLogger(__name__)


def send_task_id(resource: str) -> str:
    return f"send_{resource}"


# ------------------------------------------------------------------ the form
def edfi_params(confs: dict | None = None) -> dict[str, Param]:
    """The trigger form. The JSON schema refuses an unknown configuration, school or resource and
    a non-boolean switch at trigger time; what depends on two fields (no school and no All Schools,
    a resource the chosen configuration has not turned on, run_cleanup outside Tennessee, a bad ID)
    is refused by the first task with a message naming the value."""
    confs = confs if confs is not None else edfi_request.configurations()
    names = sorted(confs)
    schools: dict[str, str] = {}
    resources: list[str] = []
    for name in names:
        choices = edfi_request.form_choices(name)
        prefix = f"{choices['district']} " if len(names) > 1 else ""
        for sid, sname in choices["schools"]:
            schools.setdefault(str(sid), f"{prefix}{sname}")
        resources.extend(r for r in choices["resources"] if r not in resources)
    resources = list(edfi_request.plan_order(resources))
    school_ids = sorted(schools, key=int)
    school_items: dict = {"type": ["string", "integer"]}
    if school_ids:  # before the first seeding there are no names to offer: ids are checked at start
        school_items["enum"] = school_ids + [int(s) for s in school_ids]
    ids_text = {"type": ["string", "null"], "format": "multiline", "maxLength": 20 * edfi_request.MAX_IDS}
    return {
        "configuration": Param(
            names[0] if len(names) == 1 else None, type="string", enum=names, title="Ed-Fi Configuration",
            description="The Ed-Fi configuration whose records are resynced: its district, school year and API. "
                        "Only records of this year and school are sent.",
        ),
        "schools": Param(
            [], type=["array", "null"], items=school_items, uniqueItems=True, title="School(s)",
            examples=school_ids, values_display=schools,
            description="The schools whose Ed-Fi records are resynced (or All Schools).",
        ),
        "all_schools": Param(
            False, type="boolean", title="All Schools",
            description=edfi_request.ALL_SCHOOLS_WARNING,
        ),
        "person_ids": Param(
            "", **ids_text, title="Campus Person ID(s)",
            description="Resync only these people: Campus person IDs separated by line breaks, commas or spaces. "
                        "Non-person resources and attendance resync for the given people.",
        ),
        "course_ids": Param("", **ids_text, title="Campus Course ID(s)",
                            description="Resync only these courses (course-related resources)."),
        "section_ids": Param("", **ids_text, title="Campus Section ID(s)",
                             description="Resync only these sections (course-related resources)."),
        "resources": Param(
            [], type=["array", "null"], items={"type": "string", "enum": resources}, uniqueItems=True,
            examples=resources, title="Resources",
            description="The resources to resync (empty: every resource the configuration has turned on), "
                        "listed in Ed-Fi dependency order.",
        ),
        "select_dependencies": Param(
            True, type="boolean", title="Select Dependencies",
            description="Add the resources the chosen ones depend on (e.g. sections adds courseOfferings, "
                        "sessions, courses and schools).",
        ),
        "run_cleanup": Param(
            False, type="boolean", title="Run Clean-up Logic (Tennessee Only)",
            description="Tennessee only: also find the records at the Ed-Fi API, in this request's scope, that "
                        "Campus no longer has, whoever sent them (reads the API: may dramatically increase the "
                        "processing time). A dry run: they are reported, not deleted, unless Confirm clean-up. "
                        "Refused for a configuration of another state.",
        ),
        "confirm_cleanup": Param(
            False, type="boolean", title="Confirm clean-up",
            description="With Run Clean-up Logic: delete the records it finds (children first), under the "
                        "mass-delete guard.",
        ),
        "confirm_deletes": Param(
            False, type="boolean", title="Confirm deletes",
            description="Allow this run to delete more than the configured share of a resource's sent "
                        "documents (refused otherwise).",
        ),
    }


def _request_params(params: dict) -> dict:
    """The request's fields of the run's params (Airflow adds nothing else, `user` is the run's)."""
    return {k: params[k] for k in edfi_request.PARAMS if k in params}


def _dependency_check(batch_id: int):
    from campus_sync.edfi import resync

    with resync.state_connection() as conn:
        row = conn.execute("SELECT details->'dependency_check' FROM sync.batch WHERE id = %s", (batch_id,)).fetchone()
    return row[0] if row else None


# ------------------------------------------------------------------ edfi_resync
def build_edfi_dag(dag_id: str = "edfi_resync", *, doc_md: str | None = None) -> DAG | None:
    """The Ed-Fi Resync DAG: a send task per resource of any configuration, in dependency order.
    None when the deployment declares no Ed-Fi configuration."""
    from campus_sync.edfi import model

    confs = edfi_request.configurations()
    if not confs:
        return None
    m = model.load()
    names = list(edfi_request.plan_order({r for c in confs.values() for r in c.resources}))

    with DAG(
        dag_id=dag_id,
        description="Ed-Fi Resync: send a district's Campus data to an Ed-Fi API, in dependency order, "
                    "only what changed",
        doc_md=doc_md,
        schedule=None,
        start_date=START,
        catchup=False,
        params=edfi_params(confs),
        tags=["campus-state-sync", "edfi", "resync"],
        default_args=DEFAULT_ARGS,
        render_template_as_native_obj=True,
    ) as dag:

        @skipping_task(task_id="start_request", **BOOKKEEPING_ARGS)
        def start_request() -> dict:
            """Validate the form, open the request and lock its combinations; skip the unplanned
            sends. Refused input writes nothing. Idempotent per run (a retry reuses the request)."""
            from campus_sync.edfi import resync

            context = get_current_context()
            params = dict(context["params"])

            def begin() -> tuple:
                req = resync.parse_request(_request_params(params))
                return req, resync.plan(req), resync.start(req, user=triggering_user(context, params),
                                                          dag_id=context["dag"].dag_id, run_id=context["run_id"])

            req, planned, batch_id = checked_request(context, begin, resync.EdfiRequestError)
            log.info("Ed-Fi resync request %s: %s", batch_id, " → ".join(planned))
            check = _dependency_check(batch_id)
            if isinstance(check, list) and check:
                log.warning("the plan disagrees with the API's dependency order: %s", "; ".join(check))
            elif isinstance(check, str):
                log.warning("dependency order %s", check)
            else:
                log.info("the plan agrees with the API's dependency order")
            skip_downstream(context, (send_task_id(n) for n in names if n not in planned))
            return {"batch_id": batch_id, "request": req.to_dict()}

        @task(trigger_rule="none_failed", multiple_outputs=False)
        def send(resource: str, unit: dict) -> dict:
            from campus_sync.edfi import resync

            req = resync.EdfiRequest.from_dict(unit["request"])
            if resource not in req.resources:  # normally skipped by the scheduler already
                raise AirflowSkipException(f"{resource} is not part of this request")
            try:
                return resync.send_resource(unit["batch_id"], req, resource)
            except resync.EdfiRequestError as exc:  # not transient: do not retry
                raise AirflowFailException(str(exc)) from None

        @task(task_id=DELETE_TASK, trigger_rule="all_done", multiple_outputs=False)
        def delete_documents(unit: dict | None) -> dict:
            """Each planned resource whose send succeeded: its deletes (and, with run_cleanup, the
            clean-up of what the API has and Campus does not), reverse dependency order."""
            from campus_sync.edfi import cleanup, resync

            if not unit:
                raise AirflowSkipException("the request was not started")
            ti = get_current_context()["ti"]
            req = resync.EdfiRequest.from_dict(unit["request"])
            states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id],
                                        task_ids=[send_task_id(r) for r in req.resources]).get(ti.run_id, {})
            outcomes: dict[str, list] = {}
            for resource in reversed(resync.plan(req)):
                if states.get(send_task_id(resource)) != "success":
                    continue
                try:
                    outcomes[resource] = ["success", cleanup.delete_step(unit["batch_id"], req, resource)]
                except Exception as exc:  # noqa: BLE001 - recorded per resource; the others still delete
                    log.exception("deletes of %s failed", resource)
                    outcomes[resource] = ["failed", f"deletes failed: {type(exc).__name__}: {exc}"]
            ti.xcom_push(key=DELETES_KEY, value=outcomes)
            failed = sorted(r for r, (s, _) in outcomes.items() if s != "success")
            if failed:
                raise AirflowFailException(f"deletes failed: {', '.join(failed)}")
            return outcomes

        @task(task_id="finish_request", trigger_rule="all_done", multiple_outputs=False, **BOOKKEEPING_ARGS)
        def finish_request(unit: dict | None) -> dict:
            """Close the request from every task's state; fail the run if any resource failed."""
            from campus_sync.edfi import resync

            context = get_current_context()
            ti = context["ti"]
            if not unit:
                raise finish_unstarted(context)
            req = resync.EdfiRequest.from_dict(unit["request"])
            states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
            deletes = ti.xcom_pull(task_ids=DELETE_TASK, key=DELETES_KEY) or {}
            outcomes = {}
            for resource in req.resources:
                state = states.get(send_task_id(resource)) or "not_run"
                result = None
                if state == "success":
                    result = ti.xcom_pull(task_ids=send_task_id(resource))
                    if resource in deletes:
                        state, result = deletes[resource]
                    elif states.get(DELETE_TASK) != "success":
                        state, result = "failed", f"deletes not run ({DELETE_TASK}: {states.get(DELETE_TASK)})"
                elif state == "failed":
                    result = f"the send failed (see the log of {send_task_id(resource)})"
                outcomes[resource] = (state, result)
            summary = resync.finish(unit["batch_id"], outcomes)
            for r in summary["results"]:
                log.info("%-50s %-9s processed %s, inserted %s, updated %s, deleted %s, unchanged %s, errors %s",
                         r["object"], r.get("status"), r.get("processed"), r.get("inserted"), r.get("updated"),
                         r.get("deleted"), r.get("unchanged"), r.get("errors"))
            if summary["status"] != "complete":
                bad = [r["object"] for r in summary["results"] if r.get("status") != "complete"]
                raise AirflowFailException(f"resources failed: {', '.join(bad) or summary['status']}")
            return {"batch_id": summary["batch_id"], "status": summary["status"]}

        unit = start_request()
        start = unit.operator
        deletes = delete_documents(unit)
        finish = finish_request(unit)
        made = {}
        for name in names:
            made[name] = send.override(task_id=send_task_id(name))(name, unit)
            start >> made[name] >> deletes
            made[name] >> finish  # finish waits for every task, not the leaves only
            for dep in sorted(m.references_of(m.resource(name))):
                if dep in made:
                    made[dep] >> made[name]
        deletes >> finish
    return dag


# ------------------------------------------------------------------ edfi_person_event
def person_event_params(confs: dict | None = None) -> dict[str, Param]:
    confs = confs if confs is not None else edfi_request.configurations()
    names = sorted(confs)
    return {
        "configuration": Param(names[0] if len(names) == 1 else None, type=["string", "null"], enum=names + [None],
                               title="Ed-Fi Configuration",
                               description="The configuration to resync (an Asset event gives it in its extra)."),
        "event": Param(None, type=["string", "null"], enum=list(PERSON_EVENTS) + [None], title="Event",
                       description="edfi_id_changed: resync the person's resources; combine_person: remove the "
                                   "deleted person's records from Ed-Fi and resync the kept person."),
        "person_id": Param(None, type=["integer", "string", "null"], title="Person ID",
                           description="edfi_id_changed: the person; combine_person: the kept person."),
        "deleted_person_id": Param(None, type=["integer", "string", "null"], title="Deleted person ID",
                                   description="combine_person: the person combined away (deleted)."),
    }


def person_event_from(raw: dict, default_configuration: str | None) -> dict:
    """One event (a run's params or an Asset event's extra), checked: EdfiRequestError names the bad field."""
    from campus_sync.edfi.request import EdfiRequestError, parse_ids

    event = raw.get("event")
    if event not in PERSON_EVENTS:
        raise EdfiRequestError(f"event: {event!r} is not one of {', '.join(PERSON_EVENTS)}")
    conf = raw.get("configuration") or default_configuration
    if not conf:
        raise EdfiRequestError("configuration: choose an Ed-Fi configuration")
    edfi_request.configuration(str(conf))
    out = {"event": event, "configuration": str(conf)}
    for field in ("person_id",) + (("deleted_person_id",) if event == "combine_person" else ()):
        value = raw.get(field)
        if isinstance(value, int) and not isinstance(value, bool):  # a JSON number from REST or an event
            value = str(value)
        ids = parse_ids(value, field)
        if len(ids) != 1:
            raise EdfiRequestError(f"{field}: give exactly one person ID, got {raw.get(field)!r}")
        out[field] = ids[0]
    if event == "combine_person" and out["person_id"] == out["deleted_person_id"]:
        raise EdfiRequestError("deleted_person_id: the deleted and the kept person are the same person")
    return out


def build_person_event_dag(dag_id: str = "edfi_person_event", *, doc_md: str | None = None) -> DAG | None:
    """The automatic resyncs, one run per event (REST conf) or per batch of Asset events."""
    confs = edfi_request.configurations()
    if not confs:
        return None
    with DAG(
        dag_id=dag_id,
        description="Ed-Fi Resync on a Campus event: an Ed-Fi ID added or changed, or Combine Person",
        doc_md=doc_md,
        schedule=[Asset(PERSON_EVENT_ASSET, group="campus-sync")],
        start_date=START,
        catchup=False,
        params=person_event_params(confs),
        tags=["campus-state-sync", "edfi", "resync"],
        default_args={**DEFAULT_ARGS, "retries": 0},  # a run of the resync is idempotent; failures are reported
        render_template_as_native_obj=True,
    ) as dag:

        @task(task_id="resync_people")
        def resync_people() -> list[dict]:
            """Every event of the run: its conf, or each triggering Asset event's extra, in order."""
            from campus_sync.edfi import resync
            from campus_sync.tools import requests

            context = get_current_context()
            params = dict(context["params"])
            default_conf = sorted(confs)[0] if len(confs) == 1 else None
            raw: list[dict] = []
            try:
                requests.check_conf_keys(context["dag_run"].conf, context["dag"].params.keys())
            except requests.RequestError as exc:
                raise AirflowFailException(f"request refused: {exc}") from None
            if params.get("event"):
                raw.append(params)
            for events in (context.get("triggering_asset_events") or {}).values():
                raw.extend(dict(e.extra or {}) for e in events)
            if not raw:
                raise AirflowFailException("request refused: no event (give event and person_id in the conf, "
                                           f"or in an event's extra on {PERSON_EVENT_ASSET})")
            try:
                events = [person_event_from(r, default_conf) for r in raw]
            except resync.EdfiRequestError as exc:
                raise AirflowFailException(f"request refused: {exc}") from None
            user = triggering_user(context, params)
            out, failed = [], []
            for e in events:
                if e["event"] == "edfi_id_changed":
                    summary = resync.edfi_id_changed(e["configuration"], e["person_id"], user=user)
                else:
                    summary = resync.combine_person(e["configuration"], e["deleted_person_id"], e["person_id"],
                                                    user=user)
                log.info("%s: request %s %s", e, summary["batch_id"], summary["status"])
                out.append({**e, "batch_id": summary["batch_id"], "status": summary["status"]})
                if summary["status"] != "complete":
                    failed.append(summary["batch_id"])
            if failed:
                raise AirflowFailException(f"Ed-Fi resync requests failed: {', '.join(map(str, failed))}")
            return out

        resync_people()
    return dag
