"""Weekly full resync (Airflow DAG): every object enabled for the state, parents first, for every district.

Thin on purpose: the hierarchy, the engine and the DAG shape live in plugins/campus_sync.
"""

from campus_sync import config, hierarchy
from campus_sync.orchestration.dagbuild import build_resync_dag, confirm_deletes_param, district_param

_cfg = config.load()
_graph = hierarchy.load()

dag = build_resync_dag(
    "campus_full_resync",
    kind="full",
    objects=_graph.enabled(_cfg.state),
    schedule=_cfg.full_resync_schedule,
    params={"districts": district_param(_cfg.districts), "confirm_deletes": confirm_deletes_param()},
    description="Weekly full resync of every district into the state database",
    doc_md=__doc__,
    tags=["campus-state-sync", "resync", "full"],
    shape=_cfg.full_resync_shape,  # per_object: one task per object, every district inside it
)
