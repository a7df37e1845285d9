"""Ed-Fi Resync (Airflow DAG, manual only): send a district's Campus data to an Ed-Fi API.

Campus's Ed-Fi Resync tool. Pick the Ed-Fi configuration, the schools (or All Schools: every
school of the district, a large send best run off-peak), optionally person, course and section
IDs, and the resources (Select Dependencies adds what they depend on). One task per resource
sends, in Ed-Fi dependency order, only the documents that changed since the last successful
send; then the documents gone from Campus are deleted in reverse order. Results per resource:
`campus-sync history --json` (kind edfi_resync); failed documents: the page's error report.

Thin on purpose: the DAG shape lives in plugins/campus_sync/orchestration/edfi_dags.py.
"""

from campus_sync.orchestration.edfi_dags import build_edfi_dag

dag = build_edfi_dag("edfi_resync", doc_md=__doc__)
