"""A TCP port in front of the tests' real PostgreSQL server that refuses its first connections:
each of the first `refuse` is reset as soon as it is accepted (the client's connect fails as it
does against a server that is down or restarting), and every later one is forwarded to the
server byte for byte. `refuse=None` refuses every connection."""

from __future__ import annotations

import socket
import struct
import threading

from urllib.parse import quote

from psycopg.conninfo import conninfo_to_dict


class RefusingPort:
    def __init__(self, server_dsn: str, refuse: int | None):
        info = conninfo_to_dict(server_dsn)
        host, port = info.get("host") or "/tmp", int(info.get("port") or 5432)
        self._login = quote(info.get("user") or "postgres", safe="") + (
            ":" + quote(info["password"], safe="") if info.get("password") else "")
        self._upstream = ((socket.AF_UNIX, f"{host}/.s.PGSQL.{port}") if host.startswith("/")
                          else (socket.AF_INET, (host, port)))
        self.refuse = refuse
        self.refused = 0
        self.forwarded = 0
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True, name="refusing-port").start()

    def dsn(self, database: str) -> str:
        """The server's URI for `database` through this port (its user and password), as an
        `AIRFLOW_CONN_*` variable takes it."""
        return f"postgresql://{self._login}@127.0.0.1:{self.port}/{quote(database, safe='')}"

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            with self._lock:
                refusing = self.refuse is None or self.refused < self.refuse
                self.refused += refusing
                self.forwarded += not refusing
            if refusing:  # reset at once: no byte of the PostgreSQL protocol is answered
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                continue
            family, address = self._upstream
            server = socket.socket(family, socket.SOCK_STREAM)
            try:
                server.connect(address)
            except OSError:
                client.close()
                server.close()
                continue
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):  # either side gone: the session is over
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for s in self._open:
                s.close()
            self._open.clear()

    def __enter__(self) -> RefusingPort:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
