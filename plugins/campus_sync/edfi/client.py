"""The Ed-Fi Resync's HTTP side: where an Ed-Fi API is (an Airflow connection) and an
asynchronous client that sends to it.

The client shares one token among all requests in flight, renews it shortly before it expires
and at once on a 401, and retries 429, 5xx and connection errors with exponential backoff and
jitter, waiting what `Retry-After` says when the API says it. POST is an upsert on the natural
key in the Ed-Fi API, so a retried POST cannot create a second document; a retried DELETE that
answers 404 has already done its work.

Requests travel over keep-alive HTTP/1.1 connections of the client's own (see "HTTP/1.1 on
asyncio" below): a resync's throughput is the CPU its client spends per request.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import functools
import json
import os
import random
import ssl
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httptools
import httpx
import msgspec

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Tokens shared by every client of this process, per (token URL, key): (token, expiry by
# time.monotonic()). An ODS/API 7.3 refuses a client more than 15 live tokens (429), so a resync
# must not ask for one per resource. Kept in memory only, never written anywhere.
_TOKENS: dict[tuple[str, str], tuple[str, float]] = {}


class EdfiConnectionError(ValueError):
    """The Ed-Fi API connection is not defined or malformed; the message names it."""


class EdfiAuthError(RuntimeError):
    """The API refused the key and secret (or never answered the token request)."""


@dataclass(frozen=True)
class ApiConnection:
    """An Ed-Fi API: base URL (`host` of the Airflow connection), key and secret (`login`,
    `password`), and in `extra`: route_style (shared: ODS/API 7.x; year: 5.x/6.x year-specific;
    context-year: 7.x with a school-year context, no tenant; tenant-year: 7.x multi-tenant),
    api_version, tenant."""

    base_url: str
    key: str
    secret: str
    school_year: int
    route_style: str = "shared"
    api_version: str = ""
    tenant: str = ""

    @property
    def data_url(self) -> str:
        """The data management API, ending before `/ed-fi/{resource}`."""
        if self.route_style == "year":
            return f"{self.base_url}/data/v3/{self.school_year}"
        if self.route_style == "context-year":
            return f"{self.base_url}/{self.school_year}/data/v3"
        if self.route_style == "tenant-year":
            return f"{self.base_url}/{self.tenant}/{self.school_year}/data/v3"
        return f"{self.base_url}/data/v3"

    @property
    def oauth_url(self) -> str:
        if self.route_style == "tenant-year":
            return f"{self.base_url}/{self.tenant}/oauth/token"
        return f"{self.base_url}/oauth/token"

    @property
    def dependencies_url(self) -> str:
        if self.route_style == "year":
            return f"{self.base_url}/metadata/data/v3/{self.school_year}/dependencies"
        if self.route_style == "context-year":
            return f"{self.base_url}/{self.school_year}/metadata/data/v3/dependencies"
        if self.route_style == "tenant-year":
            return f"{self.base_url}/{self.tenant}/{self.school_year}/metadata/data/v3/dependencies"
        return f"{self.base_url}/metadata/data/v3/dependencies"


def _from_airflow_connection(conn, where: str, school_year: int) -> ApiConnection:
    host = (conn.host or "").strip()
    if not host:
        raise EdfiConnectionError(f"{where}: no host (the Ed-Fi API's base URL)")
    if "://" not in host:
        scheme = (conn.schema or "https").strip() or "https"
        host = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
    elif conn.port and host.count(":") < 2:
        host = f"{host}:{conn.port}"
    extra = conn.extra_dejson or {}
    style = str(extra.get("route_style", "shared"))
    if style not in ("shared", "year", "context-year", "tenant-year"):
        raise EdfiConnectionError(f"{where}: extra route_style {style!r} must be shared, year, context-year or tenant-year")
    if style == "tenant-year" and not extra.get("tenant"):
        raise EdfiConnectionError(f"{where}: route_style tenant-year needs extra tenant")
    if style == "context-year" and extra.get("tenant"):
        raise EdfiConnectionError(f"{where}: route_style context-year takes no tenant; for /{{tenant}}/{{year}} routes "
                                  "use tenant-year")
    if not conn.login or not conn.password:
        raise EdfiConnectionError(f"{where}: the key (login) and secret (password) are required")
    return ApiConnection(base_url=host.rstrip("/"), key=conn.login, secret=conn.password, school_year=school_year,
                         route_style=style, api_version=str(extra.get("api_version", "")),
                         tenant=str(extra.get("tenant", "")))


@dataclass(frozen=True)
class _Conn:
    """The fields of an Airflow connection this module reads."""

    host: str | None
    login: str | None
    password: str | None
    port: int | None = None
    schema: str | None = None
    extra_dejson: dict = field(default_factory=dict)


def _parse_env(raw: str, var: str) -> _Conn:
    """An `AIRFLOW_CONN_*` value in Airflow's two forms: JSON ({"conn_type", "host", "login",
    "password", "port", "schema", "extra"}) or a URI (`http://key:secret@host:port/?route_style=...`,
    its query read as extra), read here as Airflow reads them (without logging the secret)."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    try:
        if raw.startswith("{"):
            d = json.loads(raw)
            extra = d.get("extra") or {}
            if isinstance(extra, str):
                extra = json.loads(extra) if extra.strip() else {}
            if not isinstance(extra, dict):
                raise ValueError("extra must be a JSON object")
            return _Conn(host=d.get("host"), login=d.get("login"), password=d.get("password"),
                         port=int(d["port"]) if d.get("port") else None, schema=d.get("schema"), extra_dejson=extra)
        u = urlsplit(raw)
        if not u.scheme or not u.hostname:
            raise ValueError("expected a URI like http://key:secret@host:port/?route_style=shared, or JSON")
        scheme = u.scheme.replace("-", "_")
        scheme = {"http": "http", "https": "https"}.get(scheme, "https")
        extra = dict(parse_qsl(u.query))
        return _Conn(host=f"{scheme}://{u.hostname}" + (f":{u.port}" if u.port else "") + (u.path.rstrip("/") or ""),
                     login=unquote(u.username or "") or None, password=unquote(u.password or "") or None,
                     extra_dejson=extra)
    except (ValueError, TypeError, KeyError) as exc:
        raise EdfiConnectionError(f"environment variable {var} is not a valid Airflow connection: {exc}") from None


