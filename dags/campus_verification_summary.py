"""Verification Summary (Airflow DAG, manual only): how well the state matches each district.

Campus's Verification Summary: per district and object Distinct, At District, At State,
Total Errors (missing + extra + different, by key and row content) and Accuracy %, plus each
district's overall accuracy; rows the state refuses by rule are not expected there. With the
`heal` param, mismatched PersonIdentity/Enrollment records are resynced by selective sync and
the summary is computed again. Show the latest: `campus-sync verify --latest`.

Thin on purpose: the DAG shape lives in plugins/campus_sync/orchestration/selective_dags.py.
"""

from campus_sync.orchestration.selective_dags import build_verification_dag

dag = build_verification_dag("campus_verification_summary", doc_md=__doc__)
