"""The Ed-Fi Resync's sender against the local Ed-Fi API over real HTTP (Retry-After, token
renewal), its read-only locks, request validation and the dependency check."""

from __future__ import annotations

import asyncio

import pytest
from resync_helpers import point_connection, seed_edfi, start_fresh_api


def school(n: int) -> dict:
    return {"schoolId": 255_950_000 + n, "nameOfInstitution": f"School {n}",
            "educationOrganizationCategories": [
                {"educationOrganizationCategoryDescriptor": "uri://ed-fi.org/EducationOrganizationCategoryDescriptor#School"}],
            "gradeLevels": [{"gradeLevelDescriptor": "uri://ed-fi.org/GradeLevelDescriptor#Ninth grade"}]}


def api_connection(api):
    from campus_sync.edfi.client import ApiConnection

    info = api.info()
    return ApiConnection(base_url=info["base_url"], key=info["key"], secret=info["secret"], school_year=2027)


def post_schools(conn, n: int, **client_options):
    from campus_sync.edfi.client import Client

    async def go():
        async with Client(conn, **client_options) as c:
            answers = await asyncio.gather(*(c.request("POST", f"{conn.data_url}/ed-fi/schools", json=school(i))
                                             for i in range(n)))
            return [a.status_code for a in answers], c.stats

    return asyncio.run(go())


def test_retry_after_is_honoured(make_db, tmp_path, monkeypatch):
    from campus_sync.edfi import client

    api = start_fresh_api(make_db, tmp_path, name="t_edfi_retry_after", faults=0.4, fault_kinds=("429", "503"),
                          fault_seed=3, retry_after=1)
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay, *args, **kwargs):
        waits.append(delay)
        return await real_sleep(delay, *args, **kwargs)

    monkeypatch.setattr(client.asyncio, "sleep", recording_sleep)
    try:
        statuses, stats = post_schools(api_connection(api), 12, backoff=0.01, concurrency=4)
    finally:
        api.stop()
    assert all(s in (200, 201) for s in statuses), statuses
    assert stats["retry_after_waits"] > 0 and waits
    # every wait is what Retry-After asked (1 s), never the 0.01 s backoff the client would choose
    assert min(waits) >= 1.0, waits


def test_token_renewed_on_401_and_before_it_expires(make_db, tmp_path):
    api = start_fresh_api(make_db, tmp_path, name="t_edfi_token", faults=0.3, fault_kinds=("401",), fault_seed=5)
    try:
        statuses, stats = post_schools(api_connection(api), 15, concurrency=3)
    finally:
        api.stop()
    assert all(s in (200, 201) for s in statuses), statuses
    assert stats["renewals_on_401"] > 0 and stats["tokens"] > 1, stats

    short = start_fresh_api(make_db, tmp_path, name="t_edfi_token_ttl", token_ttl=2)
    try:
        from campus_sync.edfi.client import Client

        conn = api_connection(short)

        async def go():
            async with Client(conn, concurrency=1) as c:
                codes = []
                for i in range(4):
                    codes.append((await c.request("POST", f"{conn.data_url}/ed-fi/schools", json=school(100 + i))).status_code)
                    await asyncio.sleep(0.8)
                return codes, c.stats

        codes, stats = asyncio.run(go())
    finally:
        short.stop()
    assert all(s in (200, 201) for s in codes), codes
    # renewed before expiry (90 % of 2 s): never refused for an expired token
    assert stats["tokens"] >= 2 and stats["renewals_on_401"] == 0, stats


@pytest.fixture
def edfi(deployment, make_db, tmp_path, monkeypatch):
    seed_edfi(deployment["districts"]["0101"])
    api = start_fresh_api(make_db, tmp_path)
    info = point_connection(monkeypatch, api)
    yield {**deployment, "api": api, "info": info}
    api.stop()


def batch_count() -> int:
    from campus_sync.edfi import resync

    with resync.state_connection() as conn:
        return conn.execute("SELECT count(*) FROM sync.batch").fetchone()[0]


