"""`campus-sync bench airflow`: what a resync costs under the real scheduler, per task.

Triggers a DAG run through Airflow's REST API (`/api/v2`, token from `/auth/token`), waits for it
to end, then for every object task instance reports:

- **queued→end**: from the task instance's `queued_when` to its `end_date` (what the user waits);
- **SQL**: the object's time in the engine, from the history (`sync.batch_result` started/finished,
  written by the task around `engine.sync_object`);
- **parse**: `dag_file_parse_ms` of the task's "Worker startup parse complete" log line (the DAG
  file re-parse every task does);
- **overhead** = queued→end − SQL,

with medians and the ratio median overhead / median SQL (target ≤ 3). Plain Python + httpx (an
Airflow dependency) + psycopg; no Airflow import, so it measures any deployment it can reach.
`--start` runs it on a fresh local Airflow (`campus_sync.orchestration.local_airflow`, what `make airflow`
starts) and stops it afterwards.

`--floor` (with `--start`) also runs `campus_bench_floor` in the same Airflow, right after: the
same DAG shape (start task, one mapped group per district, one task per object wired by the
hierarchy, a finish task) whose object tasks do nothing. Its queued→end is what Airflow itself
costs per task on this machine, the floor under any overhead a one-task-per-object DAG can
reach; the report sets it against the real run's median SQL time. `--shape per_district_level`
and `--shape per_district` (with `--floor` only) run nothing but the floor of shapes the product
does not build: one task per district per hierarchy level, and one task per district.

Before it triggers anything the bench fails every queued or running run of the DAGs it is about to
trigger in its own Airflow (a run left by an interrupted bench would otherwise be resumed by the
scheduler and share the machine with the measured one), and says so in its report.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import statistics
import time
from dataclasses import asdict, dataclass

GROUP = "district."
UNFINISHED = ("queued", "running")
PARSE_RE = re.compile(r"dag_file_parse_ms['\"]?\s*[:=]\s*(\d+)")


@dataclass
class TaskTiming:
    task_id: str
    map_index: int
    label: str
    state: str
    queued_to_end: float | None  # seconds
    run: float | None  # start_date → end_date
    sql: float | None  # engine time from the history
    parse: float | None  # DAG-file parse at worker start-up

    @property
    def overhead(self) -> float | None:
        if self.queued_to_end is None or self.sql is None:
            return None
        return self.queued_to_end - self.sql


def _ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _seconds(a: dt.datetime | None, b: dt.datetime | None) -> float | None:
    return (b - a).total_seconds() if a and b else None


class Client:
    """Just the REST calls the bench needs (bearer token from /auth/token)."""

    def __init__(self, base_url: str, username: str, password: str):
        import httpx

        token = httpx.post(f"{base_url}/auth/token", json={"username": username, "password": password},
                           timeout=60)
        token.raise_for_status()
        self.http = httpx.Client(base_url=base_url, timeout=120,
                                 headers={"Authorization": f"Bearer {token.json()['access_token']}"})

    def get(self, path: str, **params) -> dict:
        r = self.http.get(path, params=params)
        r.raise_for_status()
        return r.json()

    def wait_dag(self, dag_id: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.http.get(f"/api/v2/dags/{dag_id}").status_code != 200:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} not parsed by the dag-processor after {timeout:.0f} s")
            time.sleep(2)

    def wait_shape(self, dag_id: str, shape: str, timeout: float = 300) -> None:
        """Until the dag-processor has stored `dag_id` in `shape` (a home reused with another shape
        holds the previous one until the DAG file is parsed again)."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.http.get(f"/api/v2/dags/{dag_id}/tasks")
            if r.status_code == 200:
                mapped = any(t["task_id"].startswith(GROUP) for t in r.json()["tasks"])
                if mapped == (shape == "per_district_object"):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} not parsed in shape {shape} after {timeout:.0f} s")
            time.sleep(2)

    def wait_floor_shape(self, shape: str, timeout: float = 300) -> None:
        """Until the dag-processor has stored the floor DAG written for `shape` (its tags name it)."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.http.get(f"/api/v2/dags/{FLOOR_DAG_ID}")
            if r.status_code == 200 and shape_tag(shape) in {t["name"] for t in r.json().get("tags") or []}:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{FLOOR_DAG_ID} not parsed in shape {shape} after {timeout:.0f} s")
            time.sleep(2)

    def unfinished_runs(self, dag_id: str) -> list[dict]:
        """The DAG's queued and running runs (none when Airflow does not know the DAG)."""
        r = self.http.get(f"/api/v2/dags/{dag_id}/dagRuns", params={"state": list(UNFINISHED), "limit": 100})
        if r.status_code == 404:
            return []
        r.raise_for_status()
        return sorted(r.json()["dag_runs"], key=lambda run: run["dag_run_id"])

    def fail_run(self, dag_id: str, run_id: str) -> None:
        """Mark a run failed (Airflow fails its running task instances and skips the rest)."""
        r = self.http.patch(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", params={"update_mask": "state"},
                            json={"state": "failed"})
        if r.status_code >= 400:
            raise RuntimeError(f"failing {dag_id} {run_id}: HTTP {r.status_code}: {r.text}")

    def fail_leftover_runs(self, dag_ids: list[str], fail: bool = True) -> list[dict]:
        """Every queued or running run of `dag_ids`, failed first when `fail`: the bench's figure
        is only its own run's. Returns what was found ({dag_id, run_id, state, action})."""
        found = []
        for dag_id in sorted(set(dag_ids)):
            for leftover in self.unfinished_runs(dag_id):
                if fail:
                    self.fail_run(dag_id, leftover["dag_run_id"])
                found.append({"dag_id": dag_id, "run_id": leftover["dag_run_id"], "state": leftover["state"],
                              "action": "failed" if fail else "left alone"})
        return found

    def trigger(self, dag_id: str, conf: dict) -> str:
        self.http.patch(f"/api/v2/dags/{dag_id}", params={"update_mask": "is_paused"}, json={"is_paused": False})
        r = self.http.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        if r.status_code >= 400:
            raise RuntimeError(f"trigger {dag_id}: HTTP {r.status_code}: {r.text}")
        return r.json()["dag_run_id"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            run = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} {run_id} still {run['state']} after {timeout:.0f} s")
            time.sleep(3)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        out, offset = [], 0
        while True:
            page = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100, offset=offset)
            out += page["task_instances"]
            offset += len(page["task_instances"])
            if not page["task_instances"] or offset >= page["total_entries"]:
                return out

    def parse_ms(self, dag_id: str, run_id: str, ti: dict) -> float | None:
        """dag_file_parse_ms of the task's last try (from its log, through the REST API)."""
        params = {"map_index": ti["map_index"]} if ti["map_index"] >= 0 else {}
        r = self.http.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}"
                          f"/logs/{max(ti.get('try_number') or 1, 1)}", params={**params, "full_content": True},
                          headers={"Accept": "application/json"})
        if r.status_code != 200:
            return None
        found = PARSE_RE.findall(r.text)
        return float(found[-1]) if found else None


