"""Storage of the local Ed-Fi API: PostgreSQL, documents as `jsonb` keyed by their natural key,
with a table of the references each document makes.

This is how Ed-Fi's own Data Management Service stores resources (a document table plus a
reference table; see Ed-Fi-Alliance-OSS/Data-Management-Service, docs/DMS-DATABASE-DESIGN), cut
down to what the client contract needs. Everything lives in schema `edfi_local` of the database
the API is given (the embedded server's `edfi_local` database by default), so it survives restarts.

- `documents`: one row per document: id, context (the route's year or tenant/year, '' when the
  routes carry none: each context is a separate data store, as each year-specific ODS is), the
  resource, its natural key (a JSON array, descriptors folded to lower case), the abstract
  resource it also answers to (`educationOrganizations` for a school), the body, the ETag. The
  natural key is unique per resource and, for subclasses, per abstract resource too.
- `refs`: (document, target) for every reference and every descriptor value a document holds.
  A foreign key to `documents` makes PostgreSQL itself refuse to delete a document that is
  referred to, under concurrency too; the API turns that into 409 dependent-item-exists.
- descriptors and schoolYearTypes are documents as well, seeded into a context on its first use.

The pool is a handful of asyncio psycopg connections; every request runs in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import errors as pg_errors

from campus_sync.edfi.model import Model, Resource

SCHEMA = "edfi_local"
SCHEMA_VERSION = "1"
APPLICATION_NAME = "campus-sync local edfi api"

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.meta (name text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS {SCHEMA}.contexts (
    context text PRIMARY KEY,
    seed_fingerprint text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE IF NOT EXISTS {SCHEMA}.etag_seq;
CREATE TABLE IF NOT EXISTS {SCHEMA}.documents (
    id uuid PRIMARY KEY,
    seq bigserial NOT NULL,
    context text NOT NULL,
    resource text NOT NULL,
    key text NOT NULL,
    superclass text,
    body jsonb NOT NULL,
    etag bigint NOT NULL,
    last_modified timestamptz NOT NULL,
    CONSTRAINT documents_natural_key UNIQUE (context, resource, key)
);
CREATE UNIQUE INDEX IF NOT EXISTS documents_superclass_key ON {SCHEMA}.documents (context, superclass, key)
    WHERE superclass IS NOT NULL;
CREATE INDEX IF NOT EXISTS documents_order ON {SCHEMA}.documents (context, resource, seq);
CREATE TABLE IF NOT EXISTS {SCHEMA}.refs (
    document_id uuid NOT NULL REFERENCES {SCHEMA}.documents (id) ON DELETE CASCADE,
    target_id uuid NOT NULL REFERENCES {SCHEMA}.documents (id),
    PRIMARY KEY (document_id, target_id)
);
CREATE INDEX IF NOT EXISTS refs_target ON {SCHEMA}.refs (target_id);
CREATE TABLE IF NOT EXISTS {SCHEMA}.clients (
    key text PRIMARY KEY,
    secret text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.tokens (
    token text PRIMARY KEY,
    client_key text NOT NULL REFERENCES {SCHEMA}.clients (key) ON DELETE CASCADE,
    tenant text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_client ON {SCHEMA}.tokens (client_key, expires_at);
"""


def key_text(key: Sequence) -> str:
    """The stored form of a natural key: a compact JSON array (values as JSON gives them)."""
    return json.dumps(list(key), separators=(",", ":"), ensure_ascii=False)


@dataclass
class Row:
    id: uuid.UUID
    resource: str
    key: str
    body: dict
    etag: int
    last_modified: dt.datetime


class Conflict(Exception):
    """A write the data refuses: kind is "unresolved-reference", "dependent-item-exists" or
    "non-unique-identity"; entity names the Ed-Fi entity concerned."""

    def __init__(self, kind: str, entity: str, detail: str = ""):
        super().__init__(kind, entity, detail)
        self.kind, self.entity, self.detail = kind, entity, detail


