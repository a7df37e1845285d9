"""OAuth 2.0 client credentials, as the Ed-Fi ODS/API implements them.

`POST /oauth/token` with `Authorization: Basic base64(key:secret)` (or `client_id` and
`client_secret` in the form) and `grant_type=client_credentials` returns
`{"access_token", "expires_in", "token_type": "bearer"}`; data requests then carry
`Authorization: Bearer <token>`. A missing, unknown or expired token gets 401. Like ODS/API 7.3,
a client may hold at most `token_limit` live tokens (then 429): a client should share one token
and fetch a new one only when it expires.
Source: Ed-Fi ODS/API 7.3 Client Developers' Guide, "Authentication"
(https://docs.ed-fi.org/reference/ods-api/client-developers-guide/authentication) and the Error
Response Knowledge Base (401 section); token cap: Ed-Fi-ODS v7.3 TooManyTokensException.cs.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from campus_sync.edfi.api.storage import Store


class AuthError(Exception):
    """A refused request: status, the OAuth `error` code (token endpoint) or the 401 message."""

    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


@dataclass
class Tokens:
    store: Store
    ttl: int = 1800
    limit: int = 15
    _cache: dict[str, tuple[str, float]] = field(default_factory=dict)  # token → (tenant, expires monotonic-ish epoch)

    async def issue(self, headers: dict[str, str], body: bytes, tenant: str) -> dict:
        """The token endpoint: check the client credentials and grant type, return the token JSON."""
        form = _form(headers.get("content-type", ""), body)
        key = secret = None
        auth = headers.get("authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                key, _, secret = base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise AuthError(400, "invalid_request", "The Basic authorization header is not base64 of key:secret.") from None
        else:
            key, secret = form.get("client_id"), form.get("client_secret")
        if form.get("grant_type") != "client_credentials":
            raise AuthError(400, "unsupported_grant_type", "grant_type must be client_credentials.")
        if not key or not secret:
            raise AuthError(401, "invalid_client", "Client credentials are required (Basic key:secret).")
        known = await self.store.client_secret(key)
        if known is None or not hmac.compare_digest(known.encode(), secret.encode()):
            raise AuthError(401, "invalid_client", "The client key or secret is not valid.")
        token = secrets.token_hex(16)
        expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=self.ttl)
        if not await self.store.issue_token(token, key, tenant, expires, self.limit):
            raise AuthError(429, "too_many_tokens", f"Too many access tokens have been requested (limit is {self.limit}). "
                                                    "Access tokens should be reused until they expire.")
        if len(self._cache) > 10_000:  # forget expired tokens now and then
            now = time.time()
            self._cache = {t: v for t, v in self._cache.items() if v[1] > now}
        self._cache[token] = (tenant, time.time() + self.ttl)
        return {"access_token": token, "expires_in": self.ttl, "token_type": "bearer"}

    async def check(self, authorization: str | None, tenant: str) -> str:
        """The bearer token of a data request, or AuthError(401) worded as the ODS/API words it."""
        if not authorization:
            raise AuthError(401, "", "Authorization header is missing.")
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise AuthError(401, "", "Unknown Authorization header scheme.")
        token = value.strip()
        if not token:
            raise AuthError(401, "", "Missing Authorization header bearer token value.")
        hit = self._cache.get(token)
        if hit is None:
            found = await self.store.find_token(token)
            if found is not None:
                hit = (found[0], found[1].timestamp())
                self._cache[token] = hit
        if hit is None or hit[1] <= time.time() or hit[0] != tenant:
            raise AuthError(401, "", "Invalid Authorization header.")
        return token

    async def expire(self, token: str) -> None:
        """Expire a token now (the `401` fault): the client must fetch a new one."""
        if token:
            self._cache[token] = (self._cache.get(token, ("", 0.0))[0], 0.0)
            await self.store.expire_token(token)


def _form(content_type: str, body: bytes) -> dict[str, str]:
    if not body:
        return {}
    if "json" in content_type:
        import json

        try:
            data = json.loads(body)
        except ValueError:
            return {}
        return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
