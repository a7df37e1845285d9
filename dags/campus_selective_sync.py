"""Selective sync (Airflow DAG, manual only): resync chosen people or enrollments of one district.

Campus's Selective Sync tool. Pick the object (PersonIdentity by district personID, Enrollment
by enrollmentID), enter the IDs (one per line, or separated by commas or spaces) and the
district. The records and the child objects that hang off them are resynced, parents first,
each object in one transaction, with the same engine as the full resync. IDs that match
nothing change nothing and are reported as failed. History: `campus-sync history`; per-ID
report: `campus-sync report BATCH_ID --format pdf -o report.pdf`.

Thin on purpose: the DAG shape lives in plugins/campus_sync/orchestration/selective_dags.py.
"""

from campus_sync.orchestration.selective_dags import build_selective_dag

dag = build_selective_dag("campus_selective_sync", doc_md=__doc__)
