"""The local Ed-Fi API: an ASGI app implementing the Ed-Fi API's client contract.

A local implementation of the client contract, for development and tests; it is not an Ed-Fi
ODS/API and does not say it is one. It answers as the Ed-Fi ODS/API 7.2+ documents its answers
(problem+json errors with `validationErrors`), on the embedded PostgreSQL or any DSN.

Sources, all in Ed-Fi-Alliance-OSS/ed-fi-alliance-oss.github.io (https://docs.ed-fi.org):
- Discovery: reference/1-data-exchange/api-guidelines/.../discovery-api.md
- Routes: odsApi_versioned_docs/version-5.4/client-developers-guide/api-routes.md (year in the
  route, 5.x/6.x) and version-7.3/.../context-based-routing-for-year-specific-ods.md (7.x)
- POST/PUT/DELETE/GET: version-7.3/client-developers-guide/basics.md and the REST API
  conventions (post/put/delete/get-requests.md); status codes and headers as Ed-Fi-ODS v7.3
  Application/EdFi.Ods.Api/Controllers/DataManagementControllerBase.cs sets them
- Every refusal's type/title/detail: version-7.3/client-developers-guide/error-response-knowledge-base.md
- Dependencies: version-7.3/client-developers-guide/resource-dependency-order/readme.mdx
- Descriptors: version-7.3/client-developers-guide/descriptor-references.md

Route styles (`routes`):
- "shared" (ODS/API 7.x default): /data/v3/ed-fi/{resource}, token at /oauth/token.
- "year" (ODS/API 5.x/6.x year-specific mode): /data/v3/{year}/ed-fi/{resource}; as those
  versions do, GET / lists the *calendar* year's URLs, so a client must know its school year.
- "context-year" (ODS/API 7.x with a school-year context, no tenant): /{year}/data/v3/ed-fi/
  {resource}, token at /oauth/token; GET /{year} is that context's discovery document.
- "tenant-year" (ODS/API 7.x multi-tenant with a school-year context): /{tenant}/{year}/data/v3/
  ed-fi/{resource}, token at /{tenant}/oauth/token; GET /{tenant}/{year} is that context's
  discovery document. An unknown tenant or a year outside the school years → 404.
Each year (or tenant/year) is a separate data store, as each year-specific ODS is.

Not implemented (a client must not need them from a local API): profiles, person authorization
order (an ODS answers 403 when a Student is updated before its StudentSchoolAssociation), change
queries, cursor paging (pageToken), GraphML dependencies, links in references, `_ext`.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from psycopg.errors import UniqueViolation

from campus_sync.edfi import validate
from campus_sync.edfi.api.auth import AuthError, Tokens
from campus_sync.edfi.api.faults import FaultPlan, reset_connection
from campus_sync.edfi.api.storage import Conflict, Store, key_text
from campus_sync.edfi.model import Model, Property, Resource

ROUTE_STYLES = ("shared", "year", "context-year", "tenant-year")
IMPLEMENTATION = ("campus-sync local Ed-Fi API: a local implementation of the Ed-Fi API client contract "
                  "for development and tests (not an Ed-Fi ODS/API)")
API_VERSION = "1.0.0"
PROBLEM = b"application/problem+json"
JSON = b"application/json; charset=utf-8"
_ID = re.compile(r"^[0-9a-fA-F]{32}$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_YEAR = re.compile(r"^\d{4}$")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


@dataclass
class Settings:
    """How the API runs (what `campus-sync edfi api start` passes on)."""

    routes: str = "shared"
    tenant: str = "district"
    school_year: int | None = None  # the tenant-year context GET / describes; default: the current school year
    token_ttl: int = 1800
    token_limit: int = 15
    default_limit: int = 25
    max_limit: int = 500
    faults: FaultPlan = field(default_factory=FaultPlan)
    key: str | None = None
    secret: str | None = None
    pool_size: int = 4

    def __post_init__(self) -> None:
        if self.routes not in ROUTE_STYLES:
            raise ValueError(f"routes must be one of {', '.join(ROUTE_STYLES)}, got {self.routes!r}")
        if self.token_ttl < 1:
            raise ValueError("token_ttl must be at least 1 second")
        if not re.match(r"^[A-Za-z0-9_-]+$", self.tenant):
            raise ValueError(f"tenant {self.tenant!r}: use letters, digits, '-' and '_' only")


def current_school_year(today: dt.date | None = None) -> int:
    """The school year that ends in the coming summer (2026-27 is 2027 from July 2026)."""
    today = today or dt.date.today()
    return today.year + 1 if today.month >= 7 else today.year


class HttpError(Exception):
    """An answer other than success: status, problem details, extra headers."""

    def __init__(self, status: int, type_: str, title: str, detail: str, *, errors: list[str] | None = None,
                 validation: dict[str, list[str]] | None = None, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.type, self.title, self.detail = status, type_, title, detail
        self.errors, self.validation, self.headers = errors, validation, headers or {}

    def body(self) -> dict:
        out: dict[str, Any] = {"detail": self.detail, "type": f"urn:ed-fi:api{':' + self.type if self.type else ''}",
                               "title": self.title, "status": self.status, "correlationId": uuid.uuid4().hex}
        if self.validation:
            out["validationErrors"] = self.validation
        if self.errors:
            out["errors"] = self.errors
        return out


def bad_request(errors: list[str]) -> HttpError:
    return HttpError(400, "bad-request", "Bad Request", "The request could not be processed. See 'errors' for details.",
                     errors=errors)


def validation_failed(validation: dict[str, list[str]]) -> HttpError:
    return HttpError(400, "bad-request:data-validation-failed", "Data Validation Failed",
                     "Data validation failed. See 'validationErrors' for details.", validation=validation)


def parameter_failed(message: str) -> HttpError:
    return HttpError(400, "bad-request:parameter-validation-failed", "Parameter Validation Failed",
                     "The request could not be processed. See 'errors' for details.", errors=[message])


def not_found(detail: str = "The specified data could not be found.") -> HttpError:
    return HttpError(404, "not-found", "Not Found", detail)


def method_not_allowed(message: str) -> HttpError:
    return HttpError(405, "method-not-allowed", "Method Not Allowed", "The request construction was invalid.",
                     errors=[message])


@dataclass
class Route:
    kind: str  # discovery | token | dependencies | data | health
    context: str = ""
    tenant: str = ""
    prefix: str = ""  # path before /data/v3 (e.g. "/district/2027")
    data_prefix: str = "/data/v3"  # path up to /ed-fi
    resource: str | None = None
    item: str | None = None


class EdFiApi:
    """The ASGI app (see the module docstring)."""

    def __init__(self, model: Model, dsn: str, settings: Settings | None = None):
        self.model = model
        self.settings = settings or Settings()
        self.store = Store(dsn, model, self.settings.pool_size)
        self.tokens = Tokens(self.store, self.settings.token_ttl, self.settings.token_limit)
        self.credentials: tuple[str, str] | None = None
        self._by_lower = {name.lower(): r for name, r in model.resources.items()
                          if r.served and r.kind in ("resource", "descriptor")}
        self._queries: dict[str, dict[str, tuple[tuple[str, ...], Property]]] = {}
        self._deps = _encode(model.dependencies())
        self._standard = "DS" + model.data_standard.get("id", "")
        first, last = model.school_years
        self._years = range(first, last + 1)

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            route = self._route(scope["path"])
            # Each Data Standard is a store of its own, as an ODS's database is of one standard.
            route.context = f"{self._standard}/{route.context}"
            if route.kind == "health":
                await self._send(send, 200, _encode({"status": "ok", "implementation": IMPLEMENTATION}))
                return
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            fault = self.settings.faults.draw(headers.get("authorization", "")[:7].lower() == "bearer ")
            if fault == "reset":
                if reset_connection(scope):
                    return
                fault = "503"
            if fault in ("429", "503"):
                after = str(self.settings.faults.retry_after)
                if fault == "429":
                    raise HttpError(429, "too-many-requests", "Too Many Requests",
                                    "The caller has sent too many requests; retry after the given delay.",
                                    headers={"retry-after": after})
                raise HttpError(503, "service-unavailable", "Service Unavailable",
                                "The service is temporarily unavailable; retry after the given delay.",
                                headers={"retry-after": after})
            if fault == "401":
                await self.tokens.expire(headers.get("authorization", "")[7:].strip())
                raise _unauthenticated("Invalid Authorization header.")
            if fault == "slow":
                await asyncio.sleep(self.settings.faults.delay)
            await self._dispatch(scope, receive, send, route, headers)
        except HttpError as exc:
            await self._send(send, exc.status, _encode(exc.body()), PROBLEM, exc.headers)
        except Exception:  # noqa: BLE001 - an unexpected failure: logged, answered as the ODS/API does
            import traceback

            traceback.print_exc()
            error = HttpError(500, "system-error", "System Error",
                              "An unexpected problem has occurred. See the local Ed-Fi API's log (api.log).")
            try:
                await self._send(send, 500, _encode(error.body()), PROBLEM)
            except Exception:  # noqa: BLE001 - the response had already started
                pass

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.store.open()
                    self.credentials = await self.store.ensure_client(self.settings.key, self.settings.secret)
                except Exception as exc:  # noqa: BLE001 - reported to the server, which exits
                    await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.store.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    async def _send(send, status: int, body: bytes, content_type: bytes | None = JSON,
                    headers: Mapping[str, str] | None = None) -> None:
        raw = [(b"content-length", str(len(body)).encode())]
        if content_type and body:
            raw.append((b"content-type", content_type))
        for k, v in (headers or {}).items():
            raw.append((k.encode("latin-1"), v.encode("latin-1")))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    # ------------------------------------------------------------------ routing
    def _route(self, path: str) -> Route:
        parts = [p for p in path.split("/") if p]
        if parts == ["health"]:
            return Route("health")
        style = self.settings.routes
        if style in ("tenant-year", "context-year"):
            if not parts:
                return Route("discovery", tenant=self.settings.tenant if style == "tenant-year" else "")
            tenant = ""
            if style == "tenant-year":
                if parts[0] != self.settings.tenant:
                    raise not_found()
                tenant, parts = parts[0], parts[1:]
            if parts == ["oauth", "token"]:
                return Route("token", tenant=tenant)
            if not parts or not self._year_ok(parts[0]):
                raise not_found()
            year, parts = parts[0], parts[1:]
            prefix = f"/{tenant}/{year}" if tenant else f"/{year}"
            context = f"{tenant}/{year}" if tenant else year
            if not parts:
                return Route("discovery", context, tenant, prefix)
            if parts == ["metadata", "data", "v3", "dependencies"]:
                return Route("dependencies", context, tenant, prefix)
            return self._data_route(parts, ["data", "v3"], context, tenant, prefix, prefix + "/data/v3")
        if not parts:
            return Route("discovery")
        if parts == ["oauth", "token"]:
            return Route("token")
        if style == "shared":
            if parts == ["metadata", "data", "v3", "dependencies"]:
                return Route("dependencies")
            return self._data_route(parts, ["data", "v3"], "", "", "", "/data/v3")
        # year: /data/v3/{year}/ed-fi/... and /metadata/data/v3/{year}/dependencies
        if len(parts) == 5 and parts[:3] == ["metadata", "data", "v3"] and parts[4] == "dependencies":
            if not self._year_ok(parts[3]):
                raise not_found()
            return Route("dependencies", parts[3])
        if len(parts) >= 3 and parts[:2] == ["data", "v3"]:
            if not self._year_ok(parts[2]):
                raise not_found()
            return self._data_route(parts[:2] + parts[3:], ["data", "v3"], parts[2], "", "", f"/data/v3/{parts[2]}")
        raise not_found()

    def _year_ok(self, text: str) -> bool:
        return bool(_YEAR.match(text)) and int(text) in self._years

    def _data_route(self, parts: list[str], head: list[str], context: str, tenant: str, prefix: str,
                    data_prefix: str) -> Route:
        if parts[:2] != head or len(parts) < 4 or len(parts) > 5 or parts[2] != "ed-fi":
            raise not_found()
        return Route("data", context, tenant, prefix, data_prefix, parts[3], parts[4] if len(parts) == 5 else None)

    async def _dispatch(self, scope: dict, receive, send, route: Route, headers: dict[str, str]) -> None:
        method = scope["method"]
        if route.kind == "discovery":
            if method != "GET":
                raise method_not_allowed(f"The endpoint of the request does not support the '{method}' method.")
            await self._send(send, 200, _encode(self._discovery(scope, headers, route)))
            return
        if route.kind == "dependencies":
            if method != "GET":
                raise method_not_allowed(f"The endpoint of the request does not support the '{method}' method.")
            await self._send(send, 200, self._deps)
            return
        if route.kind == "token":
            if method != "POST":
                raise method_not_allowed(f"The endpoint of the request does not support the '{method}' method.")
            await self._token(receive, send, headers, route)
            return
        await self._data(scope, receive, send, route, headers)

    def _base_url(self, scope: dict, headers: dict[str, str]) -> str:
        host = headers.get("host")
        if not host:
            server = scope.get("server") or ("127.0.0.1", 80)
            host = f"{server[0]}:{server[1]}"
        return f"{scope.get('scheme', 'http')}://{host}"

    def _discovery(self, scope: dict, headers: dict[str, str], route: Route) -> dict:
        """GET /: version, dataModels and urls (oauth, dependencies, dataManagementApi)."""
        base = self._base_url(scope, headers)
        ds = self.model.data_standard
        doc: dict[str, Any] = {
            "version": API_VERSION,
            "informationalVersion": IMPLEMENTATION,
            "suite": "3",
            "build": API_VERSION,
            "dataModels": [{"name": ds.get("name", "Ed-Fi"), "version": ds.get("version", ""),
                            "informationalVersion": ds.get("informational_version", "")}],
        }
        style = self.settings.routes
        if style == "shared":
            urls = {"dependencies": f"{base}/metadata/data/v3/dependencies", "oauth": f"{base}/oauth/token",
                    "dataManagementApi": f"{base}/data/v3/"}
        elif style == "year":
            # As ODS/API 5.x/6.x: the calendar year, whatever the school year (Ed-Fi-ODS v5.3 VersionController).
            year = dt.date.today().year
            doc["apiMode"] = "Year Specific"
            urls = {"dependencies": f"{base}/metadata/data/v3/{year}/dependencies", "oauth": f"{base}/oauth/token",
                    "dataManagementApi": f"{base}/data/v3/{year}"}
        else:
            tenant = f"/{self.settings.tenant}" if style == "tenant-year" else ""
            prefix = route.prefix or f"{tenant}/{self.settings.school_year or current_school_year()}"
            urls = {"dependencies": f"{base}{prefix}/metadata/data/v3/dependencies",
                    "oauth": f"{base}{tenant}/oauth/token",
                    "dataManagementApi": f"{base}{prefix}/data/v3/"}
        doc["urls"] = urls
        return doc

    # ------------------------------------------------------------------ token
    async def _token(self, receive, send, headers: dict[str, str], route: Route) -> None:
        body = await _read_body(receive)
        try:
            answer = await self.tokens.issue(headers, body, route.tenant)
        except AuthError as exc:
            if exc.status == 429:
                raise HttpError(429, "security:authentication:too-many-tokens", "Too Many Tokens",
                                "The caller has authenticated too many times in too short of a time period.",
                                errors=[exc.message]) from None
            await self._send(send, exc.status, _encode({"error": exc.error, "error_description": exc.message}),
                             JSON, {"cache-control": "no-store"})
            return
        await self._send(send, 200, _encode(answer), JSON, {"cache-control": "no-store"})

    # ------------------------------------------------------------------ data
    async def _data(self, scope: dict, receive, send, route: Route, headers: dict[str, str]) -> None:
        resource = self._by_lower.get((route.resource or "").lower())
        if resource is None:
            raise not_found()
        try:
            await self.tokens.check(headers.get("authorization"), route.tenant)
        except AuthError as exc:
            raise _unauthenticated(exc.message) from None
        await self.store.ensure_context(route.context)
        method = scope["method"]
        if route.item is None:
            if method == "GET":
                return await self._get_many(scope, send, route, resource)
            if method == "POST":
                return await self._post(scope, receive, send, route, resource, headers)
            if method == "PUT":
                raise method_not_allowed('Resource collections cannot be replaced. To "upsert" an item in the '
                                         'collection, use POST. To update a specific item, use PUT and include '
                                         'the "id" in the route.')
            if method == "DELETE":
                raise method_not_allowed('Resource collections cannot be deleted. To delete a specific item, use '
                                         'DELETE and include the "id" in the route.')
        else:
            if method == "POST":
                raise method_not_allowed('Resource items can only be updated using PUT. To "upsert" an item in the '
                                         'resource collection using POST, remove the "id" from the route.')
            doc_id = _parse_id(route.item)
            if method == "GET":
                return await self._get_one(send, route, resource, doc_id)
            if method == "PUT":
                return await self._put(scope, receive, send, route, resource, doc_id, headers)
            if method == "DELETE":
                return await self._delete(send, route, resource, doc_id, headers)
        raise method_not_allowed(f"The endpoint of the request does not support the '{method}' method.")

    def _location(self, scope: dict, headers: dict[str, str], route: Route, resource: Resource, doc_id: uuid.UUID) -> str:
        return f"{self._base_url(scope, headers)}{route.data_prefix}/ed-fi/{resource.name}/{doc_id.hex}"

    async def _read_document(self, receive, headers: dict[str, str]) -> Any:
        content_type = headers.get("content-type", "")
        media, _, params = content_type.partition(";")
        if media.strip().lower() != "application/json":
            raise HttpError(415, "unsupported-media-type", "Unsupported Media Type", "The request construction was invalid.",
                            errors=["The value specified in the 'Content-Type' header is not supported by this host."])
        charset = dict(p.strip().partition("=")[::2] for p in params.split(";") if "=" in p).get("charset", "utf-8")
        body = await _read_body(receive)
        if not body.strip():
            raise bad_request(["A non-empty request body is required."])
        if charset.strip('"').lower() not in ("utf-8", "utf8"):
            raise bad_request([f"The request body must be UTF-8; charset {charset} is not supported."])
        try:
            return _decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise validation_failed({"$": [f"The request body is not valid JSON: {exc}"]}) from None

    async def _post(self, scope, receive, send, route: Route, resource: Resource, headers: dict[str, str]) -> None:
        body = await self._read_document(receive, headers)
        if isinstance(body, dict) and "id" in body:
            raise HttpError(400, "bad-request:data-validation-failed", "Data Validation Failed",
                            "The request data was constructed incorrectly.",
                            errors=["Resource identifiers cannot be assigned by the client. The 'id' property "
                                    "should not be included in the request body."])
        checked = self._check(resource, body)
        if_match = _unquote(headers.get("if-match"))
        # Without If-Match: resolve, then one upsert statement (atomic on its own; a target deleted
        # in between fails its foreign key). With If-Match: one transaction holding the row.
        scope_ = self.store.pool.transaction() if if_match is not None else self.store.pool.connection()
        async with scope_ as conn:
            targets = await self._resolve(conn, route.context, checked)
            key = key_text(self.model.key_of(resource, checked.document))
            if if_match is not None:
                cur = await conn.execute("SELECT etag FROM edfi_local.documents WHERE context = %s AND resource = %s "
                                         "AND key = %s FOR UPDATE", (route.context, resource.name, key))
                found = await cur.fetchone()
                if found is None or (if_match != "*" and str(found[0]) != if_match):
                    raise _lock_failed()
            try:
                row, created = await self.store.upsert(conn, route.context, resource, key, checked.document, targets)
            except Conflict as exc:
                raise _conflict(exc) from None
        await self._send(send, 201 if created else 200, b"", None,
                         {"location": self._location(scope, headers, route, resource, row.id), "etag": f'"{row.etag}"'})

    async def _put(self, scope, receive, send, route: Route, resource: Resource, doc_id: uuid.UUID,
                   headers: dict[str, str]) -> None:
        body = await self._read_document(receive, headers)
        if isinstance(body, dict) and "id" in body:
            given = body.get("id")
            if not isinstance(given, str) or not _ID.match(given) or uuid.UUID(given) != doc_id:
                raise HttpError(400, "bad-request:data-validation-failed", "Data Validation Failed",
                                "The request data was constructed incorrectly.",
                                errors=["The 'id' in the request body does not match the 'id' in the route."])
        checked = self._check(resource, body)
        if_match = _unquote(headers.get("if-match"))
        async with self.store.pool.transaction() as conn:
            row = await self.store.lock(conn, route.context, resource.name, doc_id)
            if row is None:
                raise not_found("The specified item could not be found.")
            if if_match not in (None, "*") and if_match != str(row.etag):
                raise _lock_failed()
            targets = await self._resolve(conn, route.context, checked)
            key = key_text(self.model.key_of(resource, checked.document))
            try:
                if key != row.key:
                    if not resource.key_updatable:
                        raise HttpError(400, "bad-request:data-validation-failed:key-change-not-supported",
                                        "Key Change Not Supported",
                                        f"Identifying values for the {resource.entity} item cannot be changed. "
                                        "Delete and recreate the item instead.")
                    new = await self.store.replace(conn, resource, doc_id, key, checked.document, targets)
                    await self._cascade(conn, route.context, resource, row.body, checked.document, doc_id)
                else:
                    new = await self.store.replace(conn, resource, doc_id, key, checked.document, targets)
            except Conflict as exc:
                raise _conflict(exc) from None
        await self._send(send, 204, b"", None,
                         {"location": self._location(scope, headers, route, resource, doc_id), "etag": f'"{new.etag}"'})

    async def _cascade(self, conn, context: str, resource: Resource, old: dict, new: dict, doc_id: uuid.UUID) -> None:
        """A key change of a key-updatable resource reaches every document that refers to it, and on
        through theirs whose keys change with it (the ODS's ON UPDATE CASCADE)."""
        old_key = self.model.key_of(resource, old)
        names = {resource.name} | ({resource.superclass} if resource.superclass else set())
        for ref_row in await self.store.referrers(conn, doc_id):
            r2 = self.model.resource(ref_row.resource)
            old2 = copy.deepcopy(ref_row.body)
            body2 = ref_row.body
            changed = False
            for container, prop in _reference_slots(r2, body2):
                if prop.target in names and self.model.reference_key(prop, container[prop.name]) == old_key:
                    container[prop.name] = {f: _at(new, tpath) for f, tpath in prop.fields}
                    changed = True
            if not changed:
                continue
            key2 = key_text(self.model.key_of(r2, body2))
            try:
                await conn.execute("UPDATE edfi_local.documents SET key = %s, body = %s::jsonb, "
                                   "etag = nextval('edfi_local.etag_seq'), last_modified = now() WHERE id = %s",
                                   (key2, msgspec.json.encode(body2).decode(), ref_row.id))
            except UniqueViolation:
                raise Conflict("non-unique-identity", r2.entity,
                               f"the key change would give a {r2.entity} the natural key of another") from None
            if key2 != ref_row.key:
                await self._cascade(conn, context, r2, old2, body2, ref_row.id)

    async def _delete(self, send, route: Route, resource: Resource, doc_id: uuid.UUID, headers: dict[str, str]) -> None:
        if_match = _unquote(headers.get("if-match"))
        async with self.store.pool.transaction() as conn:
            row = await self.store.lock(conn, route.context, resource.name, doc_id)
            if row is None:
                raise not_found("The specified item could not be found.")
            if if_match not in (None, "*") and if_match != str(row.etag):
                raise _lock_failed()
            try:
                await self.store.delete(conn, doc_id)
            except Conflict as exc:
                raise _conflict(exc) from None
        await self._send(send, 204, b"", None)

    async def _get_one(self, send, route: Route, resource: Resource, doc_id: uuid.UUID) -> None:
        row = await self.store.get(route.context, resource.name, doc_id)
        if row is None:
            raise not_found("The specified item could not be found.")
        await self._send(send, 200, _encode(_rendered(row)), JSON, {"etag": f'"{row.etag}"'})

    async def _get_many(self, scope: dict, send, route: Route, resource: Resource) -> None:
        params = parse_qsl(scope.get("query_string", b"").decode("utf-8", "replace"), keep_blank_values=True)
        offset, limit, total = 0, self.settings.default_limit, False
        filters: dict[str, str] = {}
        for name, value in params:
            low = name.lower()
            if low == "offset":
                if not re.match(r"^\d+$", value):
                    raise parameter_failed("Offset must be greater than or equal to 0.")
                offset = int(value)
            elif low == "limit":
                if not re.match(r"^\d+$", value) or int(value) > self.settings.max_limit:
                    raise parameter_failed(f"Limit must be omitted or set to a value between 0 and {self.settings.max_limit}.")
                limit = int(value)
            elif low == "totalcount":
                if value.lower() not in ("true", "false"):
                    raise parameter_failed("TotalCount must be true or false.")
                total = value.lower() == "true"
            else:
                filters[name] = value
        key, contains, empty = await self._filters(route.context, resource, filters)
        if empty:
            rows, count = [], (0 if total else None)
        else:
            rows, count = await self.store.query(route.context, resource.name, key=key, contains=contains,
                                                 offset=offset, limit=limit, count=total)
        extra = {"total-count": str(count)} if total else None
        await self._send(send, 200, _encode([_rendered(r) for r in rows]), JSON, extra)

    # ------------------------------------------------------------------ helpers
    def _check(self, resource: Resource, body: Any) -> validate.Checked:
        checked = validate.check(self.model, resource, body)
        if resource.kind == "descriptor" and not checked.errors:
            ns = checked.document.get("namespace", "")
            if not re.match(r"^uri://[^/#]+/\S+$", ns) or "#" in ns:
                checked.add("$.namespace", "Namespace must be a URI such as 'uri://ed-fi.org/GradeLevelDescriptor'.")
        if checked.errors:
            raise validation_failed(checked.errors)
        return checked

    async def _resolve(self, conn, context: str, checked: validate.Checked) -> list[uuid.UUID]:
        """Descriptors (unknown → 400) and references (unresolved → 409) of a checked document;
        writes each descriptor's canonical spelling back; returns the documents it refers to."""
        wanted = []
        for _, descriptor, value, _, _ in checked.descriptors:
            wanted.append(((self.model.descriptor_resource(descriptor).name,), key_text(self.model.descriptor_key(value))))
        for _, prop, ref in checked.references:
            wanted.append((self.model.resolves_to(prop.target), key_text(self.model.reference_key(prop, ref))))
        found = await self.store.resolve(conn, context, wanted)
        n = len(checked.descriptors)
        missing: dict[str, list[str]] = {}
        for (path, descriptor, value, container, k), hit in zip(checked.descriptors, found[:n]):
            if hit is None:
                missing.setdefault(path, []).append(f"{descriptor} value '{value}' does not exist.")
            else:
                container[k] = f"{hit[1]['namespace']}#{hit[1]['codeValue']}"
        if missing:
            raise validation_failed(missing)
        for (path, prop, _), hit in zip(checked.references, found[n:]):
            if hit is None:
                entity = self.model.resource(prop.target).entity
                raise HttpError(409, "data-conflict:unresolved-reference", "Unresolved Reference",
                                f"The referenced '{entity}' item does not exist.",
                                errors=[f"The reference at '{path}' does not resolve to an existing {entity}."])
        return list(dict.fromkeys(h[0] for h in found if h is not None))

    async def _filters(self, context: str, resource: Resource, filters: dict[str, str]) -> tuple[str | None, dict | None, bool]:
        """Query filters → (natural key when they name all of it, jsonb containment, no-match)."""
        if not filters:
            return None, None, False
        known = self._query_map(resource)
        by_lower = {k.lower(): k for k in known}
        contains: dict = {}
        values: dict[str, Any] = {}
        for name, raw in filters.items():
            pname = by_lower.get(name.lower())
            if pname is None:
                raise parameter_failed(f"'{name}' is not a query parameter of {resource.name}; use "
                                       f"offset, limit, totalCount or one of: {', '.join(sorted(known))}.")
            paths, prop = known[pname]
            value = self._query_value(prop, pname, raw)
            if prop.kind == "descriptor":
                async with self.store.pool.connection() as conn:
                    hit = (await self.store.resolve(conn, context, [((self.model.descriptor_resource(prop.descriptor).name,),
                                                                     key_text(self.model.descriptor_key(value)))]))[0]
                if hit is None:
                    return None, None, True
                value = f"{hit[1]['namespace']}#{hit[1]['codeValue']}"
            for path in paths:
                values[path] = value
            node = contains
            first = paths[0].split(".")
            for part in first[:-1]:
                node = node.setdefault(part, {})
            node[first[-1]] = value
        if all(p in values for p in resource.key_paths) and resource.kind != "descriptor":
            key = [values[p] for p in resource.key_paths]
            key = tuple(self.model.key_value(self.model.property_at(resource, p), v) for p, v in zip(resource.key_paths, key))
            return key_text(key), contains, False
        return None, contains, False

    def _query_value(self, prop: Property, name: str, raw: str) -> Any:
        if prop.kind == "descriptor":
            return raw
        probe = validate.Checked(document={})
        typed = Property(name, "scalar", True, type=prop.type, max_length=10 ** 6, precision=prop.precision, scale=prop.scale)
        value = validate._scalar(typed, raw, f"$.{name}", probe, in_key=False)
        if probe.errors:
            raise parameter_failed(f"{name}: {probe.errors[f'$.{name}'][0]}")
        return value

    def _query_map(self, resource: Resource) -> dict[str, tuple[tuple[str, ...], Property]]:
        cached = self._queries.get(resource.name)
        if cached is None:
            cached = self._queries[resource.name] = self.model.query_parameters(resource)
        return cached


# ---------------------------------------------------------------------- small helpers
async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _parse_id(text: str) -> uuid.UUID:
    if not _ID.match(text):
        raise not_found("The specified item could not be found.")
    return uuid.UUID(text)


def _unquote(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def _unauthenticated(message: str) -> HttpError:
    return HttpError(401, "security:authentication", "Authentication Failed", "The caller could not be authenticated.",
                     errors=[message], headers={"www-authenticate": 'Bearer error="invalid_token"'})


def _lock_failed() -> HttpError:
    return HttpError(412, "optimistic-lock-failed", "Optimistic Lock Failed", "The item has been modified by another user.")


def _conflict(exc: Conflict) -> HttpError:
    if exc.kind == "dependent-item-exists":
        return HttpError(409, "data-conflict:dependent-item-exists", "Dependent Item Exists",
                         "The requested action cannot be performed because this item is referenced by an existing "
                         f"'{exc.entity}' item.")
    if exc.kind == "non-unique-identity":
        return HttpError(409, "data-conflict:non-unique-identity", "Identifying Values Are Not Unique",
                         "The identifying value(s) of the item are the same as another item that already exists.",
                         errors=[exc.detail] if exc.detail else None)
    return HttpError(409, "data-conflict:unresolved-reference", "Unresolved Reference",
                     "A referenced item does not exist (it was deleted while this request ran).")


def _rendered(row) -> dict:
    out = {"id": row.id.hex}
    out.update(row.body)
    out["_etag"] = str(row.etag)
    out["_lastModifiedDate"] = row.last_modified.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return out


def _at(doc: dict, path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        value = value[part]
    return value


def _reference_slots(node, body: dict):
    """(container dict, reference property) for every reference object in a document."""
    for name, prop in node.properties.items():
        value = body.get(name)
        if value is None:
            continue
        if prop.kind == "reference":
            yield body, prop
        elif prop.kind == "collection":
            for item in value:
                yield from _reference_slots(prop.node, item)
        elif prop.kind == "object":
            yield from _reference_slots(prop.node, value)

