"""OAuth client credentials and bearer tokens over real HTTP."""

from __future__ import annotations

import base64
import time

import pytest
from edfi_helpers import Api, problem

pytestmark = pytest.mark.db


def test_token_with_basic_key_secret(server):
    with server.client() as c:
        r = c.post(server.info["oauth_url"], auth=(server.info["key"], server.info["secret"]),
                   data={"grant_type": "client_credentials"})
        assert r.status_code == 200
        body = r.json()
        assert set(body) == {"access_token", "expires_in", "token_type"}
        assert body["expires_in"] == 1800 and body["token_type"] == "bearer" and body["access_token"]
        # the form's client_id/client_secret work too, and a JSON body
        r = c.post(server.info["oauth_url"], data={"grant_type": "client_credentials", "client_id": server.info["key"],
                                                    "client_secret": server.info["secret"]})
        assert r.status_code == 200
        r = c.post(server.info["oauth_url"], json={"grant_type": "client_credentials"},
                   auth=(server.info["key"], server.info["secret"]))
        assert r.status_code == 200


@pytest.mark.parametrize("auth,data,status,error", [
    (("key", "wrong"), {"grant_type": "client_credentials"}, 401, "invalid_client"),
    (None, {"grant_type": "client_credentials"}, 401, "invalid_client"),
    ("right", {"grant_type": "password"}, 400, "unsupported_grant_type"),
    ("right", {}, 400, "unsupported_grant_type"),
])
def test_token_refusals(server, auth, data, status, error):
    if auth == "right":
        auth = (server.info["key"], server.info["secret"])
    elif auth == ("key", "wrong"):
        auth = (server.info["key"], "wrong")
    with server.client() as c:
        r = c.post(server.info["oauth_url"], auth=auth, data=data)
    assert r.status_code == status and r.json()["error"] == error


def test_data_requests_need_a_valid_bearer_token(server):
    url = server.data + "/schools"
    basic = "Basic " + base64.b64encode(f"{server.info['key']}:{server.info['secret']}".encode()).decode()
    with server.client() as c:
        cases = [({}, "Authorization header is missing."), ({"Authorization": basic}, "Unknown Authorization header scheme."),
                 ({"Authorization": "Bearer"}, "Missing Authorization header bearer token value."),
                 ({"Authorization": "Bearer 0123456789abcdef"}, "Invalid Authorization header.")]
        for headers, message in cases:
            body = problem(c.get(url, headers=headers), 401, "security:authentication")
            assert body["errors"] == [message]


def test_an_expired_token_gets_401(start_api):
    srv = start_api(token_ttl=1)
    api = Api(srv)
    assert api.get("schools").status_code == 200
    time.sleep(2.2)
    body = problem(api.get("schools"), 401, "security:authentication")
    assert body["errors"] == ["Invalid Authorization header."]
    assert Api(srv).get("schools").status_code == 200  # a new token works


def test_a_client_holds_a_bounded_number_of_live_tokens(start_api):
    """As ODS/API 7.3: past the limit, 429 too-many-tokens (a client should reuse its token). The
    server gets a client of its own, so no other test's tokens count."""
    srv = start_api(token_limit=2, key="capped-client", secret="capped-secret")
    assert (srv.info["key"], srv.info["secret"]) == ("capped-client", "capped-secret")
    with srv.client() as c:
        for _ in range(2):
            srv.token(c)
        body = problem(c.post(srv.info["oauth_url"], auth=("capped-client", "capped-secret"),
                              data={"grant_type": "client_credentials"}), 429, "security:authentication:too-many-tokens")
        assert "limit is 2" in body["errors"][0]