def resolve(conn_id: str, school_year: int) -> ApiConnection:
    """The Ed-Fi API of a configuration's connection id, looked up as db.py looks up databases:
    `AIRFLOW_CONN_<ID>` (URI or JSON), then Airflow's connections when running inside Airflow;
    then, only with `embedded_postgres: true` (the demo), the local Ed-Fi API when it runs.
    Otherwise an error naming the connection."""
    var = "AIRFLOW_CONN_" + conn_id.upper()
    raw = os.environ.get(var, "").strip()
    if raw:
        return _from_airflow_connection(_parse_env(raw, var), f"environment variable {var}", school_year)
    if "airflow" in sys.modules:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            return _from_airflow_connection(BaseHook.get_connection(conn_id), f"Airflow connection {conn_id!r}",
                                            school_year)
        except AirflowNotFoundException:
            pass
    from campus_sync import config

    cfg = config.load()
    if cfg.embedded_postgres:
        from campus_sync.edfi.api.server import LocalEdFiApi

        info = LocalEdFiApi().info()
        if info:
            style = info.get("routes", "shared")
            base = info["oauth_url"].rsplit("/oauth/token", 1)[0]
            tenant = ""
            if style == "tenant-year":
                base, tenant = base.rsplit("/", 1)
            return ApiConnection(base_url=base, key=info["key"], secret=info["secret"], school_year=school_year,
                                 route_style=style, tenant=tenant)
        raise EdfiConnectionError(f"connection {conn_id!r} is not defined and the local Ed-Fi API is not running: "
                                  f"start it (campus-sync edfi api start) or set {var}")
    raise EdfiConnectionError(f"connection {conn_id!r} is not defined: set {var} or create it in Airflow "
                              "(host = base URL, login = key, password = secret, extra = {route_style, api_version, tenant})")


def retry_after(response: Response | httpx.Response | None) -> float | None:
    """Seconds the API asks us to wait (Retry-After: seconds or an HTTP date), or None."""
    if response is None:
        return None
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# ------------------------------------------------------------------ HTTP/1.1 on asyncio
# A resync is tens of thousands of small POSTs to one host, on a machine it often shares with the
# API and PostgreSQL: the client's CPU per request is throughput. So the requests go over a lean
# HTTP/1.1 keep-alive connection pool of our own (asyncio protocol, the llhttp parser of httptools,
# one write per request) rather than a general-purpose client, which spends several times more
# CPU per request. A proxy from the environment (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY) is honoured by
# sending through httpx instead, as before.

