"""A real scheduler killed with -9, then `make airflow` again (same code): what the dead scheduler
left running (its log server, the LocalExecutor workers) is stopped before the new one starts,
so the new log server gets its port."""

from __future__ import annotations

import os
import signal
import time

import pytest

pytestmark = [pytest.mark.live, pytest.mark.db]


def _log_since_last_start(af, component: str) -> str:
    text = af.log_file(component).read_text(errors="replace")
    return text[text.rindex(f"starting {component}"):]


def test_restart_after_a_killed_scheduler(live_airflow):
    af = live_airflow.deployment
    old = af.pids()["scheduler"]
    assert old
    deadline = time.monotonic() + 60  # the scheduler starts its log server and workers soon after it
    while len(tree := af.leftovers(("scheduler",))) < 3 and time.monotonic() < deadline:
        time.sleep(1)
    children = [pid for pid in tree if pid != old]
    assert children, tree
    sid = os.getsid(old)

    os.kill(old, signal.SIGKILL)
    os.waitpid(old, 0)  # the fixture's child: reap it
    time.sleep(1)
    assert any(_alive_in_session(pid, sid) for pid in children), "the log server and workers outlive it"

    assert af.start(timeout=float(os.environ.get("CAMPUS_SYNC_LIVE_TIMEOUT", "420"))) is True
    new = af.pids()["scheduler"]
    assert new and new != old
    assert not any(_alive_in_session(pid, sid) for pid in children)
    assert not [pid for pid in af.leftovers() if _alive_in_session(pid, sid)]
    time.sleep(20)  # let the new scheduler start its own log server
    assert af.pids()["scheduler"] == new
    log = _log_since_last_start(af, "scheduler")
    assert "address already in use" not in log.lower(), log[-3000:]
    assert "processes left by the previous scheduler" in af.log_file("scheduler").read_text()
    assert af.health()["scheduler"]["status"] == "healthy"


def _alive_in_session(pid: int, sid: int) -> bool:
    """`pid` runs and still belongs to the old scheduler's session (not a recycled pid)."""
    try:
        stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return stat[0] != "Z" and int(stat[3]) == sid