def sql_seconds(state_dsn: str, dag_id: str, run_id: str) -> dict[tuple[str, str], float]:
    """(district, object) → engine seconds, from the run's batch in the history."""
    import psycopg

    with psycopg.connect(state_dsn) as conn:
        rows = conn.execute(
            """SELECT r.district_id, r.object, extract(epoch FROM r.finished_at - r.started_at)
                 FROM sync.batch_result r JOIN sync.batch b ON b.id = r.batch_id
                WHERE b.dag_id = %s AND b.run_id = %s AND r.finished_at IS NOT NULL""",
            (dag_id, run_id)).fetchall()
    return {(d, o): float(s) for d, o, s in rows}


BOOKKEEPING = ("start_request", "finish_request")
PARSE_SAMPLE = 60  # task logs read for the parse time (one REST call each)


def is_object_task(task_id: str) -> bool:
    """An object task in either shape: `district.<object>` (mapped) or `<object>` (per object)."""
    return task_id.startswith(GROUP) or task_id not in BOOKKEEPING


def collect(client: Client, state_dsn: str | None, dag_id: str, run_id: str) -> list[TaskTiming]:
    """One TaskTiming per object task instance that ran (skipped ones have no cost to measure);
    no SQL times without a state database (the floor DAG writes no history). A per-object task's
    SQL is the sum of its districts' engine time."""
    sql = sql_seconds(state_dsn, dag_id, run_id) if state_dsn else {}
    per_object: dict[str, float] = {}
    for (_, o), secs in sql.items():
        per_object[o] = per_object.get(o, 0.0) + secs
    out = []
    for n, ti in enumerate(sorted(client.task_instances(dag_id, run_id), key=lambda t: (t["task_id"], t["map_index"]))):
        if ti["state"] == "skipped":
            continue
        label = ti.get("rendered_map_index") or (str(ti["map_index"]) if ti["map_index"] >= 0 else "")
        district = label.split(" ", 1)[0]
        mapped = ti["task_id"].startswith(GROUP)
        obj = ti["task_id"][len(GROUP):] if mapped else (ti["task_id"] if is_object_task(ti["task_id"]) else None)
        queued = _ts(ti.get("queued_when")) or _ts(ti.get("scheduled_when"))
        start, end = _ts(ti.get("start_date")), _ts(ti.get("end_date"))
        parse = client.parse_ms(dag_id, run_id, ti) if n < PARSE_SAMPLE else None
        out.append(TaskTiming(task_id=ti["task_id"], map_index=ti["map_index"], label=label, state=ti["state"],
                              queued_to_end=_seconds(queued, end), run=_seconds(start, end),
                              sql=(sql.get((district, obj)) if mapped else per_object.get(obj)) if obj else None,
                              parse=parse / 1000 if parse is not None else None))
    return out


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summary(timings: list[TaskTiming], wall: float | None = None) -> dict:
    objects = [t for t in timings if is_object_task(t.task_id)]
    med = {
        "queued_to_end": _median(t.queued_to_end for t in objects),
        "run": _median(t.run for t in objects),
        "sql": _median(t.sql for t in objects),
        "overhead": _median(t.overhead for t in objects),
        "parse": _median(t.parse for t in timings),
    }
    ratio = med["overhead"] / med["sql"] if med["overhead"] is not None and med["sql"] else None
    return {"tasks": len(timings), "object_tasks": len(objects), "wall_seconds": wall, "median": med,
            "overhead_ratio": ratio, "target_ratio": 3.0}


