"""The Airflow side: the hierarchy rendered into DAGs, the task bodies, dag.test runs and a local Airflow."""
