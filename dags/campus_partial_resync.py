"""Partial resync (Airflow DAG, manual only): the objects you pick, for the districts you pick.

Trigger it from the Airflow UI ("Trigger DAG" form) or `make dag DAG=campus_partial_resync
CONF='{"objects": ["TestScore"], "check_dependencies": true}'`.

- **objects**: the objects to resync (at least one).
- **check_dependencies** (on by default): every ancestor of each chosen object is resynced first
  (Campus's Parent Objects column). Off: only the chosen objects run; child rows whose parent is
  not at the state are counted as errors (`parent_missing:<Parent>`), not crashes.
- **districts**: empty means every configured district.
- **school_year**: previous/next offer only objects tied to a school year and configured for it;
  any other object is refused by the first task, before anything is written.
- **requested_by**: `state` records a `state_request` batch and raises a "State Resync Requested"
  process alert (Vertical Interoperability) for each district (`campus-sync alerts`).

Objects outside the request's plan skip. Thin on purpose: see plugins/campus_sync/orchestration/dagbuild.py.
"""

from airflow.sdk import Param

from campus_sync import config, hierarchy
from campus_sync.orchestration.dagbuild import build_resync_dag, confirm_deletes_param, district_param

_cfg = config.load()
_graph = hierarchy.load()
_objects = _graph.enabled(_cfg.state)
_choices = sorted(_objects)

dag = build_resync_dag(
    "campus_partial_resync",
    kind="partial",
    kind_from_params=True,
    objects=_objects,
    schedule=None,
    params={
        "objects": Param(
            type="array",
            items={"type": "string", "enum": _choices},
            examples=_choices,
            minItems=1,
            title="Objects",
            description="Objects to resync (at least one).",
        ),
        "check_dependencies": Param(
            True, type="boolean", title="Check Dependencies",
            description="Also resync every ancestor (parent object) of the chosen objects.",
        ),
        "districts": district_param(_cfg.districts),
        "school_year": Param(
            "current", type="string", enum=["current", "previous", "next"], title="School year",
            description="previous/next offer only objects tied to and configured for that year.",
        ),
        "requested_by": Param(
            "district", type="string", enum=["district", "state"], title="Requested by",
            description="state: a state-initiated resync; each district gets a process alert.",
        ),
        "confirm_deletes": confirm_deletes_param(),
    },
    description="Partial resync of chosen objects (and their parents) for chosen districts",
    doc_md=__doc__,
    tags=["campus-state-sync", "resync", "partial"],
)
