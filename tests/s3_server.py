"""A real S3-compatible server on 127.0.0.1 for the evidence-store tests: moto's S3 served over
TLS (a self-signed certificate, so clients turn verification off for it), in a thread of the
test process, stopped by the test.

It answers one request at a time: moto checks `If-None-Match: *` and then writes, which is
atomic only when requests do not interleave. S3 itself makes the conditional write atomic; a
server that serves one request at a time keeps that guarantee for the tests."""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server


@dataclass
class S3Server:
    endpoint: str
    key_id: str
    secret: str

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.key_id, aws_secret_access_key=self.secret,
                            verify=False, config=Config(s3={"addressing_style": "path"}))


@contextmanager
def s3_server() -> Iterator[S3Server]:
    import urllib3
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from moto.server import DomainDispatcherApplication, create_backend_app

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = DomainDispatcherApplication(create_backend_app)
    server: BaseWSGIServer = make_server("127.0.0.1", port, app, threaded=False,
                                         request_handler=MotoRequestHandler,
                                         ssl_context="adhoc")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield S3Server(f"https://127.0.0.1:{port}", "AKIA" + secrets.token_hex(8).upper(),
                       secrets.token_hex(20))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
