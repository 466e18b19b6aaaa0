"""A Redshift-flavoured endpoint in front of the local PostgreSQL, for redshift-connector (the issue tests
Redshift against PostgreSQL: its driver speaks the wire protocol). Three things stand between that
driver (2.2.0) and a stock PostgreSQL 15, and this relay on 127.0.0.1 handles the two that live on the
wire; the third is the role:

1. Its startup packet carries parameters only Redshift knows (client_protocol_version, driver_version,
   os_version, driver_discovery_version, and plugin ones): PostgreSQL refuses the connection
   ("unrecognized configuration parameter"). The relay passes on only the parameters PostgreSQL
   knows. Without a `server_protocol_version` in the reply the driver falls back to the base
   (text) protocol, its documented behaviour against older servers.
2. It parses `server_version` with `packaging.version`: Debian's "15.18 (Debian 15.18-0+deb12u1)" is
   not a version to it. The relay sends the number alone ("15.18").
3. Its SCRAM-SHA-256 client fails against PostgreSQL with the locked scramp 1.4.18 (it passes the empty
   string after the mechanism list as a mechanism): the login is an md5 role (`md5=True`, Redshift's
   own default method), which PostgreSQL's pg_hba.conf here allows for the members of one group only.

TLS: the relay answers an SSLRequest with "N" (no TLS), so a client that requires TLS fails with the
driver's own "Server refuses SSL". Everything after the startup is relayed byte for byte.
"""

from __future__ import annotations

import socket
import struct
import threading

SSL_REQUEST = 80877103
# startup parameters PostgreSQL accepts that a client may send; the rest are Redshift's own
KEEP = {b"user", b"database", b"application_name", b"client_encoding", b"options", b"DateStyle", b"TimeZone",
        b"extra_float_digits", b"replication"}


def _read(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed")
        buf += chunk
    return buf


def _startup_packet(client: socket.socket) -> bytes:
    """The client's startup packet with only the parameters PostgreSQL knows (SSLRequest answered "N")."""
    while True:
        length = struct.unpack("!i", _read(client, 4))[0]
        body = _read(client, length - 4)
        if struct.unpack("!i", body[:4])[0] == SSL_REQUEST:
            client.sendall(b"N")
            continue
        parts = body[4:].split(b"\0")
        pairs = [(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2) if parts[i]]
        out = body[:4] + b"".join(k + b"\0" + v + b"\0" for k, v in pairs if k in KEEP) + b"\0"
        return struct.pack("!i", len(out) + 4) + out


class RedshiftWire:
    """Listens on 127.0.0.1 (free port, `.port`) and relays each connection to PostgreSQL on `upstream_port`."""

    def __init__(self, upstream_port: int, host: str = "127.0.0.1"):
        self.host = host
        self.upstream = (host, upstream_port)
        self._listener = socket.create_server((host, 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="redshift-wire", daemon=True).start()

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            open_now = list(self._open)
        for s in open_now:
            self._shut(s)

    def __enter__(self) -> "RedshiftWire":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _track(self, s: socket.socket) -> socket.socket:
        with self._lock:
            self._open.add(s)
        return s

    def _shut(self, s: socket.socket) -> None:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
        with self._lock:
            self._open.discard(s)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(self._track(client),), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            first = _startup_packet(client)
            upstream = self._track(socket.create_connection(self.upstream, timeout=10))
            upstream.settimeout(None)
            upstream.sendall(first)
        except (OSError, ConnectionError, struct.error):
            self._shut(client)
            return
        threading.Thread(target=self._server_to_client, args=(upstream, client), daemon=True).start()
        self._relay(client, upstream)

    def _server_to_client(self, upstream: socket.socket, client: socket.socket) -> None:
        try:
            while True:  # message by message up to ReadyForQuery (or an error): server_version as a number
                head = _read(upstream, 5)
                body = _read(upstream, struct.unpack("!i", head[1:])[0] - 4)
                if head[:1] == b"S" and body.startswith(b"server_version\0"):
                    body = b"server_version\0" + body.split(b"\0")[1].split(b" ")[0] + b"\0"
                    head = b"S" + struct.pack("!i", len(body) + 4)
                client.sendall(head + body)
                if head[:1] in (b"Z", b"E"):
                    break
        except (OSError, ConnectionError):
            self._shut(client)
            self._shut(upstream)
            return
        self._relay(upstream, client)

    def _relay(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._shut(src)
            self._shut(dst)