def wait_or_fail(client: Client, dag_id: str, run_id: str, timeout: float) -> dict:
    """Wait for the run; one still going after `timeout` is failed before the error is raised, so
    the bench leaves nothing running behind it."""
    try:
        return client.wait_run(dag_id, run_id, timeout)
    except TimeoutError:
        try:
            client.fail_run(dag_id, run_id)
        except Exception:  # noqa: BLE001 - the next bench fails it anyway; the timeout is the news
            pass
        raise


def run(client: Client, state_dsn: str | None, dag_id: str, conf: dict, timeout: float = 1800,
        sampler=None, meta_db: str | None = None) -> dict:
    """Trigger `dag_id`, wait for the run, measure it. With `sampler` (a ConnectionSampler) the
    peak connections during the run; with `meta_db` the metadata-DB rows the run added; without
    `state_dsn` (a floor DAG: no history) no SQL times."""
    import contextlib

    client.wait_dag(dag_id)
    before = metadata_rows(meta_db) if meta_db else None
    with sampler or contextlib.nullcontext():
        t0 = time.monotonic()
        run_id = client.trigger(dag_id, conf)
        dag_run = wait_or_fail(client, dag_id, run_id, timeout)
        wall = time.monotonic() - t0
    extra: dict = {}
    if sampler is not None:
        extra["peak_connections"] = sampler.result()
    if meta_db:
        time.sleep(2)  # backends report their insert counts to pg_stat within ~1 s
        extra["metadata_rows_added"] = rows_added(before, metadata_rows(meta_db))
    if state_dsn:
        extra["engine_seconds"] = engine_seconds(state_dsn, dag_id, run_id)
    timings = collect(client, state_dsn, dag_id, run_id)
    extra["task_instances"] = len(client.task_instances(dag_id, run_id))
    return {"dag_id": dag_id, "run_id": run_id, "state": dag_run["state"], "conf": conf,
            **summary(timings, wall), **extra, "timings": [asdict(t) | {"overhead": t.overhead} for t in timings]}


