"""Tool rights of the Resync State Data page (Read, Write, Delete, as in Campus), asked of
Airflow's own auth manager for the signed-in user. Fail closed: no user, no right.

- **Read** (see the tools, results, history, reports, verification, alerts): the user may read
  the runs of every campus DAG (`GET` on DAG runs of the four DAGs below).
- **Write** (Send Resync, Selective Sync, Re-Verify): Read, and the user may create runs
  (`POST` on DAG runs) of the DAG that action triggers.
- **Unpause** a campus DAG (new DAGs start paused, and a run of a paused DAG waits queued):
  Read, and the user may edit that DAG (`PUT` on the DAG, what Airflow's own pause switch
  needs). Airflow checks it again when the page unpauses through its REST API as the user.
- **Delete** (Clear History, and confirming the mass deletes a resync was refused): Read, the
  user may delete runs of every campus DAG, **and** may delete the state database's Airflow
  connection (`DELETE` on connection `campus_state`): Clear
  History deletes rows of the state database, so it needs authority over that database, not only
  over DAG runs. With the simple auth manager: viewer reads, user (and op) also writes, op and
  admin also delete (`op` may manage connections); with FAB, whoever holds both permissions.

The **Ed-Fi Resync** tab (the DAG `edfi_resync`): **Read** (its form, plans, progress, results,
error reports and read-only combinations) is Read above and `GET` on runs of `edfi_resync`;
**Write** (Start Resync) is that Read and `POST` on runs of `edfi_resync`; **Add** and **Delete**
provide no function for this tool, so no route asks for them.

Plugin FastAPI apps get no authentication from Airflow, so every route of the app depends on
`require_read` (or a stronger check) through `airflow.api_fastapi.core_api.security.get_user`,
which reads the JWT from the `Authorization: Bearer` header or the `_token` cookie.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, status

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import (
    ConnectionDetails,
    DagAccessEntity,
    DagDetails,
)
from airflow.api_fastapi.core_api.security import GetUserDep

FULL = "campus_full_resync"
PARTIAL = "campus_partial_resync"
SELECTIVE = "campus_selective_sync"
VERIFICATION = "campus_verification_summary"
CAMPUS_DAGS = (FULL, PARTIAL, SELECTIVE, VERIFICATION)
EDFI = "edfi_resync"
PAGE_DAGS = (*CAMPUS_DAGS, EDFI)  # the DAGs the page starts runs of (and may offer to unpause)


def _auth_manager():
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


def _team(dag_id: str) -> str | None:
    from airflow.models.dag import DagModel

    return DagModel.get_team_name(dag_id)


def dag_allowed(user: BaseUser | None, method: str, dag_id: str) -> bool:
    """May `user` do `method` on runs of `dag_id`? Any error counts as no."""
    if user is None:
        return False
    try:
        return bool(_auth_manager().is_authorized_dag(
            method=method, access_entity=DagAccessEntity.RUN,
            details=DagDetails(id=dag_id, team_name=_team(dag_id)), user=user))
    except Exception:  # noqa: BLE001 - fail closed
        return False


def can_read(user: BaseUser | None) -> bool:
    return all(dag_allowed(user, "GET", d) for d in CAMPUS_DAGS)


def can_write(user: BaseUser | None, dag_id: str) -> bool:
    return dag_id in CAMPUS_DAGS and can_read(user) and dag_allowed(user, "POST", dag_id)


def can_delete(user: BaseUser | None, state_conn_id: str) -> bool:
    if not can_read(user) or not all(dag_allowed(user, "DELETE", d) for d in CAMPUS_DAGS):
        return False
    try:
        return bool(_auth_manager().is_authorized_connection(
            method="DELETE", details=ConnectionDetails(conn_id=state_conn_id), user=user))
    except Exception:  # noqa: BLE001 - fail closed
        return False


def can_edit_dag(user: BaseUser | None, dag_id: str) -> bool:
    """May `user` edit (pause/unpause) `dag_id` (a campus DAG, or edfi_resync for Ed-Fi readers)?
    Any error counts as no."""
    if user is None or dag_id not in PAGE_DAGS:
        return False
    if not (can_edfi_read(user) if dag_id == EDFI else can_read(user)):
        return False
    try:
        return bool(_auth_manager().is_authorized_dag(
            method="PUT", details=DagDetails(id=dag_id, team_name=_team(dag_id)), user=user))
    except Exception:  # noqa: BLE001 - fail closed
        return False


def who_can_edit(dag_id: str) -> list[str] | None:
    """The configured users who may unpause `dag_id`, when the auth manager can list its users
    (the simple auth manager); None when it cannot (FAB, Keycloak...: ask an Airflow admin)."""
    try:
        manager = _auth_manager()
        get_users = getattr(manager, "get_users", None)
        if get_users is None:
            return None
        users = list(get_users())
        return sorted({u.get_name() for u in users if manager.is_authorized_dag(
            method="PUT", details=DagDetails(id=dag_id, team_name=_team(dag_id)), user=u)})
    except Exception:  # noqa: BLE001 - cannot tell: say so rather than guess
        return None


def rights_of(user: BaseUser | None, state_conn_id: str) -> dict[str, bool]:
    """What the page offers this user (the server checks again on every action)."""
    return {"read": can_read(user),
            "write_resync": can_write(user, PARTIAL) and can_write(user, FULL),
            "write_selective": can_write(user, SELECTIVE),
            "write_verification": can_write(user, VERIFICATION),
            "delete": can_delete(user, state_conn_id)}


def can_edfi_read(user: BaseUser | None) -> bool:
    """Ed-Fi Resync Read: the page's Read and reading runs of edfi_resync."""
    return can_read(user) and dag_allowed(user, "GET", EDFI)


