# The official Airflow image with this package installed (docker-compose.yaml builds it).
# Airflow stays at the version the project pins (requirements.txt: apache-airflow==3.3.2).
FROM apache/airflow:3.3.2-python3.11

# Runtime dependencies at the project's pins: requirements.txt without what only the tests or the
# embedded PostgreSQL need (pytest, hypothesis, playwright, pypdf, pgserver). `-c constraints.txt`
# holds every transitive package (numpy's and pandas' own dependencies, Airflow's) at the versions
# the project is tested with, whatever the image shipped.
COPY --chown=airflow:root constraints.txt /opt/campus-sync/constraints.txt
RUN pip install --no-cache-dir -c /opt/campus-sync/constraints.txt \
        "apache-airflow==3.3.2" \
        "apache-airflow-providers-postgres==7.1.1" \
        "apache-airflow-providers-celery==3.26.0" \
        "psycopg[binary]==3.3.9" \
        "SQLAlchemy==2.1.9" \
        "pandas==3.1.1" \
        "numpy==2.4.6" \
        "PyYAML==6.0.3" \
        "reportlab==5.1.0" \
        "httpx==0.28.1" \
        "msgspec==0.22.0" \
        "uvicorn==0.54.0" \
        "httptools==0.9.0" \
        "uvloop==0.23.0"

# The project itself, baked in: DAGs, the package and the page (plugins/), the hierarchy, SQL and
# deployment configurations (include/). docker-compose.yaml bind-mounts the same folders over
# these for development; without the mounts the image runs on its own.
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
COPY --chown=airflow:root include /opt/airflow/include
COPY --chown=airflow:root pyproject.toml /opt/airflow/pyproject.toml
# campus_sync imported from /opt/airflow/plugins (so a mounted plugins/ is the code that runs),
# and the `campus-sync` command on PATH.
RUN pip install --no-cache-dir --no-deps -c /opt/campus-sync/constraints.txt -e /opt/airflow
ENV CAMPUS_SYNC_INCLUDE=/opt/airflow/include