def test_overlapping_resync_is_refused_naming_the_overlap(edfi):
    from campus_sync.edfi import resync

    schools = [s for s, _ in resync.district_schools("0101")]
    first = resync.parse_request({"configuration": "demo", "schools": [schools[0]], "resources": ["sessions"]})
    batch = resync.start(first, user="alice")
    assert {(r["school_id"], r["resource"]) for r in resync.read_only("demo")} == {
        (schools[0], "schools"), (schools[0], "sessions")}
    before = batch_count()
    overlapping = resync.parse_request({"configuration": "demo", "schools": schools[:2], "resources": ["schools"]})
    with pytest.raises(resync.EdfiResyncBusy) as refused:
        resync.start(overlapping, user="bob")
    message = str(refused.value)
    assert f"school {schools[0]} schools" in message and f"request {batch} by alice" in message
    assert f"school {schools[1]}" not in message
    assert batch_count() == before  # nothing written
    other = resync.parse_request({"configuration": "demo", "schools": [schools[1]], "resources": ["schools"]})
    other_batch = resync.start(other, user="carol")  # no overlap: runs alongside
    resync.finish(other_batch, {"schools": ("success", None)})

    resync.send_resource(batch, first, "schools")
    resync.send_resource(batch, first, "sessions")
    summary = resync.finish(batch, {"schools": ("success", None), "sessions": ("success", None)})
    assert summary["status"] == "complete"
    assert resync.read_only("demo") == []
    again = resync.start(overlapping, user="bob")  # released by finish
    resync.finish(again, {})


def test_a_dead_run_does_not_hold_its_locks(edfi):
    from campus_sync.edfi import resync

    request = resync.parse_request({"configuration": "demo", "all_schools": True, "resources": ["schools"]})
    batch = resync.start(request, user="alice")
    with resync.state_connection() as conn:  # its process died: an owner no longer running
        conn.execute("""UPDATE sync.batch SET owner = jsonb_build_object('host', 'gone', 'pid', 1, 'backend_pid', 0,
                                                   'backend_start', '2000-01-01T00:00:00+00:00') WHERE id = %s""",
                     (batch,))
    again = resync.start(request, user="bob")
    assert again != batch
    with resync.state_connection() as conn:
        assert conn.execute("SELECT status FROM sync.batch WHERE id = %s", (batch,)).fetchone()[0] == "abandoned"
    resync.finish(again, {})


@pytest.mark.parametrize("params, message", [
    ({"configuration": "nope", "all_schools": True}, "unknown Ed-Fi configuration 'nope'"),
    ({"configuration": "demo"}, "choose at least one school, or All Schools"),
    ({"configuration": "demo", "all_schools": True, "resources": ["students", "grades"]}, "unknown resource 'grades'"),
    ({"configuration": "demo", "all_schools": True, "run_cleanup": True}, "run_cleanup is for Tennessee only"),
    ({"configuration": "demo", "all_schools": True, "person_ids": "12\n0x1F, 7"}, "person_ids: '0x1F'"),
    ({"configuration": "demo", "all_schools": True, "section_ids": "-4"}, "section_ids: '-4'"),
    ({"configuration": "demo", "schools": ["Abbott"]}, "schools: 'Abbott'"),
    ({"configuration": "demo", "all_schools": "yes"}, "all_schools must be true or false"),
    ({"configuration": "demo", "all_schools": True, "resourses": ["schools"]}, "unknown parameter 'resourses'"),
])
def test_request_validation_names_the_bad_value(params, message):
    from campus_sync.edfi import resync

    with pytest.raises(resync.EdfiRequestError) as refused:
        resync.parse_request(params)
    assert message in str(refused.value)


def test_request_parsing():
    from campus_sync.edfi import resync

    req = resync.parse_request({"configuration": "demo", "schools": [3, "1"], "resources": ["sections"],
                                "person_ids": "5\n3, 3 4"})
    assert req.schools == (1, 3) and req.person_ids == ("3", "4", "5")
    assert resync.plan(req) == ["schools", "courses", "sessions", "courseOfferings", "sections"]
    alone = resync.parse_request({"configuration": "demo", "all_schools": True, "resources": ["sections"],
                                  "select_dependencies": False})
    assert alone.schools is None and resync.plan(alone) == ["sections"]
    tn = resync.parse_request({"configuration": "tn", "all_schools": True, "run_cleanup": True})
    assert tn.run_cleanup
    choices = resync.form_choices("demo")
    assert choices["resources"][0] == "staffs" and not choices["run_cleanup_allowed"]


def test_unknown_school_is_refused_before_anything_is_written(edfi):
    from campus_sync.edfi import resync

    before = batch_count()
    with pytest.raises(resync.EdfiRequestError, match="schools: 42 not a school of district 0101"):
        resync.start(resync.parse_request({"configuration": "demo", "schools": [42]}), user="x")
    assert batch_count() == before


