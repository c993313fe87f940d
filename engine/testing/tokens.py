"""Loopback OAuth2 token endpoints, for testing auth hooks with the real google-auth and azure-identity.

`TokenServer` answers, on 127.0.0.1:

- Google's token endpoint (plain HTTP): a service-account JWT grant, whose RS256 signature, issuer,
  audience and scope it checks against the key of a service-account file it wrote
  (`google_service_account`). Point google-auth at it through that file's ``token_uri``.
- A Microsoft Entra ID authority (HTTPS, with a certificate for 127.0.0.1 it makes and trusts through
  ``ca_file``): the OpenID configuration and the client-credentials token endpoint, for an app it
  registered (`azure_app`). Point azure-identity at it with ``authority=azure_authority``,
  ``disable_instance_discovery=True`` and ``connection_verify=ca_file``.

Tokens live ``expires_in`` seconds; `fail_next` makes the next fetches fail with a status, as a real
endpoint does; ``fetches`` counts them; `valid` tells whether a token was issued here and has not
expired, so a fake API can check what it is sent. Needs ``cryptography`` (google-auth and azure-identity
bring it). The server stops after ``max_seconds``.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import ssl
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

GOOGLE_AUDIENCE = "https://oauth2.googleapis.com/token"
GOOGLE_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass(frozen=True)
class AzureApp:
    """An app registered with the fake authority."""

    tenant: str
    client_id: str
    client_secret: str


class TokenServer:
    """Fake Google and Entra ID token endpoints on 127.0.0.1 (see the module doc)."""

    def __init__(self, *, expires_in: int = 3600, max_seconds: float = 600.0) -> None:
        self.expires_in = expires_in
        self.max_seconds = max_seconds
        self.fetches: Counter[str] = Counter()  # "google" / "azure": token requests answered with a token
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self._issued: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self._failures: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._dir = Path(tempfile.mkdtemp(prefix="genai-tokens-"))
        self._google_keys: dict[str, Any] = {}  # client_email -> public key
        self._apps: dict[tuple[str, str], AzureApp] = {}
        self._servers: list[ThreadingHTTPServer] = []
        self._timer: threading.Timer | None = None
        self.google_url = ""
        self.azure_authority = ""
        self.ca_file = self._dir / "ca.pem"

    # -- setup ---------------------------------------------------------------------------------------------

    def start(self) -> TokenServer:
        handler = _handler(self)
        plain = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        secure = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert, key = self._certificate()
        context.load_cert_chain(cert, key)
        secure.socket = context.wrap_socket(secure.socket, server_side=True)
        for server in (plain, secure):
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                             name="TokenServer").start()
            self._servers.append(server)
        self.google_url = f"http://127.0.0.1:{plain.server_address[1]}"
        self.azure_authority = f"https://127.0.0.1:{secure.server_address[1]}"
        self._timer = threading.Timer(self.max_seconds, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _certificate(self) -> tuple[Path, Path]:
        """A self-signed certificate for 127.0.0.1, written as ``ca_file`` (clients trust it) and its key."""
        import datetime as dt
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "genai-engine test authority")])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                               critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        key_file = self._dir / "key.pem"
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        self.ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return self.ca_file, key_file

    def google_service_account(self, email: str = "engine-test@demo-project.iam.gserviceaccount.com",
                               project: str = "demo-project") -> Path:
        """A service-account key file whose ``token_uri`` is this server; its key is what the server checks."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._google_keys[email] = key.public_key()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        path = self._dir / f"{email.split('@')[0]}.json"
        path.write_text(json.dumps({
            "type": "service_account", "project_id": project, "private_key_id": "local-key-1", "private_key": pem,
            "client_email": email, "client_id": "1", "token_uri": f"{self.google_url}/token",
        }), encoding="utf-8")
        return path

    def azure_app(self, tenant: str = "demo-tenant", client_id: str = "demo-client") -> AzureApp:
        """Register an app with the fake authority; its secret is what the token endpoint checks."""
        app = AzureApp(tenant, client_id, f"secret-{next(self._numbers)}-{time.monotonic_ns()}")
        self._apps[(tenant, client_id)] = app
        return app

    # -- behaviour -----------------------------------------------------------------------------------------

    def fail_next(self, status: int, error: str = "invalid_grant", times: int = 1) -> None:
        """The next ``times`` token requests fail with ``status`` and an OAuth2 error body."""
        with self._lock:
            self._failures += [(status, error)] * times

    def valid(self, token: str) -> bool:
        """Whether ``token`` was issued here and has not expired."""
        with self._lock:
            expiry = self._issued.get(token)
        return expiry is not None and expiry > time.time()

    def expire_all(self) -> None:
        """Every token issued so far stops being valid (as if revoked)."""
        with self._lock:
            self._issued = {token: 0.0 for token in self._issued}

    def _take_failure(self) -> tuple[int, str] | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _issue(self, kind: str) -> dict[str, Any]:
        with self._lock:
            token = f"{'ya29' if kind == 'google' else 'eyJ0'}.local-{kind}-{next(self._numbers)}"
            self._issued[token] = time.time() + self.expires_in
            self.fetches[kind] += 1
        return {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}

    # -- the endpoints -------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.requests.append((method, path))
        parts = [p for p in path.split("/") if p]
        if method == "POST" and parts == ["token"]:
            return self._google(form)
        if method == "GET" and len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            base = f"{self.azure_authority}/{parts[0]}"
            return 200, {"authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                         "token_endpoint": f"{base}/oauth2/v2.0/token", "issuer": f"{base}/v2.0"}
        if method == "POST" and len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
            return self._azure(parts[0], form)
        return 404, {"error": "not_found", "error_description": f"no route {method} {path}"}

    def _google(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != JWT_GRANT:
            return 400, {"error": "unsupported_grant_type", "error_description": "expected a JWT bearer grant"}
        problem = self._check_jwt(form.get("assertion", ""))
        if problem:
            return 400, {"error": "invalid_grant", "error_description": problem}
        failure = self._take_failure()
        if failure is not None:
            return failure[0], {"error": failure[1], "error_description": "the token endpoint refused"}
        return 200, self._issue("google")

    def _check_jwt(self, assertion: str) -> str | None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            head, body, signature = assertion.split(".")
            claims = json.loads(_b64(body))
            header = json.loads(_b64(head))
        except ValueError:
            return "the assertion is not a JWT"
        key = self._google_keys.get(claims.get("iss", ""))
        if header.get("alg") != "RS256" or key is None:
            return f"unknown service account {claims.get('iss')!r} or algorithm {header.get('alg')!r}"
        try:
            key.verify(_b64(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return "invalid JWT signature"
        if claims.get("aud") != GOOGLE_AUDIENCE or GOOGLE_SCOPE not in str(claims.get("scope", "")).split():
            return f"wrong audience or scope: {claims.get('aud')!r}, {claims.get('scope')!r}"
        if not claims.get("iat", 0) - 300 <= time.time() <= claims.get("exp", 0):
            return "the assertion has expired"
        return None

    def _azure(self, tenant: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        app = self._apps.get((tenant, form.get("client_id", "")))
        if form.get("grant_type") != "client_credentials" or app is None or form.get("client_secret") != \
                app.client_secret:
            return 401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret."}
        if form.get("scope") != "https://cognitiveservices.azure.com/.default":
            return 400, {"error": "invalid_scope", "error_description": f"unexpected scope {form.get('scope')!r}"}
        failure = self._take_failure()
        if failure is not None:
            return failure[0], {"error": failure[1], "error_description": "AADSTS50000: the authority refused"}
        issued = self._issue("azure")
        return 200, {**issued, "ext_expires_in": self.expires_in}


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _handler(tokens: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, method: str) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(min(length, 1 << 20)).decode("utf-8", "replace") if length else ""
            form = {k: v[0] for k, v in parse_qs(raw).items()}
            status, body = tokens.handle(method, urlsplit(self.path).path, form)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def handle_one_request(self) -> None:
            with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
                super().handle_one_request()

    return Handler
