"""Attendance resync (Airflow DAG, manual only): Campus's one-click "Resync Attendance Data".

For deployments whose state syncs attendance (BIE, Nevada): each chosen district first runs its
**Attendance Aggregation Refresh** (so backdated attendance changes are in the aggregates), then
AttDayAggregation and AttendanceExcuse are resynced with every parent object they depend on.
Trigger it with the defaults for every district, or pick some:

- **districts** (Select Districts): empty means every configured district.
- **check_dependencies** (on): every ancestor (District → School → Calendar → ... → Enrollment)
  is resynced first, as Campus's attendance resync does.
- **objects**: AttDayAggregation and AttendanceExcuse (both by default).
- **attendance_refresh** (on): off syncs the aggregates as the districts have them.
- **requested_by** (`state`): a state-initiated resync; each district gets a "State Resync
  Requested" process alert (`campus-sync alerts`), as with the partial resync.

`make dag DAG=campus_attendance_resync` or `make dag DAG=campus_attendance_resync CONF='{"districts": ["NV02"]}'`.
Not defined for deployments whose state syncs neither object (e.g. KY). Thin on purpose: see
plugins/campus_sync/orchestration/dagbuild.py and tools/attendance.py.
"""

from airflow.sdk import Param

from campus_sync import config, hierarchy
from campus_sync.tools import attendance
from campus_sync.orchestration.dagbuild import build_resync_dag, confirm_deletes_param, district_param

_cfg = config.load()
_graph = hierarchy.load()
_objects = attendance.preset_objects(_cfg.state, _graph)

if _objects:
    dag = build_resync_dag(
        "campus_attendance_resync",
        kind="partial",
        kind_from_params=True,
        objects=_graph.plan(_objects, True, "current", _cfg.state).objects,
        schedule=None,
        params={
            "districts": district_param(_cfg.districts),
            "check_dependencies": Param(
                True, type="boolean", title="Check Dependencies",
                description="Also resync every ancestor (parent object) of the attendance objects.",
            ),
            "objects": Param(
                list(_objects), type="array", items={"type": "string", "enum": list(_objects)},
                examples=list(_objects), minItems=1, title="Objects",
                description="The attendance objects to resync.",
            ),
            "school_year": Param(
                "current", type="string", enum=["current", "previous"], title="School year",
            ),
            "requested_by": Param(
                "state", type="string", enum=["district", "state"], title="Requested by",
                description="state: a state-initiated resync; each district gets a process alert.",
            ),
            "confirm_deletes": confirm_deletes_param(),
        },
        description="Attendance resync: each district's aggregation refresh, then AttDayAggregation "
                    "and AttendanceExcuse with their parents",
        doc_md=__doc__,
        tags=["campus-state-sync", "resync", "attendance"],
    )