FLOOR_DAG_ID = "campus_bench_floor"
# The product's shapes (full_resync_shape) and two it does not build, measured as floors only.
PRODUCT_SHAPES = ("per_object", "per_district_object")
FLOOR_ONLY_SHAPES = ("per_district_level", "per_district")
SHAPES = PRODUCT_SHAPES + FLOOR_ONLY_SHAPES


def shape_tag(shape: str) -> str:
    """The floor DAG's tag naming its shape (what `Client.wait_floor_shape` waits for)."""
    return f"shape:{shape}"


# Every floor DAG: start_request (one work unit per configured district) → no-op tasks wired as
# the shape would wire them → finish_request (all_done).
_FLOOR_HEAD = '''"""campus_bench_floor ({shape}): a resync DAG's shape with no-op tasks (written by
`campus-sync bench airflow --floor` into its temporary dags folder; never in dags/)."""
from airflow.sdk import DAG, get_current_context, task, task_group

from campus_sync import config, hierarchy
from campus_sync.orchestration.dagbuild import GROUP, MAP_INDEX_TEMPLATE, upstream_objects

_graph = hierarchy.load()
_cfg = config.load()
_names = list(_graph.enabled(_cfg.state))

with DAG(dag_id="{dag_id}", schedule=None, catchup=False, max_active_runs=1, tags=["bench", "{tag}"]):

    @task
    def start_request() -> list[dict]:
        return [{{"district_id": d.id, "label": d.label}} for d in _cfg.districts]

    @task(trigger_rule="all_done")
    def finish_request(units: list[dict]) -> int:
        return len(units)

    units = start_request()
'''

_FLOOR_BODIES = {
    # (a) one mapped task group per district, one task per object in it, wired by the hierarchy
    "per_district_object": """
    @task(trigger_rule="none_failed", map_index_template=MAP_INDEX_TEMPLATE)
    def sync_object(name: str, unit: dict):
        get_current_context()["district_label"] = unit["label"]

    @task_group(group_id=GROUP)
    def district(unit: dict) -> None:
        made = {{}}
        for name in _names:
            made[name] = sync_object.override(task_id=name)(name, unit)
            units.operator >> made[name]
            for parent in upstream_objects(_graph, name):
                if parent in made:
                    made[parent] >> made[name]

    district.expand(unit=units) >> finish_request(units)
""",
    # (b) one task per object (every district inside it), in the state pool, wired by the hierarchy
    "per_object": """
    @task(trigger_rule="none_failed", pool=_cfg.state_pool)
    def sync_object(name: str, units: list[dict]):
        return {{u["district_id"]: {{"status": "green"}} for u in units}}

    finish = finish_request(units)
    made = {{}}
    for name in _names:
        made[name] = sync_object.override(task_id=name)(name, units)
        units.operator >> made[name] >> finish
    for name in _names:
        for parent in upstream_objects(_graph, name):
            if parent in made:
                made[parent] >> made[name]
""",
    # (c) one mapped task group per district, one task per hierarchy level in it (an object's
    # level is one more than its deepest upstream object's), each level after the one before
    "per_district_level": """
    _level = {{}}
    for name in _names:
        _level[name] = 1 + max((_level[p] for p in upstream_objects(_graph, name) if p in _level), default=-1)

    @task(trigger_rule="none_failed", map_index_template=MAP_INDEX_TEMPLATE)
    def sync_level(objects: list[str], unit: dict):
        get_current_context()["district_label"] = unit["label"]

    @task_group(group_id=GROUP)
    def district(unit: dict) -> None:
        previous = None
        for level in sorted(set(_level.values())):
            made = sync_level.override(task_id=f"level_{{level}}")([n for n in _names if _level[n] == level], unit)
            if previous is not None:
                previous >> made
            previous = made

    district.expand(unit=units) >> finish_request(units)
""",
    # (d) one mapped task per district
    "per_district": """
    @task(trigger_rule="none_failed", map_index_template=MAP_INDEX_TEMPLATE)
    def sync_district(unit: dict):
        get_current_context()["district_label"] = unit["label"]

    sync_district.expand(unit=units) >> finish_request(units)
""",
}


