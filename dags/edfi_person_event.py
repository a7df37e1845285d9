"""Ed-Fi Resync on a Campus event (Airflow DAG, triggered): the automatic resyncs.

- event `edfi_id_changed`, person_id: an Ed-Fi ID added or changed on a person resyncs that
  person's resources;
- event `combine_person`, deleted_person_id, person_id: the deleted person's records are removed
  from Ed-Fi and the kept person is resynced.

Trigger it with a conf (REST: POST /api/v2/dags/edfi_person_event/dagRuns) or by an event on the
Asset campus-sync://edfi/person-events whose extra carries the same fields (docs/edfi.md).

Thin on purpose: the DAG shape lives in plugins/campus_sync/orchestration/edfi_dags.py.
"""

from campus_sync.orchestration.edfi_dags import build_person_event_dag

dag = build_person_event_dag("edfi_person_event", doc_md=__doc__)