def can_edfi_write(user: BaseUser | None) -> bool:
    """Ed-Fi Resync Write (Start Resync): its Read and creating runs of edfi_resync."""
    return can_edfi_read(user) and dag_allowed(user, "POST", EDFI)


def require_edfi_read(user: GetUserDep) -> BaseUser:
    """Dependency of every Ed-Fi Resync route."""
    if not can_edfi_read(user):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"the Ed-Fi Resync needs Read rights: read access to the runs of {EDFI}")
    return user


EdfiReadUser = Annotated[BaseUser, Depends(require_edfi_read)]


def check_edfi_write(user: BaseUser) -> None:
    if not can_edfi_write(user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"Write rights needed: you may not start {EDFI}")


def require_read(user: GetUserDep) -> BaseUser:
    """Dependency of every route: an authenticated user who may read the campus DAGs' runs."""
    if not can_read(user):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "Resync State Data needs Read rights: read access to the campus DAGs' runs")
    return user


ReadUser = Annotated[BaseUser, Depends(require_read)]


def check_write(user: BaseUser, dag_id: str) -> None:
    if not can_write(user, dag_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"Write rights needed: you may not trigger {dag_id}")


def check_delete(user: BaseUser, state_conn_id: str, action: str = "clear history") -> None:
    if not can_delete(user, state_conn_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"Delete rights needed to {action}: deleting runs of the campus DAGs "
                            f"and the state database connection {state_conn_id!r}")


def who_can_text(dag_id: str) -> str:
    """Who to ask to unpause `dag_id`, in a sentence."""
    who = who_can_edit(dag_id)
    if who:
        return f"users who may edit DAG {dag_id} in Airflow: {', '.join(who)}"
    if who is None:
        return f"a user whose Airflow role may edit DAG {dag_id} (ask your Airflow administrator)"
    return f"no configured user may edit DAG {dag_id}: ask your Airflow administrator"


def check_edit_dag(user: BaseUser, dag_id: str) -> None:
    if not can_edit_dag(user, dag_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"you may not unpause {dag_id}: that needs edit rights on the DAG in Airflow; "
                            f"ask {who_can_text(dag_id)}")