def floor_source(shape: str) -> str:
    """The floor DAG file for `shape` (one of SHAPES)."""
    if shape not in _FLOOR_BODIES:
        raise ValueError(f"unknown shape {shape!r}; one of {', '.join(SHAPES)}")
    return (_FLOOR_HEAD + _FLOOR_BODIES[shape]).format(dag_id=FLOOR_DAG_ID, shape=shape, tag=shape_tag(shape))


def floor_dags_folder(folder, project_dags, shape: str = "per_district_object") -> None:
    """A dags folder for `--floor`: the project's DAG files (symlinked) plus the floor DAG of `shape`."""
    from pathlib import Path

    folder, project_dags = Path(folder), Path(project_dags)
    folder.mkdir(parents=True, exist_ok=True)
    for f in sorted(project_dags.glob("*.py")):
        (folder / f.name).symlink_to(f.resolve())
    (folder / f"{FLOOR_DAG_ID}.py").write_text(floor_source(shape))


def floor(client: Client, real: dict, timeout: float = 1800, shape: str | None = None) -> dict:
    """Run the floor DAG and set its per-task cost against `real`'s median SQL time."""
    client.wait_dag(FLOOR_DAG_ID)
    if shape:
        client.wait_floor_shape(shape)
    t0 = time.monotonic()
    run_id = client.trigger(FLOOR_DAG_ID, {})
    dag_run = wait_or_fail(client, FLOOR_DAG_ID, run_id, timeout)
    wall = time.monotonic() - t0
    timings = [t for t in collect(client, None, FLOOR_DAG_ID, run_id) if is_object_task(t.task_id)]
    qe, ran = _median(t.queued_to_end for t in timings), _median(t.run for t in timings)
    sql = real["median"]["sql"]
    return {"dag_id": FLOOR_DAG_ID, "run_id": run_id, "state": dag_run["state"], "object_tasks": len(timings),
            "wall_seconds": wall, "median": {"queued_to_end": qe, "run": ran,
                                             "parse": _median(t.parse for t in timings)},
            "floor_over_sql": qe / sql if qe is not None and sql else None}


def _f(v: float | None, unit: str = "s") -> str:
    return "-" if v is None else f"{v:.2f}{unit}"


def format_report(res: dict) -> str:
    lines = [f"{'task':36s} {'district':32s} {'state':8s} {'queued→end':>10s} {'run':>8s} "
             f"{'SQL':>8s} {'parse':>8s} {'overhead':>9s}"]
    for t in res["timings"]:
        lines.append(f"{t['task_id']:36s} {t['label'][:32]:32s} {t['state'][:8]:8s} {_f(t['queued_to_end']):>10s} "
                     f"{_f(t['run']):>8s} {_f(t['sql']):>8s} {_f(t['parse']):>8s} {_f(t['overhead']):>9s}")
    m = res["median"]
    ratio = res["overhead_ratio"]
    lines.append("")
    for left in res.get("leftover_runs") or []:
        lines.append(f"leftover {left['state']} run {left['dag_id']} {left['run_id']} found before triggering: "
                     f"{left['action']}")
    if res.get("floor_only"):
        lines.append(f"floor only: shape {res.get('shape')} is not built by the product; its tasks do nothing")
    if res.get("celery_workers"):
        lines.append(f"CeleryExecutor: {res['celery_workers']} workers × {res['celery_concurrency']} slots")
    lines += [
        f"{res['dag_id']} {res['run_id']}: {res['state']}, {res['tasks']} task instances ran "
        f"({res['object_tasks']} object tasks), wall {_f(res['wall_seconds'])}",
        f"medians per object task: queued→end {_f(m['queued_to_end'])}, run {_f(m['run'])}, "
        f"SQL {_f(m['sql'])}, overhead {_f(m['overhead'])}; DAG-file parse {_f(m['parse'])}",
        f"overhead ratio (median overhead / median SQL): {'-' if ratio is None else f'{ratio:.1f}x'} "
        f"(target ≤ {res['target_ratio']:.0f}x)",
    ]
    if res.get("engine_seconds"):
        e = res["engine_seconds"]
        lines.append(f"task instances {res.get('task_instances')}; engine (SQL) time {_f(e['total'])} over "
                     f"{e['results']} district objects, median {_f(e['median'])}")
    elif res.get("task_instances"):
        lines.append(f"task instances {res['task_instances']}")
    if res.get("peak_connections"):
        p = res["peak_connections"]
        lines.append(f"peak connections named {APP_NAME}*: state {p['state']} (every backend there: "
                     f"{p['state_all']}), busiest district {p['district']}, all databases {p['package']} "
                     f"({p['samples']} samples)")
        if p.get("state_by_application"):
            lines.append("  on the state by application_name: "
                         + ", ".join(f"{a} {n}" for a, n in p["state_by_application"].items()))
    if res.get("metadata_rows_added"):
        m = res["metadata_rows_added"]
        lines.append(f"metadata-DB rows added: {m['total']} ({', '.join(f'{k} {v}' for k, v in m['top_tables'].items())})")
    if res.get("seeded"):
        lines.append(f"seeded: {res['seeded']}")
    if res.get("floor"):
        f = res["floor"]
        fm = f["median"]
        over = f["floor_over_sql"]
        lines += [
            f"floor ({f['dag_id']}: same shape, no-op object tasks, {f['object_tasks']} ran, {f['state']}, "
            f"wall {_f(f['wall_seconds'])}): queued→end {_f(fm['queued_to_end'])}, run {_f(fm['run'])}, "
            f"parse {_f(fm['parse'])}",
            f"floor / median SQL: {'-' if over is None else f'{over:.1f}x'} (a one-task-per-object DAG cannot "
            f"get its overhead ratio below this on this machine)",
        ]
    return "\n".join(lines)


