"""A real S3-compatible server on 127.0.0.1 for the evidence-store and pgBackRest tests: moto's
S3 served over TLS, in a thread of the test process, stopped by the test. Its certificate is
self-signed for 127.0.0.1 and written to `ca_file`, so a client can keep verification on by
trusting that file (pgBackRest does; the evidence-store tests turn verification off).

It answers one request at a time: moto checks `If-None-Match: *` and then writes, which is
atomic only when requests do not interleave. S3 itself makes the conditional write atomic; a
server that serves one request at a time keeps that guarantee for the tests."""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

import scratch


@dataclass
class S3Server:
    endpoint: str
    key_id: str
    secret: str
    ca_file: Path

    @property
    def host_port(self) -> str:
        return self.endpoint.removeprefix("https://")

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.key_id, aws_secret_access_key=self.secret,
                            verify=False, config=Config(s3={"addressing_style": "path"}))


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA) and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            # pgBackRest matches the host against DNS names only, so the address is one too
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                 x509.DNSName("127.0.0.1")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "s3-cert.pem", folder / "s3-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    cert_file.chmod(0o644)
    return cert_file, key_file


def _closing_tls(close: Callable[[Any], None]) -> Callable[[Any], None]:
    """Say close_notify before closing a connection: the server answers in HTTP/1.0 and closes,
    and pgBackRest (OpenSSL 3) takes a TLS connection that just ends for an error and retries
    the request ("unexpected eof while reading")."""
    def shutdown_request(request: Any) -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            request.settimeout(2)
            request.unwrap()
        close(request)

    return shutdown_request


@contextmanager
def s3_server(*, threaded: bool = False) -> Iterator[S3Server]:
    import urllib3
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from moto.server import DomainDispatcherApplication, create_backend_app

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = Path(tempfile.mkdtemp(prefix="spectral-s3-", dir=scratch.root()))
    folder.chmod(0o755)     # pgBackRest, as the server user, reads the certificate
    cert_file, key_file = _certificate(folder)
    app = DomainDispatcherApplication(create_backend_app)
    server: BaseWSGIServer = make_server("127.0.0.1", port, app, threaded=threaded,
                                         request_handler=MotoRequestHandler,
                                         ssl_context=(str(cert_file), str(key_file)))
    # answers are written in pieces; without TCP_NODELAY each waits for the client's delayed
    # ACK (40 ms a request), which made a pgbackrest verify of 800 files take 36 s
    server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server.shutdown_request = _closing_tls(server.shutdown_request)  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield S3Server(f"https://127.0.0.1:{port}", "AKIA" + secrets.token_hex(8).upper(),
                       secrets.token_hex(20), cert_file)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)