class Pool:
    """A fixed set of async connections (autocommit) handed out one request at a time."""

    def __init__(self, dsn: str, size: int):
        self.dsn, self.size = dsn, size
        self._free: asyncio.Queue[psycopg.AsyncConnection] = asyncio.Queue()
        self._all: list[psycopg.AsyncConnection] = []

    async def open(self) -> None:
        for _ in range(self.size):
            conn = await self._connect()
            self._all.append(conn)
            self._free.put_nowait(conn)

    async def _connect(self) -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(self.dsn, autocommit=True, application_name=APPLICATION_NAME)

    async def close(self) -> None:
        for conn in self._all:
            with contextlib.suppress(Exception):
                await conn.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A connection in autocommit mode: each statement commits on its own."""
        conn = await self._free.get()
        try:
            if conn.closed or conn.broken:
                conn = await self._replace(conn)
            yield conn
        finally:
            self._free.put_nowait(conn)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A connection inside one transaction (committed on success, rolled back on error)."""
        async with self.connection() as conn:
            async with conn.transaction():
                yield conn

    async def _replace(self, conn: psycopg.AsyncConnection) -> psycopg.AsyncConnection:
        self._all.remove(conn)
        new = await self._connect()
        self._all.append(new)
        return new


def ensure_schema(dsn: str) -> None:
    """Create the schema (idempotent; two servers starting at once serialize on an advisory lock)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext('campus_sync.edfi_local schema'))")
        try:
            conn.execute(DDL)
            conn.execute(f"INSERT INTO {SCHEMA}.meta VALUES ('schema_version', %s) ON CONFLICT (name) DO NOTHING",
                         (SCHEMA_VERSION,))
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('campus_sync.edfi_local schema'))")


def seed_rows(model: Model) -> list[tuple[str, str, str]]:
    """(resource, key text, body JSON) of every pre-loaded document: descriptor values and school years."""
    rows = []
    for descriptor, values in sorted(model.descriptor_values.items()):
        r = model.descriptor_resource(descriptor)
        namespace = f"{model.descriptor_namespace}/{descriptor}"
        for v in values:
            body = {"codeValue": v.code_value, "namespace": namespace, "shortDescription": v.short_description[:75],
                    "description": v.description[:1024]}
            rows.append((r.name, key_text(model.key_of(r, body)), json.dumps(body, ensure_ascii=False)))
    first, last = model.school_years
    for year in range(first, last + 1):
        body = {"schoolYear": year, "currentSchoolYear": False, "schoolYearDescription": f"{year - 1}-{year}"}
        rows.append(("schoolYearTypes", key_text((year,)), json.dumps(body)))
    return rows


class Store:
    """The API's data operations (async); see the module docstring."""

    def __init__(self, dsn: str, model: Model, pool_size: int = 4):
        self.model = model
        self.pool = Pool(dsn, pool_size)
        self._seeded: set[str] = set()
        self._seed = seed_rows(model)
        self._fingerprint = hashlib.sha256(repr(self._seed).encode()).hexdigest()[:16]
        self._seed_lock = asyncio.Lock()

    async def open(self) -> None:
        await self.pool.open()

    async def close(self) -> None:
        await self.pool.close()

    # ------------------------------------------------------------------ contexts
    async def ensure_context(self, context: str) -> None:
        """Seed descriptors and school years into a context the first time it is used (and again,
        adding what is missing, when the model's seed changed)."""
        if context in self._seeded:
            return
        async with self._seed_lock:
            if context in self._seeded:
                return
            async with self.pool.transaction() as conn:
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"edfi_local seed {context}",))
                cur = await conn.execute(f"SELECT seed_fingerprint FROM {SCHEMA}.contexts WHERE context = %s", (context,))
                row = await cur.fetchone()
                if row is None or row[0] != self._fingerprint:
                    now = dt.datetime.now(dt.timezone.utc)
                    res, keys, bodies = zip(*self._seed)
                    await conn.execute(
                        f"INSERT INTO {SCHEMA}.documents (id, context, resource, key, body, etag, last_modified) "
                        f"SELECT gen_random_uuid(), %s, r, k, b::jsonb, nextval('{SCHEMA}.etag_seq'), %s "
                        f"FROM unnest(%s::text[], %s::text[], %s::text[]) AS s(r, k, b) "
                        f"ON CONFLICT (context, resource, key) DO NOTHING",
                        (context, now, list(res), list(keys), list(bodies)))
                    await conn.execute(
                        f"INSERT INTO {SCHEMA}.contexts (context, seed_fingerprint) VALUES (%s, %s) "
                        f"ON CONFLICT (context) DO UPDATE SET seed_fingerprint = EXCLUDED.seed_fingerprint",
                        (context, self._fingerprint))
            self._seeded.add(context)

    # ------------------------------------------------------------------ reads
    async def resolve(self, conn: psycopg.AsyncConnection, context: str,
                      wanted: Sequence[tuple[Iterable[str], str]]) -> list[tuple[uuid.UUID, dict | None] | None]:
        """For each (resources it may be, key text): (document id, descriptor body or None), or None
        when no document has that key. Locks the found rows against deletion until commit."""
        if not wanted:
            return []
        names, keys, idx = [], [], []
        for i, (resources, key) in enumerate(wanted):
            for r in resources:
                names.append(r)
                keys.append(key)
                idx.append(i)
        cur = await conn.execute(
            f"SELECT q.i, d.id, CASE WHEN d.body ? 'codeValue' AND d.body ? 'namespace' THEN d.body END "
            f"FROM unnest(%s::text[], %s::text[], %s::int[]) AS q(r, k, i) "
            f"JOIN {SCHEMA}.documents d ON d.context = %s AND d.resource = q.r AND d.key = q.k "
            f"FOR KEY SHARE OF d",
            (names, keys, idx, context))
        out: list = [None] * len(wanted)
        for i, doc_id, body in await cur.fetchall():
            out[i] = (doc_id, body)
        return out

    async def get(self, context: str, resource: str, doc_id: uuid.UUID) -> Row | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT id, resource, key, body, etag, last_modified FROM {SCHEMA}.documents "
                f"WHERE id = %s AND context = %s AND resource = %s", (doc_id, context, resource))
            row = await cur.fetchone()
        return Row(*row) if row else None

    async def query(self, context: str, resource: str, *, key: str | None, contains: dict | None,
                    offset: int, limit: int, count: bool) -> tuple[list[Row], int | None]:
        """Documents of a resource in a stable order (insertion), filtered by natural key or by
        jsonb containment; with `count`, the total before paging."""
        where = "context = %s AND resource = %s"
        params: list = [context, resource]
        if key is not None:
            where += " AND key = %s"
            params.append(key)
        if contains:
            where += " AND body @> %s::jsonb"
            params.append(json.dumps(contains))
        async with self.pool.transaction() as conn:  # count and page from one snapshot
            total = None
            if count:
                cur = await conn.execute(f"SELECT count(*) FROM {SCHEMA}.documents WHERE {where}", params)
                total = (await cur.fetchone())[0]
            cur = await conn.execute(
                f"SELECT id, resource, key, body, etag, last_modified FROM {SCHEMA}.documents WHERE {where} "
                f"ORDER BY seq OFFSET %s LIMIT %s", params + [offset, limit])
            rows = [Row(*r) for r in await cur.fetchall()]
        return rows, total

    # ------------------------------------------------------------------ writes
    async def upsert(self, conn: psycopg.AsyncConnection, context: str, resource: Resource, key: str,
                     body: dict, targets: Sequence[uuid.UUID]) -> tuple[Row, bool]:
        """Insert or replace the document with this natural key (POST), its references with it, in
        one statement (atomic without a transaction block); returns (row, created).

        The references are replaced as two disjoint sets (those no longer held are deleted, the
        new ones inserted): data-modifying CTEs share one snapshot, so deleting and re-inserting
        the same row in one statement would lose it."""
        now = dt.datetime.now(dt.timezone.utc)
        targets = list(targets)
        try:
            cur = await conn.execute(
                f"WITH up AS ("
                f"  INSERT INTO {SCHEMA}.documents AS d (id, context, resource, key, superclass, body, etag, last_modified) "
                f"  VALUES (%s, %s, %s, %s, %s, %s::jsonb, nextval('{SCHEMA}.etag_seq'), %s) "
                f"  ON CONFLICT (context, resource, key) DO UPDATE SET body = EXCLUDED.body, etag = EXCLUDED.etag, "
                f"  last_modified = EXCLUDED.last_modified "
                f"  RETURNING id, resource, key, body, etag, last_modified, (xmax = 0) AS created), "
                f"gone AS (DELETE FROM {SCHEMA}.refs WHERE document_id = (SELECT id FROM up) "
                f"  AND NOT (SELECT created FROM up) AND target_id <> ALL(%s::uuid[])), "
                f"added AS (INSERT INTO {SCHEMA}.refs (document_id, target_id) "
                f"  SELECT (SELECT id FROM up), t FROM unnest(%s::uuid[]) AS t ON CONFLICT DO NOTHING) "
                f"SELECT * FROM up",
                (uuid.uuid4(), context, resource.name, key, resource.superclass, json.dumps(body, ensure_ascii=False),
                 now, targets, targets))
        except pg_errors.UniqueViolation:
            raise Conflict("non-unique-identity", resource.entity,
                           f"another {resource.superclass} item already has this identity") from None
        except pg_errors.ForeignKeyViolation:  # a target deleted after it was resolved
            raise Conflict("unresolved-reference", "") from None
        *row, created = await cur.fetchone()
        return Row(*row), created

    async def lock(self, conn: psycopg.AsyncConnection, context: str, resource: str, doc_id: uuid.UUID) -> Row | None:
        cur = await conn.execute(
            f"SELECT id, resource, key, body, etag, last_modified FROM {SCHEMA}.documents "
            f"WHERE id = %s AND context = %s AND resource = %s FOR UPDATE", (doc_id, context, resource))
        row = await cur.fetchone()
        return Row(*row) if row else None

    async def replace(self, conn: psycopg.AsyncConnection, resource: Resource, doc_id: uuid.UUID, key: str,
                      body: dict, targets: Sequence[uuid.UUID]) -> Row:
        """Replace a document by id (PUT), its natural key included."""
        now = dt.datetime.now(dt.timezone.utc)
        try:
            cur = await conn.execute(
                f"UPDATE {SCHEMA}.documents SET key = %s, body = %s::jsonb, etag = nextval('{SCHEMA}.etag_seq'), "
                f"last_modified = %s WHERE id = %s RETURNING id, resource, key, body, etag, last_modified",
                (key, json.dumps(body, ensure_ascii=False), now, doc_id))
        except pg_errors.UniqueViolation:
            raise Conflict("non-unique-identity", resource.entity) from None
        row = Row(*await cur.fetchone())
        await self._write_refs(conn, doc_id, targets, replace=True)
        return row

    async def referrers(self, conn: psycopg.AsyncConnection, doc_id: uuid.UUID) -> list[Row]:
        cur = await conn.execute(
            f"SELECT d.id, d.resource, d.key, d.body, d.etag, d.last_modified FROM {SCHEMA}.refs r "
            f"JOIN {SCHEMA}.documents d ON d.id = r.document_id WHERE r.target_id = %s ORDER BY d.seq FOR UPDATE OF d",
            (doc_id,))
        return [Row(*r) for r in await cur.fetchall()]

    async def delete(self, conn: psycopg.AsyncConnection, doc_id: uuid.UUID) -> None:
        """Delete a document; Conflict("dependent-item-exists") when another document refers to it."""
        try:
            async with conn.transaction():  # a savepoint: the transaction survives the refusal
                await conn.execute(f"DELETE FROM {SCHEMA}.documents WHERE id = %s", (doc_id,))
        except pg_errors.ForeignKeyViolation:
            cur = await conn.execute(
                f"SELECT d.resource FROM {SCHEMA}.refs r JOIN {SCHEMA}.documents d ON d.id = r.document_id "
                f"WHERE r.target_id = %s ORDER BY d.seq LIMIT 1", (doc_id,))
            row = await cur.fetchone()
            raise Conflict("dependent-item-exists", self._entity(row[0] if row else "")) from None

    async def _write_refs(self, conn: psycopg.AsyncConnection, doc_id: uuid.UUID, targets: Sequence[uuid.UUID],
                          replace: bool) -> None:
        if replace:
            await conn.execute(f"DELETE FROM {SCHEMA}.refs WHERE document_id = %s", (doc_id,))
        if targets:
            try:
                await conn.execute(
                    f"INSERT INTO {SCHEMA}.refs (document_id, target_id) SELECT %s, t FROM unnest(%s::uuid[]) AS t "
                    f"ON CONFLICT DO NOTHING", (doc_id, list(targets)))
            except pg_errors.ForeignKeyViolation:  # a target deleted after it was resolved
                raise Conflict("unresolved-reference", "") from None

    def _entity(self, resource: str) -> str:
        r = self.model.resources.get(resource)
        return r.entity if r else resource

    # ------------------------------------------------------------------ auth
    async def ensure_client(self, key: str | None, secret: str | None) -> tuple[str, str]:
        """The API's client credentials: the given ones (stored), else the first stored pair,
        else a new pair."""
        import secrets as _secrets

        async with self.pool.transaction() as conn:
            if key and secret:
                await conn.execute(f"INSERT INTO {SCHEMA}.clients (key, secret) VALUES (%s, %s) "
                                   f"ON CONFLICT (key) DO UPDATE SET secret = EXCLUDED.secret", (key, secret))
                return key, secret
            cur = await conn.execute(f"SELECT key, secret FROM {SCHEMA}.clients ORDER BY created_at, key LIMIT 1")
            row = await cur.fetchone()
            if row:
                return row[0], row[1]
            key, secret = _secrets.token_hex(10), _secrets.token_urlsafe(24)
            await conn.execute(f"INSERT INTO {SCHEMA}.clients (key, secret) VALUES (%s, %s)", (key, secret))
            return key, secret

    async def client_secret(self, key: str) -> str | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(f"SELECT secret FROM {SCHEMA}.clients WHERE key = %s", (key,))
            row = await cur.fetchone()
        return row[0] if row else None

    async def issue_token(self, token: str, client_key: str, tenant: str, expires_at: dt.datetime, limit: int) -> bool:
        """Store a token; False (nothing stored) when the client already holds `limit` live tokens."""
        async with self.pool.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"edfi_local tokens {client_key}",))
            now = dt.datetime.now(dt.timezone.utc)
            await conn.execute(f"DELETE FROM {SCHEMA}.tokens WHERE client_key = %s AND expires_at <= %s", (client_key, now))
            if limit:
                cur = await conn.execute(f"SELECT count(*) FROM {SCHEMA}.tokens WHERE client_key = %s", (client_key,))
                if (await cur.fetchone())[0] >= limit:
                    return False
            await conn.execute(f"INSERT INTO {SCHEMA}.tokens (token, client_key, tenant, expires_at) VALUES (%s, %s, %s, %s)",
                               (token, client_key, tenant, expires_at))
        return True

    async def expire_token(self, token: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(f"UPDATE {SCHEMA}.tokens SET expires_at = now() WHERE token = %s", (token,))

    async def find_token(self, token: str) -> tuple[str, dt.datetime] | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(f"SELECT tenant, expires_at FROM {SCHEMA}.tokens WHERE token = %s", (token,))
            row = await cur.fetchone()
        return (row[0], row[1]) if row else None