def to_json(res: dict) -> str:
    return json.dumps(res, default=str)


# ----------------------------------------------------------------- many districts
# `--districts N --students M`: N small demo districts in a home of their own (embedded
# PostgreSQL, Airflow home and configuration under it), so the demo's databases are untouched.
SCALE_HOME_DIR = "bench-scale"
APP_NAME = "campus-sync"  # db.APP_NAME: the package's connections are counted by it


def scale_config_text(districts: int, shape: str, parallel: int, slots: int) -> str:
    """The bench deployment's configuration: N districts `0001`… on the embedded server."""
    lines = [
        "# Written by `campus-sync bench airflow --districts N`; rewritten on every run.",
        "state: KY",
        "full_resync_schedule: '0 2 * * 0'",
        "current_school_year: 2027",
        "embedded_postgres: true",
        "state_conn_id: campus_state",
        f"full_resync_shape: {shape}",
        f"districts_in_parallel: {parallel}",
        "state_pool: campus_state",
        f"state_pool_slots: {slots}",
        "districts:",
    ]
    lines += [f"  - {{id: '{i:04d}', name: Bench District {i}}}" for i in range(1, districts + 1)]
    return "\n".join(lines) + "\n"


def use_scale_home(home, districts: int, shape: str, parallel: int, slots: int) -> None:
    """Point this process (and the Airflow it starts) at the bench's home and configuration.
    Must run before anything here opens a database (the embedded server is per home)."""
    import os
    from pathlib import Path

    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    path = home / "campus_sync.yaml"
    path.write_text(scale_config_text(districts, shape, parallel, slots))
    os.environ["CAMPUS_SYNC_HOME"] = str(home)
    os.environ["CAMPUS_SYNC_CONFIG"] = str(path)


def seed_districts(students: int) -> dict:
    """Seed every configured district (`students` each, the demo generator) and refresh nothing
    (the DAG's attendance refresh does); returns seconds and rows."""
    import psycopg

    from campus_sync import config, db, hierarchy
    from campus_sync.demo import data as demo

    cfg, graph = config.load(), hierarchy.load()
    t0, rows, kept = time.monotonic(), 0, 0
    marks = db.home() / "seeded"
    marks.mkdir(exist_ok=True)
    for i, d in enumerate(cfg.districts):
        mark = marks / f"{d.id}-{students}"  # the generator is deterministic: seeded once per size
        if mark.exists():
            kept += 1
            continue
        with psycopg.connect(db.dsn(d.conn_id, f"district {d.id}")) as conn:
            rows += sum(demo.seed_district(conn, graph, d, i, students, 7, cfg.end_year(), cfg.state).values())
        mark.write_text(str(rows))
    return {"districts": len(cfg.districts), "students": students, "rows_written": rows,
            "already_seeded": kept, "seconds": round(time.monotonic() - t0, 1)}


