"""The demo's last step: an Ed-Fi Resync of configuration `demo` (district 0101, the current
school year, every school) into the local Ed-Fi API, which is left running for the page and the
CLI. The resync runs as the `edfi_resync` DAG (dag.test), as the Campus full resync before it."""

from __future__ import annotations

DEMO_CONFIGURATION = "demo"


def run() -> bool:
    """Start (or reuse) the local Ed-Fi API, run the resync, print its per-resource results.
    True when the resync succeeded or the deployment has no `demo` Ed-Fi configuration."""
    import psycopg

    from campus_sync.edfi import request as edfi_request
    from campus_sync.edfi.api.describe import describe
    from campus_sync.edfi.api.server import LocalEdFiApi
    from campus_sync.orchestration import runner, tasks
    from campus_sync.tools import history

    confs = edfi_request.configurations()
    if DEMO_CONFIGURATION not in confs:
        print(f"\n(no Ed-Fi configuration {DEMO_CONFIGURATION!r} in the deployment config: no Ed-Fi resync)")
        return True
    conf = confs[DEMO_CONFIGURATION]
    info, started = LocalEdFiApi().start(timeout=120)  # ApiStartError: the CLI names it
    print("\n" + ("started " if started else "already running: ") + describe(info))
    print(f"\nrunning edfi_resync for configuration {conf.name} (district {conf.district}, every school) ...",
          flush=True)
    outcome = runner.run_dag("edfi_resync", {"configuration": conf.name, "all_schools": True})
    with psycopg.connect(tasks.state_dsn()) as conn:
        found = [b for b in history.batches(conn, limit=20) if b.get("run_id") == outcome.run_id]
    if not found:
        print(f"edfi_resync run {outcome.run_id} ended {outcome.state} without a request (see its log)")
        return False
    batch = found[0]
    by_name = {r["object"]: r for r in batch["results"]}
    print(f"\nEd-Fi resync results — request {batch['id']} ({batch['status']}), school year ending {batch['end_year']}")
    print(f"  {'resource':<50} {'processed':>9} {'errors':>6} {'ins':>6} {'upd':>6} {'del':>6} {'unch':>6}  status")
    for name in edfi_request.plan_order(by_name):
        r = by_name[name]
        reasons = ", ".join(f"{k} {v}" for k, v in sorted((r.get("error_reasons") or {}).items()))
        print(f"  {name:<50} {r['processed']:>9} {r['errors']:>6} {r['inserted']:>6} {r['updated']:>6} "
              f"{r['deleted']:>6} {r['unchanged']:>6}  {r['status']}" + (f" ({reasons})" if reasons else ""))
    print(f"\nThe local Ed-Fi API keeps running at {info['base_url']} (stop: campus-sync edfi api stop).")
    return outcome.ok
