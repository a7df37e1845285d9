"""The Resync State Data page as an Airflow plugin web app.

- `data`: every query the page runs, plain functions over psycopg (tested on PostgreSQL).
- `rights`: Read / Write / Delete mapped onto Airflow's auth manager (fail closed).
- `airflow_api`: triggers DAG runs through Airflow's REST API as the signed-in user.
- `app`: the FastAPI app mounted at `/campus-sync/` by `plugins/campus_sync_plugin.py`.
"""
