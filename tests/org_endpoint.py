"""A real HTTPS OTLP endpoint for tests: the org side of forwarding.

A throwaway CA and a server certificate for localhost/127.0.0.1 are made with
`cryptography`; aitrack trusts them only through the profile's `ca_bundle`. The endpoint
checks the token header (a path may expect a token of its own, `path_auth`), records every
request (headers, decompressed body, decoded OTLP message) and answers as scripted: 503
with Retry-After, 429, 400, 403, partialSuccess, or nothing at all while it is down
(`stop()`, then `start()` again on the same port).

Test modules load it with `pytest_plugins = ("org_endpoint",)`. PYTEST_DONT_REWRITE: it
holds no assertions, and is imported by those modules before pytest registers it.
"""

from __future__ import annotations

import datetime
import gzip
import json
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from aitrack.egress import otlp

TOKEN = "org-token-Zq8vV3xKc9"
LOGS_TOKEN = "org-logs-token-Wm4pT7yHd2"  # a second key, for logs only (CloudWatch Logs)


class Authority:
    """A throwaway certificate authority; `pem` is what goes in endpoint.ca_bundle."""

    def __init__(self, directory: Path, name: str = "aitrack test CA"):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = directory / "ca.pem"
        self.pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, hosts: tuple[str, ...] = ("localhost",),
              ips: tuple[str, ...] = ("127.0.0.1",)) -> tuple[Path, Path]:
        import ipaddress

        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        names = [x509.DNSName(h) for h in hosts] + [x509.IPAddress(ipaddress.ip_address(i))
                                                    for i in ips]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_path = self.directory / f"server-{cert.serial_number}.pem"
        key_path = self.directory / f"server-{cert.serial_number}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_path, key_path


@dataclass
class Received:
    """One request as the endpoint saw it."""

    at: float
    path: str
    signal: str | None
    headers: dict[str, str]  # lower-case names
    wire: bytes  # as sent (gzip)
    body: bytes  # decompressed
    content_type: str
    authorized: bool
    status: int  # what the endpoint answered
    message: object | None = None  # the decoded OTLP export request
    header_lines: list[tuple[str, str]] = field(default_factory=list)  # as sent, in order

    @property
    def blocks(self) -> list:
        """The resource blocks (resource_metrics / resource_logs / resource_spans)."""
        if self.message is None:
            return []
        for name in ("resource_metrics", "resource_logs", "resource_spans"):
            if self.message.DESCRIPTOR.fields_by_name.get(name):
                return list(getattr(self.message, name))
        return []

    def resource_attributes(self) -> list[dict[str, str]]:
        return [{kv.key: kv.value.string_value for kv in b.resource.attributes}
                for b in self.blocks]


@dataclass
class Reply:
    status: int = 200
    retry_after: str | None = None
    message: str = ""  # "{auth}" in it echoes the auth header the request carried
    partial: tuple[int, str] | None = None  # (rejected, error message) on a 200


