"""Faults on demand: a share of requests fail the way a busy or flaky Ed-Fi API host fails.

With `--faults RATE`, each request (token requests included; only the local health check is
spared) draws a fault with probability RATE, one of:

- `429`: Too Many Requests with `Retry-After` (the Data Management Service's rate limiter; any
  gateway in front of an ODS),
- `503`: Service Unavailable with `Retry-After` (the DMS circuit breaker, a host restarting),
- `reset`: the TCP connection is reset (RST) before any answer,
- `slow`: the request is answered normally, but only after a delay,
- `401`: the caller's token is treated as expired (and really is revoked), so the client must
  fetch a new one; drawn only for requests that carry a bearer token.

That is how the Ed-Fi Resync's retries, backoff and re-authentication are tested. The draw uses
its own random generator (seeded with `--fault-seed` for a reproducible sequence).
"""

from __future__ import annotations

import random
import socket
import struct
from dataclasses import dataclass

KINDS = ("429", "503", "reset", "slow", "401")
TRANSPORT_KEY = "campus_sync.transport"


@dataclass
class FaultPlan:
    rate: float = 0.0
    kinds: tuple[str, ...] = KINDS
    seed: int | None = None
    retry_after: int = 1
    delay: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, got {self.rate}")
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"unknown fault kind(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(KINDS)}")
        self._rng = random.Random(self.seed)

    def draw(self, has_token: bool) -> str | None:
        """The fault for this request, or None."""
        if self.rate <= 0 or self._rng.random() >= self.rate:
            return None
        kinds = [k for k in self.kinds if has_token or k != "401"]
        return self._rng.choice(kinds) if kinds else None


def reset_connection(scope: dict) -> bool:
    """Reset the request's TCP connection (SO_LINGER 0, then abort: the peer sees RST).
    False when the server did not hand the transport over (then the caller fails otherwise)."""
    transport = (scope.get("extensions") or {}).get(TRANSPORT_KEY)
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()
    return True


def protocol_class():
    """uvicorn's httptools protocol, handing each request's transport to the app (for `reset`)."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class TransportExposingProtocol(HttpToolsProtocol):
        def on_headers_complete(self) -> None:
            self.scope.setdefault("extensions", {})[TRANSPORT_KEY] = self.transport
            super().on_headers_complete()

    return TransportExposingProtocol
