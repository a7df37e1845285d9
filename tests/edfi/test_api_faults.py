"""Faults on demand (`--faults RATE`): each kind, on token requests and data requests alike.

Each kind gets its own server at rate 1.0 with only that kind; the data requests carry a token
from the default server (tokens live in the shared database, so any server of the session
accepts them)."""

from __future__ import annotations

import time

import httpx
import pytest
from edfi_helpers import Api, problem

pytestmark = pytest.mark.db


def _token_request(srv, c: httpx.Client) -> httpx.Response:
    return c.post(srv.info["oauth_url"], auth=(srv.info["key"], srv.info["secret"]), data={"grant_type": "client_credentials"})


@pytest.mark.parametrize("kind,status,type_", [("429", 429, "too-many-requests"), ("503", 503, "service-unavailable")])
def test_429_and_503_carry_retry_after(start_api, api: Api, kind, status, type_):
    srv = start_api(faults=1.0, fault_kinds=(kind,), retry_after=3)
    with srv.client() as c:
        r = _token_request(srv, c)
        assert problem(r, status, type_) and r.headers["retry-after"] == "3"
        r = c.get(srv.data + "/schools", headers=api.headers)
        assert problem(r, status, type_) and r.headers["retry-after"] == "3"
        r = c.post(srv.data + "/students", json={"studentUniqueId": "never"}, headers=api.headers)
        assert r.status_code == status
        assert c.get(srv.base + "/health").status_code == 200  # the health check is spared


def test_reset_connection(start_api, api: Api):
    srv = start_api(faults=1.0, fault_kinds=("reset",))
    with srv.client() as c:
        with pytest.raises(httpx.TransportError):
            _token_request(srv, c)
        with pytest.raises(httpx.TransportError):
            c.get(srv.data + "/schools", headers=api.headers)


def test_slow_answer(start_api, api: Api):
    srv = start_api(faults=1.0, fault_kinds=("slow",), fault_delay=1.0)
    with srv.client() as c:
        t0 = time.monotonic()
        r = c.get(srv.data + "/schools", headers=api.headers)
        assert r.status_code == 200 and time.monotonic() - t0 >= 1.0  # answered, after the delay
        t0 = time.monotonic()
        assert _token_request(srv, c).status_code == 200 and time.monotonic() - t0 >= 1.0


def test_401_as_if_the_token_had_expired(start_api, server):
    srv = start_api(faults=1.0, fault_kinds=("401",))
    with srv.client() as c:
        token = _token_request(srv, c).json()["access_token"]  # token requests cannot draw a 401
        h = {"Authorization": f"Bearer {token}"}
        body = problem(c.get(srv.data + "/schools", headers=h), 401, "security:authentication")
        assert body["errors"] == ["Invalid Authorization header."]
    with server.client() as c:  # really expired: another server of the same database refuses it too
        problem(c.get(server.data + "/schools", headers=h), 401, "security:authentication")
        fresh = server.token(c)
        assert c.get(server.data + "/schools", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


def test_a_share_of_requests_fails_with_every_kind(start_api, server):
    srv = start_api(faults=0.5, fault_seed=11, fault_delay=0.01)
    api = Api(server)  # a token of its own: a 401 fault expires it
    outcomes: dict[str, int] = {}
    with srv.client() as c:
        for _ in range(120):
            try:
                r = c.get(srv.data + "/schools", params={"limit": 1}, headers=api.headers)
                key = str(r.status_code)
                if r.status_code == 401:  # as a client does: a new token, then on
                    api.token = server.token()
            except httpx.TransportError:
                key = "reset"
            outcomes[key] = outcomes.get(key, 0) + 1
    assert {"200", "429", "503", "reset", "401"} <= set(outcomes), outcomes
    assert 30 <= 120 - outcomes["200"] <= 90, outcomes  # about half (slow answers are 200s)