@dataclass
class OrgEndpoint:
    cert: Path
    key: Path
    auth_header: str = "authorization"
    auth_value: str | None = f"Bearer {TOKEN}"
    path_auth: dict[str, str | None] = field(default_factory=dict)  # path -> its own auth_value
    port: int = 0
    delay_s: float = 0.0  # before answering each request
    trickle_s: float = 0.0  # the answer a byte at a time, this long apart (a trickling proxy)
    requests: list[Received] = field(default_factory=list)
    tls_failures: int = 0
    script: deque = field(default_factory=deque)
    default: Reply = field(default_factory=Reply)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    connections: set = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def then(self, status: int, times: int = 1, **kw) -> OrgEndpoint:
        """Answer the next `times` requests with `status` (then the default)."""
        for _ in range(times):
            self.script.append(Reply(status, **kw))
        return self

    def always(self, status: int, **kw) -> OrgEndpoint:
        self.default = Reply(status, **kw)
        return self

    def accepted(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.authorized and 200 <= r.status < 300]

    def blocks(self, signal: str | None = None) -> list:
        return [b for r in self.accepted() if signal in (None, r.signal) for b in r.blocks]

    def wait_for(self, predicate, timeout: float = 20.0) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate(self):
                return True
            time.sleep(0.02)
        return False

    # ------------------------------------------------------------ up and down

    def start(self) -> OrgEndpoint:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        endpoint = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address) -> None:
                pass  # a client that gave up on TLS is counted in tls_failures, not printed

            def get_request(self):
                sock, addr = self.socket.accept()
                tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                return tls, addr

        self.server = Server(("127.0.0.1", self.port), _handler(endpoint))
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: the port refuses connections and open keep-alive connections are cut."""
        if self.server is None:
            return
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for conn in list(self.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.server = None


def _handler(endpoint: OrgEndpoint):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def setup(self) -> None:
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):
                with endpoint.lock:
                    endpoint.tls_failures += 1
                self.request.close()
                raise
            with endpoint.lock:
                endpoint.connections.add(self.request)
            super().setup()

        def finish(self) -> None:
            with endpoint.lock:
                endpoint.connections.discard(self.request)
            super().finish()

        def do_POST(self) -> None:
            wire = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            body = gzip.decompress(wire) if headers.get("content-encoding") == "gzip" else wire
            ctype = headers.get("content-type", "")
            signal = {f"/v1/{s}": s for s in otlp.SIGNALS}.get(self.path)
            given = headers.get(endpoint.auth_header.lower())
            expected = endpoint.path_auth.get(self.path, endpoint.auth_value)
            authorized = expected is None or given == expected
            with endpoint.lock:
                reply = endpoint.script.popleft() if endpoint.script else endpoint.default
            if not authorized:
                reply = Reply(401 if given is None else 403, message="bad token")
            reply = replace(reply, message=reply.message.replace("{auth}", given or ""))
            message = None
            if signal and ctype in (otlp.JSON, otlp.PROTOBUF):
                message = otlp.decode(signal, body, ctype)
            with endpoint.lock:
                endpoint.requests.append(Received(time.time(), self.path, signal, headers, wire,
                                                  body, ctype, authorized, reply.status, message,
                                                  list(self.headers.items())))
            if endpoint.delay_s:
                time.sleep(endpoint.delay_s)
            self._answer(signal, ctype, reply)

        def _answer(self, signal: str | None, ctype: str, reply: Reply) -> None:
            if reply.status == 200:
                data = _success(signal, ctype, reply.partial)
            elif ctype == otlp.PROTOBUF:
                from google.rpc import status_pb2

                data = status_pb2.Status(code=3, message=reply.message).SerializeToString()
            else:
                ctype = otlp.JSON
                data = json.dumps({"code": 3, "message": reply.message}).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", ctype or otlp.JSON)
            self.send_header("Content-Length", str(len(data)))
            if reply.retry_after is not None:
                self.send_header("Retry-After", reply.retry_after)
            if endpoint.trickle_s:
                self._headers_buffer.append(b"\r\n")
                answer = b"".join(self._headers_buffer) + data
                self._headers_buffer = []
                for i in range(len(answer)):
                    try:
                        self.wfile.write(answer[i:i + 1])
                        self.wfile.flush()
                    except OSError:
                        return  # the client gave up
                    time.sleep(endpoint.trickle_s)
                return
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _success(signal: str | None, ctype: str, partial: tuple[int, str] | None) -> bytes:
    if ctype == otlp.JSON or signal is None:
        if partial is None:
            return b"{}"
        key = {"metrics": "rejectedDataPoints", "logs": "rejectedLogRecords",
               "traces": "rejectedSpans"}[signal]
        return json.dumps({"partialSuccess": {key: str(partial[0]),
                                              "errorMessage": partial[1]}}).encode()
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    cls, rejected = {
        "metrics": (metrics_service_pb2.ExportMetricsServiceResponse, "rejected_data_points"),
        "logs": (logs_service_pb2.ExportLogsServiceResponse, "rejected_log_records"),
        "traces": (trace_service_pb2.ExportTraceServiceResponse, "rejected_spans"),
    }[signal]
    response = cls()
    if partial is not None:
        setattr(response.partial_success, rejected, partial[0])
        response.partial_success.error_message = partial[1]
    return response.SerializeToString()


def profile_toml(org: OrgEndpoint, ca: Path | None, account: str, *,
                 protocol: str = "http/protobuf", auth_header: str = "Authorization",
                 auth_scheme: str = "Bearer", flush_timeout_s: float = 2,
                 signals: tuple[str, ...] = ("metrics", "logs"), extra: str = "",
                 attributes: dict[str, str] | None = None,
                 forward: tuple[str, ...] | None = None) -> str:
    """A managed profile pointing at `org`; `forward`: the egress policy's families (unset:
    the default, the tools' own telemetry and aitrack's own metrics)."""
    attributes = attributes if attributes is not None else {
        "team.id": "platform-eng", "cost_center": "CC-4200", "user.email": "dev@example.com"}
    lines = ["[endpoint]", f'url = "{org.url}"', f'protocol = "{protocol}"',
             f'auth_header = "{auth_header}"', f'auth_scheme = "{auth_scheme}"',
             f'keychain_account = "{account}"', f"signals = {json.dumps(list(signals))}",
             f"flush_timeout_s = {flush_timeout_s}"]
    if forward is not None:
        lines.append(f"forward = {json.dumps(list(forward))}")
    if ca is not None:
        lines.append(f'ca_bundle = "{ca}"')
    lines += [extra, "", "[attributes]"]
    lines += [f'"{k}" = "{v}"' for k, v in attributes.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority(tmp_path / "pki")


@pytest.fixture
def org(authority: Authority):
    """The org endpoint, up, expecting `Authorization: Bearer TOKEN`."""
    cert, key = authority.issue()
    endpoint = OrgEndpoint(cert, key).start()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def token(keychain_account: str) -> str:
    """TOKEN stored in the real keychain under the test's own account."""
    from aitrack.config import keychain

    keychain.set_token(keychain_account, TOKEN)
    return TOKEN


