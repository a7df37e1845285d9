"""campus-state-sync: keep a state education database in step with district databases.

Everything under this package is plain Python (no Airflow import) except `airflow_plugin`
and the DAG-building helpers in `dagbuild`, so the hierarchy, selection and sync engine can be
used and tested on their own.
"""

__version__ = "0.1.0"
