"""The Ed-Fi Resync's sender over real HTTP to the local Ed-Fi API: documents sent chunk by chunk
(the next chunk prepared and the last one logged while one is POSTed) log only what the API took;
connections are kept alive and never more than the concurrency; a proxy from the environment is
honoured; HTTPS trusts SSL_CERT_FILE; a natural key's text is the send log's, however it is built."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import threading

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from resync_helpers import by_resource, documents, point_connection, seed_edfi, start_fresh_api


class Relay:
    """A TCP relay to a port, in a thread of its own: it counts the connections it accepts and
    keeps the first line each one sends; with `tls`, it ends TLS and relays plain HTTP."""

    def __init__(self, target_port: int, tls=None) -> None:
        self.target_port, self.tls = target_port, tls
        self.connections = 0
        self.first_lines: list[str] = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10), "the relay did not start"

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def pipe(reader, writer) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def handle(reader, writer) -> None:
            self.connections += 1
            first = await reader.readline()
            self.first_lines.append(first.decode("latin-1").strip())
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            up_writer.write(first)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        self.server = self.loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0, ssl=self.tls))
        self.port = self.server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()
        self.loop.close()

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()

        asyncio.run_coroutine_threadsafe(stop(), self.loop)
        self.thread.join(10)


def school(n: int) -> dict:
    return {"schoolId": 255_960_000 + n, "nameOfInstitution": f"Relay School {n}",
            "educationOrganizationCategories": [
                {"educationOrganizationCategoryDescriptor": "uri://ed-fi.org/EducationOrganizationCategoryDescriptor#School"}],
            "gradeLevels": [{"gradeLevelDescriptor": "uri://ed-fi.org/GradeLevelDescriptor#Ninth grade"}]}


def post_schools(base_url: str, info: dict, n: int, **options) -> tuple[list[int], dict]:
    from campus_sync.edfi.client import ApiConnection, Client

    conn = ApiConnection(base_url=base_url, key=info["key"], secret=info["secret"], school_year=2027)

    async def go():
        async with Client(conn, **options) as c:
            answers = await asyncio.gather(*(c.request("POST", f"{conn.data_url}/ed-fi/schools", json=school(i))
                                             for i in range(n)))
            return [a.status_code for a in answers], dict(c.stats)

    return asyncio.run(go())


@pytest.fixture
def api(make_db, tmp_path):
    server = start_fresh_api(make_db, tmp_path, name="t_edfi_sender")
    yield server
    server.stop()


def test_documents_sent_in_small_chunks_log_only_what_the_api_took(deployment, make_db, tmp_path, monkeypatch):
    from campus_sync.edfi import resync
    from campus_sync.edfi.api.server import LocalEdFiApi, Options

    dsn = deployment["districts"]["0101"]
    seed_edfi(dsn)
    with psycopg.connect(dsn) as conn:
        person, refused = conn.execute(
            "SELECT x.personid, x.edfiid FROM campus_edfi.person_edfi_id x JOIN campus.enrollment e USING (personid)"
            " WHERE x.edfiid IS NOT NULL ORDER BY x.personid LIMIT 1 OFFSET 20").fetchone()
        conn.execute("UPDATE campus.personidentity SET lastname = repeat('x', 80) WHERE personid = %s", (person,))
    extract_chunks = resync.extract_chunks
    monkeypatch.setattr(resync, "extract_chunks", lambda request, resource, size=7: extract_chunks(request, resource, 7))
    params = {"configuration": "demo", "all_schools": True, "resources": ["students", "schools"],
              "select_dependencies": False}
    request = resync.parse_request(params)
    faulty = start_fresh_api(make_db, tmp_path, name="t_edfi_sender_chunks", faults=0.1,
                             fault_kinds=("reset", "401"), fault_seed=11)
    try:
        point_connection(monkeypatch, faulty)
        first = resync.run(params, user="tester")
    finally:
        faulty.stop()
    assert first["http"].get("retries", 0) and first["http"].get("renewals_on_401", 0), first["http"]  # met, overcome
    results = by_resource(first)
    assert results["students"]["error_reasons"].get("http_400") == 1
    clean = LocalEdFiApi(Options(port=0, token_limit=0), state_dir=tmp_path / "clean", dsn=faulty.dsn)
    clean.start(timeout=120)
    try:
        info = point_connection(monkeypatch, clean)
        for name in ("schools", "students"):
            rows = resync.extract(request, name)
            if name == "students":
                assert len(rows) > 7 * 3, len(rows)  # several chunks
            sendable = sum(1 for r in rows if not r[5])
            refused_here = 1 if name == "students" else 0
            r = results[name]
            assert r["processed"] == len(rows), (name, r)
            assert r["inserted"] == sendable - refused_here, (name, r)
            assert r["errors"] == len(rows) - sendable + refused_here, (name, r)
            assert len(documents(info, name)) == r["inserted"], name
            with resync.state_connection() as conn:
                logged = conn.execute("SELECT count(*) FROM edfi.send_log WHERE configuration = 'demo'"
                                      " AND resource = %s", (name,)).fetchone()[0]
            assert logged == r["inserted"], name
        with resync.state_connection() as conn:
            assert conn.execute("SELECT count(*) FROM edfi.send_log WHERE natural_key = %s",
                                (f'["{refused}"]',)).fetchone()[0] == 0

        again = by_resource(resync.run(params, user="tester"))
        assert again["schools"]["unchanged"] == results["schools"]["inserted"]
        assert again["students"]["unchanged"] == results["students"]["inserted"]
        assert again["students"]["inserted"] == again["students"]["updated"] == 0
        assert again["students"]["error_reasons"].get("http_400") == 1  # the refused one goes again
    finally:
        clean.stop()


def test_connections_are_kept_alive_and_never_more_than_the_concurrency(api):
    info = api.info()
    relay = Relay(info["port"])
    try:
        statuses, stats = post_schools(f"http://127.0.0.1:{relay.port}", info, 40, concurrency=3)
    finally:
        relay.close()
    assert statuses == [201] * 40, statuses
    assert 1 <= relay.connections <= 3, relay.connections
    assert stats["tokens"] == 1 and not stats.get("retries"), stats


def test_a_proxy_from_the_environment_is_honoured(api, monkeypatch):
    from campus_sync.edfi import client

    info = api.info()
    proxy = Relay(info["port"])  # the local API takes the absolute-form requests a proxy forwards
    try:
        for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        statuses, _ = post_schools(info["base_url"], info, 5, concurrency=2)
        assert statuses == [201] * 5
        assert proxy.first_lines and all(line.startswith(f"POST {info['base_url']}/") for line in proxy.first_lines), \
            proxy.first_lines
        assert client._proxied("http", "127.0.0.1")

        seen = proxy.connections
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        statuses, _ = post_schools(info["base_url"], info, 5, concurrency=2)
        assert statuses == [200] * 5
        assert proxy.connections == seen  # bypassed
    finally:
        proxy.close()


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "api.crt", tmp_path / "api.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_https_trusts_ssl_cert_file_and_refuses_an_unknown_certificate(api, tmp_path, monkeypatch):
    import ssl

    from campus_sync.edfi import client

    cert_file, key_file = _self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    info = api.info()
    relay = Relay(info["port"], tls=tls)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    try:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        client._ssl_context.cache_clear()
        with pytest.raises(client.EdfiAuthError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            post_schools(f"https://localhost:{relay.port}", info, 1, retries=0)

        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        client._ssl_context.cache_clear()
        statuses, _ = post_schools(f"https://localhost:{relay.port}", info, 12, concurrency=4)
        assert statuses == [201] * 12
        assert 1 <= relay.connections <= 1 + 4  # the refused handshake, then at most the concurrency
    finally:
        relay.close()
        client._ssl_context.cache_clear()


KEY_PARTS = st.one_of(st.text(), st.integers(), st.none(), st.booleans(), st.floats(), st.dates(),
                      st.lists(st.integers(), max_size=2))


@given(st.lists(KEY_PARTS, max_size=6).map(tuple))
def test_key_text_is_the_send_logs_json(key):
    """The send log's natural keys were written by json.dumps: the direct build must match it to
    the character (non-ASCII escaped, integers as written), or every document would look new."""
    import json

    from campus_sync.edfi import resync

    assert resync.natural_key_text(key) == json.dumps(list(key), default=str, separators=(",", ":"))
