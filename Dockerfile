# The official Airflow image with this package installed (docker-compose.yaml builds it).
# Airflow stays at the version the project pins (requirements.txt: apache-airflow==3.3.2).
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:root pyproject.toml /opt/campus-sync/
COPY --chown=airflow:root plugins /opt/campus-sync/plugins
# Runtime dependencies only, at the project's pins; the image's own Airflow is kept as is.
RUN pip install --no-cache-dir \
        "apache-airflow==3.3.2" \
        "apache-airflow-providers-postgres==7.1.1" \
        "apache-airflow-providers-celery==3.26.0" \
        "psycopg[binary]==3.3.9" \
        "PyYAML==6.0.3" \
        "reportlab==5.1.0" \
        "pypdf==7.1.0" \
 && pip install --no-cache-dir --no-deps /opt/campus-sync