def test_plan_is_checked_against_the_api_dependencies(edfi):
    from campus_sync.edfi import resync

    base = edfi["info"]["base_url"]
    req = resync.parse_request({"configuration": "demo", "all_schools": True})
    assert resync.check_dependencies(base, resync.plan(req)) == []
    assert resync.check_dependencies(base, ["sections", "schools"]) == [
        "the plan sends sections before schools, which the API orders first (3 < 7)"]
    assert resync.check_dependencies(base, ["schools", "notAResource"]) == [
        "notAResource: not in the API's dependency list"]
    with resync.state_connection() as conn:  # start records the check with the request
        batch = resync.start(req, user="x")
        details = conn.execute("SELECT details FROM sync.batch WHERE id = %s", (batch,)).fetchone()[0]
    resync.finish(batch, {})
    assert details["dependency_check"] == []


def test_connection_forms(monkeypatch):
    from campus_sync.edfi import client

    monkeypatch.setenv("AIRFLOW_CONN_EDFI_X", "http://my%20key:s3cret@127.0.0.1:8123/?route_style=year&api_version=6.1")
    c = client.resolve("edfi_x", 2027)
    assert (c.base_url, c.key, c.secret, c.route_style) == ("http://127.0.0.1:8123", "my key", "s3cret", "year")
    assert c.data_url == "http://127.0.0.1:8123/data/v3/2027"
    assert c.dependencies_url == "http://127.0.0.1:8123/metadata/data/v3/2027/dependencies"
    monkeypatch.setenv("AIRFLOW_CONN_EDFI_X", '{"conn_type": "http", "host": "https://ods.example.org/api", "login": "k",'
                                              ' "password": "s", "extra": {"route_style": "tenant-year", "tenant": "t1"}}')
    c = client.resolve("edfi_x", 2027)
    assert c.data_url == "https://ods.example.org/api/t1/2027/data/v3"
    assert c.oauth_url == "https://ods.example.org/api/t1/oauth/token"
    monkeypatch.setenv("AIRFLOW_CONN_EDFI_X", '{"host": "https://ods.example.org", "login": "k", "password": "s",'
                                              ' "extra": {"route_style": "tenant-year"}}')
    with pytest.raises(client.EdfiConnectionError, match="route_style tenant-year needs extra tenant"):
        client.resolve("edfi_x", 2027)
    monkeypatch.setenv("AIRFLOW_CONN_EDFI_X", '{"host": "https://ods.example.org", "login": "k"}')
    with pytest.raises(client.EdfiConnectionError, match="key .login. and secret .password. are required"):
        client.resolve("edfi_x", 2027)
    monkeypatch.delenv("AIRFLOW_CONN_EDFI_X")
    with pytest.raises(client.EdfiConnectionError, match="connection 'edfi_x' is not defined"):
        client.resolve("edfi_x", 2027)


@pytest.mark.parametrize("entry, message", [
    ("{name: x, district: '0101', conn_id: e, resources: [grades]}", "unknown resource 'grades'"),
    ("{name: x, district: '0999', conn_id: e, resources: [schools]}", "unknown district '0999'"),
    ("{name: x, district: 101, conn_id: e, resources: [schools]}", "must be a quoted district id"),
    ("{name: x, district: '0101', conn_id: 'bad id', resources: [schools]}", "conn_id 'bad id'"),
    ("{name: x, district: '0101', conn_id: e, resources: []}", "resources must be a non-empty list"),
    ("{name: x, district: '0101', conn_id: e, resources: [schools], colour: red}", "unknown field 'colour'"),
    ("{name: x, district: '0101', conn_id: e, resources: [schools], concurrency: 0}", "concurrency must be"),
])
def test_configuration_errors_name_the_field(tmp_path, monkeypatch, entry, message):
    from campus_sync.edfi import request

    cfg = tmp_path / "campus_sync.yaml"
    cfg.write_text("state: KY\ncurrent_school_year: 2027\ndistricts:\n  - {id: '0101', name: A}\n"
                   f"edfi:\n  configurations:\n    - {entry}\n")
    monkeypatch.setenv("CAMPUS_SYNC_CONFIG", str(cfg))
    with pytest.raises(request.EdfiConfigError, match=message):
        request.configurations()