@pytest.fixture
def logs_token(logs_account: str) -> str:
    """LOGS_TOKEN stored in the real keychain under the test's second account."""
    from aitrack.config import keychain

    keychain.set_token(logs_account, LOGS_TOKEN)
    return LOGS_TOKEN


# ---------------------------------------------------------------- the tracked side

# A tracked child for `aitrack run -- python CHILD`: sends SEND OTLP/JSON metrics payloads
# (100 input tokens each, resource attribute seq=i), after the first LOGS of them a logs
# payload each (seq=log-i), with the env the wrapper gave it, then waits as told and sends
# THEN more metrics payloads. The env variables below steer it.
CHILD = r'''
import json, os, sys, time, urllib.request
key, value = os.environ["OTEL_EXPORTER_OTLP_HEADERS"].split("=", 1)
base = os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
pad = int(os.environ.get("PAD", "0"))
def send(signal, seq):
    attrs = [{"key": "seq", "value": {"stringValue": seq}}]
    if pad:
        attrs.append({"key": "pad", "value": {"stringValue": os.urandom(pad // 2).hex()}})
    if signal == "logs":
        body = {"resourceLogs": [{"resource": {"attributes": attrs}, "scopeLogs": [
            {"logRecords": [{"timeUnixNano": str(time.time_ns()),
                             "body": {"stringValue": "event"}}]}]}]}
    else:
        point = {"sum": 100, "count": "1", "timeUnixNano": str(time.time_ns()), "attributes": [
            {"key": "gen_ai.token.type", "value": {"stringValue": "input"}},
            {"key": "gen_ai.response.model", "value": {"stringValue": "m"}}]}
        body = {"resourceMetrics": [{"resource": {"attributes": attrs}, "scopeMetrics": [
            {"metrics": [{"name": "gen_ai.client.token.usage",
                          "histogram": {"aggregationTemporality": 1, "dataPoints": [point]}}]}]}]}
    request = urllib.request.Request(f"{base}/v1/{signal}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", key: value})
    assert urllib.request.urlopen(request).status == 200
send_count = int(os.environ.get("SEND", "1"))
for i in range(send_count):
    send("metrics", str(i))
    if i < int(os.environ.get("LOGS", "0")):
        send("logs", f"log-{i}")
    time.sleep(float(os.environ.get("EVERY", "0")))
if os.environ.get("SENT_MARKER"):
    with open(os.environ["SENT_MARKER"], "w") as fh:
        fh.write(str(os.getpid()))
wait_for = os.environ.get("WAIT_FOR")
deadline = time.time() + float(os.environ.get("WAIT_MAX", "20"))
while wait_for and not os.path.exists(wait_for) and time.time() < deadline:
    time.sleep(0.02)
for i in range(send_count, send_count + int(os.environ.get("THEN", "0"))):
    send("metrics", str(i))
time.sleep(float(os.environ.get("LINGER", "0")))
if os.environ.get("EXIT_AT"):
    with open(os.environ["EXIT_AT"], "w") as fh:
        fh.write(repr(time.time()))
sys.exit(int(os.environ.get("EXIT_WITH", "0")))
'''