class TransportError(httpx.TransportError):
    """The API never answered: no connection, a reset, a timeout or a malformed answer. A
    subclass of httpx's, so callers that catch httpx.TransportError keep working."""


class Response:
    """An answer of the API: status_code, headers (names in lower case), content (the body)."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"


@functools.cache
def _ssl_context():
    """httpx's default TLS context (certifi, or SSL_CERT_FILE / SSL_CERT_DIR), made once."""
    return httpx.create_ssl_context()


def _proxied(scheme: str, host: str) -> bool:
    """Whether the environment sends requests for this scheme and host through a proxy."""
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get(scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass_environment(host, proxies)


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time; the answer resolves `waiter`."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.open = True
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if self.headers and "content-length" not in self.headers and "transfer-encoding" not in self.headers:
                # an answer whose body ends with the connection (HTTP/1.0 style)
                waiter.set_result(Response(self.parser.get_status_code(), self.headers, b"".join(self.body)))
            else:
                waiter.set_exception(TransportError(f"connection closed before the answer ended: {exc or 'EOF'}"))

    def eof_received(self) -> None:
        self.open = False  # returns None: the transport closes itself, then connection_lost

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.open = False
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(TransportError(f"malformed HTTP answer: {exc}"))
            self.transport.abort()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.headers = {}
        self.body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            return  # an interim answer (100 Continue): the real one follows
        if not self.parser.should_keep_alive():
            self.open = False
        response = Response(status, self.headers, b"".join(self.body) if len(self.body) != 1 else self.body[0])
        self.headers = {}
        self.body = []
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(response)


class _Pool:
    """Keep-alive connections to one origin (scheme, host, port); the Client's semaphore bounds
    how many are in use, so the pool never holds more than the concurrency."""

    def __init__(self, scheme: str, host: str, port: int, timeout: float) -> None:
        self.scheme, self.host, self.port, self.timeout = scheme, host, port, timeout
        default = 443 if scheme == "https" else 80
        self.host_header = host if port == default else f"{host}:{port}"
        if ":" in host and not host.startswith("["):  # an IPv6 literal
            self.host_header = f"[{host}]" if port == default else f"[{host}]:{port}"
        self.idle: list[_Connection] = []

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                if self.scheme == "https":
                    _, conn = await loop.create_connection(_Connection, self.host, self.port, ssl=_ssl_context(),
                                                           server_hostname=self.host)
                else:
                    _, conn = await loop.create_connection(_Connection, self.host, self.port)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise TransportError(f"cannot connect to {self.host}:{self.port}: {type(exc).__name__}: {exc}") from None
        return conn

    async def send(self, head: bytes, body: bytes | None) -> Response:
        conn = None
        while self.idle:
            conn = self.idle.pop()
            if conn.open and not conn.transport.is_closing():
                break
            conn.transport.close()
            conn = None
        if conn is None:
            conn = await self._connect()
        waiter = conn.waiter = asyncio.get_running_loop().create_future()
        try:
            conn.transport.write(head + body if body else head)  # one write: one packet for a small request
            async with asyncio.timeout(self.timeout):
                response = await waiter
        except BaseException as exc:
            conn.open = False
            conn.transport.abort()
            if isinstance(exc, TimeoutError):
                raise TransportError(f"no answer from {self.host}:{self.port} within {self.timeout} s") from None
            raise
        finally:
            conn.waiter = None
        if conn.open:
            self.idle.append(conn)
        else:
            conn.transport.close()
        return response

    def close(self) -> None:
        for conn in self.idle:
            conn.transport.close()
        self.idle.clear()


class _Transport:
    """Requests by URL over the lean pools, or through httpx for an origin behind a proxy."""

    def __init__(self, concurrency: int, timeout: float) -> None:
        self.concurrency, self.timeout = concurrency, timeout
        self.pools: dict[str, _Pool | None] = {}  # origin -> its pool, None when proxied
        self.proxied: httpx.AsyncClient | None = None

    def _pool(self, origin: str) -> _Pool | None:
        if origin in self.pools:
            return self.pools[origin]
        parts = urllib.parse.urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(f"not an http(s) URL: {origin!r}")
        pool = None if _proxied(parts.scheme, parts.hostname) else \
            _Pool(parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), self.timeout)
        self.pools[origin] = pool
        return pool

    async def send(self, method: str, url: str, headers: str, body: bytes | None) -> Response:
        """`headers`: the request's own header lines, each ending in CRLF."""
        start = url.find("/", url.find("://") + 3)
        origin, target = (url, "/") if start < 0 else (url[:start], url[start:])
        pool = self._pool(origin)
        if pool is None:
            return await self._send_proxied(method, url, headers, body)
        if not target.isascii() or " " in target:
            target = urllib.parse.quote(target, safe="/?&=%:@!$'()*+,;~")
        length = f"Content-Length: {len(body)}\r\n" if body is not None else ""
        head = f"{method} {target} HTTP/1.1\r\nHost: {pool.host_header}\r\n{headers}{length}\r\n".encode("latin-1")
        return await pool.send(head, body)

    async def _send_proxied(self, method: str, url: str, headers: str, body: bytes | None) -> Response:
        if self.proxied is None:
            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            self.proxied = httpx.AsyncClient(timeout=self.timeout, limits=limits)
        pairs = [tuple(line.split(": ", 1)) for line in headers.split("\r\n") if line]
        try:
            r = await self.proxied.request(method, url, headers=pairs, content=body)
        except httpx.TransportError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from None
        return Response(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content)

    async def aclose(self) -> None:
        for pool in self.pools.values():
            if pool is not None:
                pool.close()
        if self.proxied is not None:
            await self.proxied.aclose()


