"""A Redshift front end for tests: a TCP relay on 127.0.0.1 in front of the local PostgreSQL.

redshift-connector speaks PostgreSQL's wire protocol, but its start-up message carries parameters
only Redshift knows (client_protocol_version, driver_version, os_version, driver_discovery_version,
...), and PostgreSQL ends a session whose start-up names a parameter it does not know ("FATAL:
unrecognized configuration parameter"). This relay does what Redshift's front end does with them:
it takes them off the start-up message (recording them in `.startup_params`) and relays everything
else byte for byte both ways, the login (SCRAM) included. The driver also parses the server's
`server_version` as a plain version number (Redshift says `8.0.2`), which Debian's build does not
send (`15.18 (Debian 15.18-0+deb12u1)`): the relay passes on its number alone (`15.18`). It answers
a TLS request with `N` (no TLS), as a server without TLS does.

    with RedshiftFront(pg_database.port) as front:   # front.port: where the driver connects
"""

from __future__ import annotations

import re
import socket
import struct
import threading
from typing import Optional

SSL_REQUEST, GSSENC_REQUEST, PROTOCOL_3 = 80877103, 80877104, 196608
REDSHIFT_ONLY = {"client_protocol_version", "driver_version", "os_version", "driver_discovery_version",
                 "plugin_name", "idp_type", "provider_name", "identity_namespace", "token_type",
                 "idc_client_display_name"}


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


class RedshiftFront:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.startup_params: list[dict[str, str]] = []  # what each session's driver sent, Redshift's included
        self.tls_requests = 0
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def __enter__(self) -> "RedshiftFront":
        t = threading.Thread(target=self._accept, name="redshift-front", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        with self._lock:  # shutdown (not close) wakes the threads blocked in accept() and recv()
            for s in [self._listener, *self._sockets]:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        for t in self._threads:
            t.join(timeout=10)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.append(client)
            t = threading.Thread(target=self._session, args=(client,), daemon=True)
            t.start()
            self._threads.append(t)

    def _session(self, client: socket.socket) -> None:
        server: Optional[socket.socket] = None
        try:
            while True:
                length, code = struct.unpack("!ii", _read_exact(client, 8))
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    self.tls_requests += code == SSL_REQUEST
                    client.sendall(b"N")
                    continue
                body = _read_exact(client, length - 8)
                break
            if code != PROTOCOL_3:
                return
            parts = body.split(b"\0")
            params = {parts[i].decode(): parts[i + 1].decode() for i in range(0, len(parts) - 2, 2) if parts[i]}
            self.startup_params.append(params)
            kept = b"".join(k.encode() + b"\0" + v.encode() + b"\0"
                            for k, v in params.items() if k not in REDSHIFT_ONLY)
            msg = struct.pack("!ii", 8 + len(kept) + 1, PROTOCOL_3) + kept + b"\0"
            server = socket.create_connection(self.upstream, timeout=30)
            server.settimeout(None)
            with self._lock:
                self._sockets.append(server)
            server.sendall(msg)
            back = threading.Thread(target=self._from_server, args=(server, client), daemon=True)
            back.start()
            self._pipe(client, server)
            back.join(timeout=30)
        except (ConnectionError, OSError, struct.error):
            pass
        finally:
            for s in (client, server):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass

    def _from_server(self, server: socket.socket, client: socket.socket) -> None:
        """Messages up to the first ReadyForQuery one by one (server_version made plain), then bytes."""
        try:
            while True:
                kind = _read_exact(server, 1)
                length = struct.unpack("!i", _read_exact(server, 4))[0]
                body = _read_exact(server, length - 4)
                if kind == b"S" and body.startswith(b"server_version\0"):
                    value = body[len(b"server_version\0"):-1].decode()
                    plain = re.match(r"\d+(?:\.\d+)*", value)
                    body = b"server_version\0" + (plain.group(0) if plain else value).encode() + b"\0"
                client.sendall(kind + struct.pack("!i", len(body) + 4) + body)
                if kind == b"Z":
                    break
        except (ConnectionError, OSError, struct.error):
            try:
                client.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return
        self._pipe(server, client)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