@pytest.fixture
def child(tmp_path: Path) -> list[str]:
    """`aitrack run -- ` arguments for CHILD."""
    import sys

    path = tmp_path / "child.py"
    path.write_text(CHILD)
    return [sys.executable, str(path)]


def metrics_request(seq: str, tokens: int = 100, pad: int = 0):
    """An OTLP metrics export with one resource block (attribute seq) and gen_ai usage."""
    import os

    attrs = [{"key": "seq", "value": {"stringValue": seq}}]
    if pad:
        attrs.append({"key": "pad", "value": {"stringValue": os.urandom(pad // 2).hex()}})
    point = {"sum": tokens, "count": "1", "timeUnixNano": str(time.time_ns()), "attributes": [
        {"key": "gen_ai.token.type", "value": {"stringValue": "input"}},
        {"key": "gen_ai.response.model", "value": {"stringValue": "m"}}]}
    data = {"resourceMetrics": [{"resource": {"attributes": attrs}, "scopeMetrics": [{"metrics": [
        {"name": "gen_ai.client.token.usage",
         "histogram": {"aggregationTemporality": 1, "dataPoints": [point]}}]}]}]}
    return otlp.decode("metrics", json.dumps(data).encode(), otlp.JSON)


def logs_request(seq: str, pad: int = 0):
    import os

    attrs = [{"key": "seq", "value": {"stringValue": seq}}]
    body = os.urandom(pad // 2).hex() if pad else "event"
    data = {"resourceLogs": [{"resource": {"attributes": attrs}, "scopeLogs": [{"logRecords": [
        {"timeUnixNano": str(time.time_ns()), "body": {"stringValue": body}}]}]}]}
    return otlp.decode("logs", json.dumps(data).encode(), otlp.JSON)


def queue(ledger_path: Path, seqs, signal: str = "metrics", pad: int = 0,
          session_id: str | None = None) -> str:
    """Count and queue payloads as a tracked run would (ledger.accept), in-process."""
    import hashlib
    import os

    from aitrack.adapters.generic import telemetry as generic
    from aitrack.store import ledger

    db = ledger.connect(ledger_path)
    if session_id is None:
        session_id = os.urandom(16).hex()
        ledger.start_run(db, ledger.Run(session_id, "fake", time.time(), "/", "p", {},
                                        "receiver"))
    for seq in seqs:
        request = (metrics_request(seq, pad=pad) if signal == "metrics"
                   else logs_request(seq, pad=pad))
        body = request.SerializeToString()
        payload = ledger.Accepted(signal, body, hashlib.sha256(body + os.urandom(8)).digest(),
                                  list(otlp.points(request)) if signal == "metrics" else [],
                                  receiver=session_id, run_id=session_id)
        ledger.accept(db, payload, generic)
    db.close()
    return session_id


def seqs_received(org: OrgEndpoint, signal: str | None = None) -> list[str]:
    """The seq attribute of every resource block the endpoint accepted, in arrival order
    (the child's blocks: aitrack's own metrics, service.name "aitrack", have none)."""
    return [attrs.get("seq") for r in org.accepted() if signal in (None, r.signal)
            for attrs in r.resource_attributes() if attrs.get("service.name") != "aitrack"]


def outbox_rows(ledger_path: Path) -> list[tuple]:
    import sqlite3

    db = sqlite3.connect(ledger_path)
    try:
        return db.execute("SELECT id, signal, state, attempts, last_error FROM outbox "
                          "ORDER BY id").fetchall()
    finally:
        db.close()


def usage_total(ledger_path: Path) -> int:
    import sqlite3

    db = sqlite3.connect(ledger_path)
    try:
        return db.execute("SELECT COALESCE(SUM(tokens), 0) FROM usage").fetchone()[0]
    finally:
        db.close()