def empty_state() -> None:
    """Drop the bench's state database, so the run is a first load (as after a restore)."""
    import psycopg

    from campus_sync import db

    with psycopg.connect(db.embedded_dsn("postgres"), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS campus_state WITH (FORCE)")


class ConnectionSampler:
    """Samples `pg_stat_activity` every `interval` s in a thread and keeps the peaks of this
    package's connections, told apart by their `application_name` (`campus-sync` or
    `campus-sync:<dag_id>/<task_id>`, see `db.application_name`): on the state database, on the
    busiest district database, on all of them together, and per application name on the state.
    Backends of anything else (Airflow's metadata connections, psql, the sampler itself) are not
    counted; `state_all` is the state database's every backend, for comparison."""

    def __init__(self, state_db: str, district_dbs: list[str], app: str = APP_NAME, interval: float = 0.25,
                 server_dsn: str | None = None):
        import threading

        self.state_db, self.district_dbs, self.app = state_db, set(district_dbs), app
        self.interval, self.server_dsn = interval, server_dsn
        self.peak: dict = {"state": 0, "district": 0, "package": 0, "state_all": 0, "samples": 0,
                           "state_by_application": {}}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def ours(self, application_name: str | None) -> bool:
        return bool(application_name) and (application_name == self.app
                                           or application_name.startswith(self.app + ":"))

    def sample(self, conn) -> None:
        """One look at pg_stat_activity through `conn` (a connection to any database of the server)."""
        rows = conn.execute(
            "SELECT datname, application_name, count(*) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND datname IS NOT NULL GROUP BY 1, 2").fetchall()
        peak = self.peak
        state = sum(c for d, a, c in rows if d == self.state_db and self.ours(a))
        per: dict[str, int] = {}
        for d, a, c in rows:
            if d in self.district_dbs and self.ours(a):
                per[d] = per.get(d, 0) + c
        peak["state"] = max(peak["state"], state)
        peak["state_all"] = max(peak["state_all"], sum(c for d, _, c in rows if d == self.state_db))
        peak["district"] = max(peak["district"], max(per.values(), default=0))
        peak["package"] = max(peak["package"], sum(c for _, a, c in rows if self.ours(a)))
        by_app = peak["state_by_application"]
        for d, a, c in rows:
            if d == self.state_db and self.ours(a):
                by_app[a] = max(by_app.get(a, 0), c)
        peak["samples"] += 1

    def _loop(self) -> None:
        import psycopg

        from campus_sync import db

        with psycopg.connect(self.server_dsn or db.embedded_dsn("postgres"), autocommit=True) as conn:
            while not self._stop.is_set():
                self.sample(conn)
                self._stop.wait(self.interval)

    def result(self) -> dict:
        """The peaks; per application name only the 10 largest (a per-district shape has many tasks)."""
        top = sorted(self.peak["state_by_application"].items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        return {**self.peak, "state_by_application": dict(top)}

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def metadata_rows(meta_db: str) -> dict[str, int]:
    """Rows inserted so far per table of the Airflow metadata database (pg_stat_user_tables)."""
    import psycopg

    from campus_sync import db

    with psycopg.connect(db.embedded_dsn(meta_db)) as conn:
        return {t: int(n) for t, n in conn.execute("SELECT relname, n_tup_ins FROM pg_stat_user_tables")}


def rows_added(before: dict[str, int], after: dict[str, int]) -> dict:
    delta = {t: after[t] - before.get(t, 0) for t in after if after[t] - before.get(t, 0) > 0}
    top = dict(sorted(delta.items(), key=lambda kv: (-kv[1], kv[0]))[:8])
    return {"total": sum(delta.values()), "top_tables": top}


def engine_seconds(state_dsn: str, dag_id: str, run_id: str) -> dict:
    """The run's engine time from the history: total, per (district, object) median, and count."""
    sql = sql_seconds(state_dsn, dag_id, run_id)
    values = sorted(sql.values())
    return {"total": round(sum(values), 2), "median": _median(values), "results": len(values)}