def run(main):
    """Run a coroutine on a new event loop: uvloop's when installed (it is, with Airflow: a
    fraction of asyncio's CPU per request), else asyncio's. For the sending steps."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


_USER_AGENT = "User-Agent: campus-sync\r\n"


@dataclass
class Client:
    """One resync's connection to an Ed-Fi API (use inside one event loop: `async with`); its
    token is the process's shared one for that API and key."""

    api: ApiConnection
    concurrency: int = 8
    retries: int = 8
    backoff: float = 0.2  # first backoff (seconds), doubled per attempt, with jitter
    max_wait: float = 30.0
    timeout: float = 60.0
    renewals: int = 20  # new tokens one request may ask for after 401s (each 401 revokes the shared token)
    stats: Counter = field(default_factory=Counter)
    # Shares the token beyond this process (each Airflow task is a process): an object with
    # get(oauth_url, key) -> (token, expires at, epoch seconds) | None and put(oauth_url, key, token, expires).
    token_store: Any = None

    async def __aenter__(self) -> Client:
        self.http = _Transport(self.concurrency, self.timeout)
        self.slots = asyncio.Semaphore(self.concurrency)
        self._token: str | None = None
        self._auth = ""  # the Authorization header line of _token
        self._expires = 0.0
        self._lock = asyncio.Lock()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.http.aclose()

    async def _wait(self, attempt: int, response: Response | None) -> None:
        asked = retry_after(response)
        if asked is not None:
            self.stats["retry_after_waits"] += 1
            delay = min(self.max_wait, asked) * random.uniform(1.0, 1.1)
        else:
            delay = min(self.max_wait, self.backoff * 2 ** attempt) * random.uniform(0.5, 1.0)
        await asyncio.sleep(delay)

    def _use(self, token: str, expires: float) -> str:
        self._token, self._expires = token, expires
        self._auth = f"Authorization: Bearer {token}\r\n"
        return token

    async def token(self, stale: str | None = None) -> str:
        """The shared token: fetched once, renewed before it expires, or when `stale` (the token
        a request was refused with) is still the current one."""
        async with self._lock:
            if self._token and self._token != stale and time.monotonic() < self._expires:
                return self._token
            shared = _TOKENS.get((self.api.oauth_url, self.api.key))
            if shared and shared[0] != stale and time.monotonic() < shared[1]:
                return self._use(*shared)
            if self.token_store is not None:
                stored = await asyncio.to_thread(self.token_store.get, self.api.oauth_url, self.api.key)
                if stored and stored[0] != stale and stored[1] > time.time():
                    self._use(stored[0], time.monotonic() + (stored[1] - time.time()))
                    _TOKENS[(self.api.oauth_url, self.api.key)] = (self._token, self._expires)
                    self.stats["tokens_reused"] += 1
                    return self._token
            basic = base64.b64encode(f"{self.api.key}:{self.api.secret}".encode()).decode("ascii")
            headers = (f"{_USER_AGENT}Authorization: Basic {basic}\r\n"
                       "Content-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\n")
            response = None
            failure = ""
            for attempt in range(self.retries + 1):
                try:
                    response = await self.http.send("POST", self.api.oauth_url, headers,
                                                    b"grant_type=client_credentials")
                except TransportError as exc:
                    failure = f": {exc}"
                    self.stats["retries"] += 1
                    await self._wait(attempt, None)
                    continue
                failure = f": the last answer was {response.status_code}"
                if response.status_code == 200:
                    body = response.json()
                    ttl = float(body.get("expires_in") or 1800)
                    # renew at 90 % of the lifetime (at least 2 s early)
                    self._use(body["access_token"], time.monotonic() + max(0.5, min(ttl * 0.9, ttl - 2)))
                    _TOKENS[(self.api.oauth_url, self.api.key)] = (self._token, self._expires)
                    if self.token_store is not None:
                        await asyncio.to_thread(self.token_store.put, self.api.oauth_url, self.api.key, self._token,
                                                time.time() + (self._expires - time.monotonic()))
                    self.stats["tokens"] += 1
                    return self._token
                if response.status_code in RETRY_STATUSES:
                    self.stats["retries"] += 1
                    await self._wait(attempt, response)
                    continue
                raise EdfiAuthError(f"the Ed-Fi API refused the token request ({self.api.oauth_url}): "
                                    f"{response.status_code} {response.text[:300]}")
            raise EdfiAuthError(f"no token from {self.api.oauth_url} after {self.retries + 1} attempts{failure}")

    async def request(self, method: str, url: str, *, content: bytes | None = None, json: Any = None,
                      headers: dict[str, str] | None = None) -> Response:
        """One request with the shared token, retried as the module docstring says. The body is
        `content` (bytes, sent as they are) or `json` (encoded here). Returns the last answer
        (which may be a refusal); raises TransportError (an httpx.TransportError) when the API
        never answered."""
        if json is not None:
            content = msgspec.json.encode(json)
            headers = {"Content-Type": "application/json", **(headers or {})}
        own = _USER_AGENT + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) if headers else _USER_AGENT
        if content is None and method in ("POST", "PUT", "PATCH"):
            content = b""
        async with self.slots:
            last_error: Exception | None = None
            response: Response | None = None
            renewed = 0
            attempt = 0
            while attempt <= self.retries:
                if self._token is None or time.monotonic() >= self._expires:
                    await self.token()
                token = self._token
                try:
                    response = await self.http.send(method, url, own + self._auth, content)
                except TransportError as exc:
                    last_error, response = exc, None
                    self.stats["retries"] += 1
                    await self._wait(attempt, None)
                    attempt += 1
                    continue
                status = response.status_code
                if status == 401 and renewed < self.renewals:
                    renewed += 1
                    self.stats["renewals_on_401"] += 1
                    await self.token(stale=token)
                    continue
                if status in RETRY_STATUSES:
                    self.stats["retries"] += 1
                    self.stats[f"retry_{status}"] += 1
                    if attempt < self.retries:
                        await self._wait(attempt, response)
                    attempt += 1
                    continue
                return response
            if response is not None:
                return response
            assert last_error is not None
            raise last_error


def problem_message(response: Response | httpx.Response) -> str:
    """The API's message for a refusal: detail, then the fields of a 400 (validationErrors) or
    the errors list (a 409 names the reference); the legacy `message` of older ODS/APIs."""
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        return response.text[:1000]
    if not isinstance(body, dict):
        return str(body)[:1000]
    parts = [str(body.get("detail") or body.get("message") or body.get("title") or "")]
    for path, msgs in (body.get("validationErrors") or {}).items():
        parts.append(f"{path}: {'; '.join(map(str, msgs))}")
    for err in body.get("errors") or []:
        parts.append(str(err))
    return " | ".join(p for p in parts if p)[:2000]
