"""Airflow DAGs for selective sync and the Verification Summary (the DAG files only call these).

campus_selective_sync (manual):
    start_request ──► sync_objects ──► finish_request
    validate the form,   the object and its     per-ID outcomes, Records ok/total,
    record the batch     children, parents      batch status; fails the run if an
                         first, one transaction  object failed
                         per object

campus_verification_summary (manual):
    verify ──► heal (skipped unless the `heal` param is on: selective syncs of the mismatched
               personIDs / enrollmentIDs, then verify again)

The work is plain Python in `campus_sync.tools.selective` and `campus_sync.tools.verify`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from campus_sync import config, hierarchy
from campus_sync.tools import requests
from campus_sync.tools import selective_input
from campus_sync.orchestration.dagbuild import BOOKKEEPING_ARGS, DEFAULT_ARGS, district_param, triggering_user
from campus_sync.orchestration.refusals import checked_request, finish_unstarted

START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def selective_params(cfg: config.Config | None = None) -> dict[str, Param]:
    """The trigger form. The JSON schema refuses an unknown object or district and empty IDs; the
    first task parses the IDs and names each bad token (a JSON-schema pattern on the text could
    only quote the whole text and the regex back to the user)."""
    cfg = cfg or config.load()
    graph = hierarchy.load()
    objects = [o for o in selective_input.selective_objects(graph) if graph.spec(o).applies_to(cfg.state)]
    keys = {o: graph.spec(o).selective_key for o in objects}
    district_kwargs = {"default": cfg.district_ids[0]} if len(cfg.district_ids) == 1 else {}
    return {
        "object": Param(
            objects[0], type="string", enum=objects, title="Object",
            description="Resync these records and their child objects: "
                        + "; ".join(f"{o} by {k}" for o, k in keys.items()) + ".",
        ),
        "ids": Param(
            type=["string", "array"],
            format="multiline",
            title="IDs",
            description="District personIDs (PersonIdentity) or enrollmentIDs (Enrollment): one per line, "
                        "or separated by commas or spaces. A run's conf may also give a list.",
            examples=["3667, 3669"],
            minLength=1,
            maxLength=20 * selective_input.MAX_IDS,
            minItems=1,
            maxItems=selective_input.MAX_IDS,
            items={"type": ["integer", "string"], "minimum": 1},
        ),
        "district": Param(
            type="string", enum=list(cfg.district_ids), title="District",
            values_display={d.id: d.label for d in cfg.districts},
            description="The district whose records are resynced.", **district_kwargs,
        ),
    }


def _jsonable(summary: dict) -> dict:
    """XCom-safe copy (JSON object keys must be strings)."""
    out = dict(summary)
    if isinstance(out.get("failed"), dict):
        out["failed"] = {str(k): v for k, v in out["failed"].items()}
    return out


def build_selective_dag(dag_id: str = "campus_selective_sync", *, doc_md: str | None = None) -> DAG:
    cfg = config.load()
    with DAG(
        dag_id=dag_id,
        description="Selective sync: resync chosen people or enrollments (and their child objects) of one district",
        doc_md=doc_md,
        schedule=None,
        start_date=START,
        catchup=False,
        params=selective_params(cfg),
        tags=["campus-state-sync", "resync", "selective"],
        default_args=DEFAULT_ARGS,
        render_template_as_native_obj=True,
    ) as dag:

        @task(task_id="start_request", **BOOKKEEPING_ARGS)
        def start_request() -> dict:
            """Validate object, district and IDs; record the batch. Bad input writes nothing.
            Idempotent (one batch per run_id), so transient failures retry."""
            from campus_sync.tools import selective

            context = get_current_context()
            params = dict(context["params"])
            user = triggering_user(context, params)
            req = checked_request(context, lambda: selective.build_request(hierarchy.load(), config.load(), params,
                                                                           user=user))
            return selective.start(req, dag_id=context["dag"].dag_id, run_id=context["run_id"])

        @task(task_id="sync_objects")
        def sync_objects(unit: dict) -> dict:
            """The object, then its children carrying the key, parents first, one transaction each."""
            from campus_sync.tools import selective

            outcome = selective.sync(unit)
            if outcome["failed"]:
                raise AirflowFailException(f"objects failed: {', '.join(outcome['failed'])}"
                                           + (f"; not run: {', '.join(outcome['not_run'])}" if outcome["not_run"] else ""))
            return outcome

        @task(task_id="finish_request", trigger_rule="all_done", **BOOKKEEPING_ARGS)
        def finish_request(unit: dict | None) -> dict:
            """Per-ID outcomes, Records ok/total and the batch status; fail the run if an object failed."""
            from campus_sync.tools import selective

            if not unit:
                raise finish_unstarted(get_current_context())
            summary = selective.finish(unit)
            if summary["failed_objects"]:
                raise AirflowFailException(f"objects failed: {', '.join(summary['failed_objects'])}")
            return _jsonable(summary)

        unit = start_request()
        unit >> sync_objects(unit) >> finish_request(unit)
    return dag


def build_verification_dag(dag_id: str = "campus_verification_summary", *, doc_md: str | None = None) -> DAG:
    cfg = config.load()
    with DAG(
        dag_id=dag_id,
        description="Verification Summary: district vs state per object (Distinct, At District, At State, "
                    "Total Errors, Accuracy %); optionally heal by selective sync",
        doc_md=doc_md,
        schedule=None,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        params={
            "districts": district_param(cfg.districts),
            "heal": Param(False, type="boolean", title="Heal",
                          description="Resync the mismatched PersonIdentity/Enrollment records (and their "
                                      "child objects) by selective sync, then verify again."),
        },
        tags=["campus-state-sync", "verification"],
        default_args=DEFAULT_ARGS,
        render_template_as_native_obj=True,
    ) as dag:

        def _user(context, params) -> str:
            return triggering_user(context, params)

        @task(task_id="verify", retries=0)
        def run_verify() -> dict:
            from campus_sync.tools import verify

            context = get_current_context()
            params = dict(context["params"])
            try:
                requests.check_conf_keys(context["dag_run"].conf, context["dag"].params.keys())
                districts = list(requests.parse_districts(config.load(), params.get("districts")))
            except requests.RequestError as exc:
                raise AirflowFailException(f"request refused: {exc}") from None
            return verify.verify(districts, user=_user(context, params), heal=bool(params.get("heal")),
                                 dag_id=context["dag"].dag_id, run_id=context["run_id"])

        @task(task_id="heal")
        def run_heal(summary: dict) -> dict:
            from campus_sync.tools import verify

            context = get_current_context()
            params = dict(context["params"])
            if not params.get("heal"):
                raise AirflowSkipException("heal is off")
            result = verify.heal(summary, user=_user(context, params),
                                 dag_id=context["dag"].dag_id, run_id=context["run_id"])
            failed = [b for b in result["batches"] if b["status"] != "complete"]
            if failed:
                raise AirflowFailException("heal batches failed: " + ", ".join(str(b["batch_id"]) for b in failed))
            return result

        run_heal(run_verify())
    return dag
