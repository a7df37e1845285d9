"""Airflow plugin: the Resync State Data page in the Airflow UI (`GET /api/v2/plugins` lists it).

- `fastapi_apps`: the page and its JSON API at `/campus-sync/` (plugins/campus_sync/web/).
- `external_views`: the nav entry **Resync State Data**; with `url_route` the UI shows the page
  inside its own frame at `/plugin/resync-state-data`, so the user stays in Airflow's navigation.
  An external view needs no JavaScript build (a `react_apps` entry would need a bundled UMD
  component, i.e. npm in CI); the page is server-rendered HTML with a small vanilla script.

Kept tiny: Airflow imports every plugin file in each component at start, and the web app
(FastAPI, psycopg) is created here only once per process.
"""

from airflow.plugins_manager import AirflowPlugin

from campus_sync.web.app import PREFIX, app


class CampusSyncPlugin(AirflowPlugin):
    name = "campus_state_sync"
    fastapi_apps = [{"app": app(), "url_prefix": PREFIX, "name": "Resync State Data"}]
    external_views = [{
        "name": "Resync State Data",
        "href": f"{PREFIX}/",
        "destination": "nav",
        "nav_top_level": True,
        "url_route": "resync-state-data",
    }]
