"""A real OCI registry of the test's own (Debian's docker-registry, the CNCF distribution
server), on a free loopback port with its own storage, and images pushed to it through the
registry HTTP API (blob uploads and manifest PUTs with urllib: no Docker engine needed).

With `token_auth`, the registry answers like most public ones do: 401 with a Bearer challenge
naming a token realm; the realm is a small token service run here, which signs JSON Web Tokens
(RS256, with openssl) that the registry verifies against the service's certificate.

The registry tests/docker_env.py runs on 127.0.0.1:5000 for the docker target is never used.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
SERVICE, ISSUER = "modelgate-test-registry", "modelgate-test-issuer"


class Unavailable(Exception):
    """No docker-registry (or openssl) on this machine: the tests skip with this reason."""


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenService:
    """The Bearer token realm: grants what a request's scope asks for while `grant` is true,
    nothing (an empty access list) once it is false."""

    work: Path
    grant: bool = True
    requests: list[dict[str, list[str]]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        key, cert = self.work / "token.key", self.work / "token.pem"
        subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
                *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=modelgate-test-issuer"),
            ],
            check=True,
            capture_output=True,
        )
        der = subprocess.run(
            ["openssl", "x509", "-in", str(cert), "-outform", "DER"],
            check=True,
            capture_output=True,
        ).stdout
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                service.requests.append(query)
                body = json.dumps({"token": service.token(query, der, key)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def token(self, query: dict[str, list[str]], der: bytes, key: Path) -> str:
        access = []
        for scope in query.get("scope", []) if self.grant else []:
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": "", "aud": query.get("service", [""])[0]}
        claims |= {"exp": now + 300, "nbf": now - 10, "iat": now, "jti": f"{now}-{len(access)}"}
        header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(der).decode()]}
        claims["access"] = access
        signed = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(key)],
            input=signed.encode(),
            check=True,
            capture_output=True,
        ).stdout
        return f"{signed}.{_b64url(signature)}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    process: subprocess.Popen
    log: Path
    tokens: TokenService | None = None

    # -- the registry HTTP API, as a client that pushes ------------------------------------

    def request(
        self, method: str, url: str, data: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One request; a Bearer challenge is answered with a push-and-pull token first."""
        if url.startswith("/"):
            url = f"http://{self.host}{url}"
        headers = dict(headers or {})
        for _ in range(2):
            status, answer, body = _send(method, url, data, headers)
            challenge = answer.get("Www-Authenticate", "")
            if status != 401 or not challenge.startswith("Bearer "):
                return status, answer, body
            params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            scope = re.sub(r":[a-z,*]+$", ":pull,push", params["scope"])
            query = urllib.parse.urlencode({"service": params["service"], "scope": scope})
            _, _, token = _send("GET", f"{params['realm']}?{query}", None, {})
            headers["Authorization"] = f"Bearer {json.loads(token)['token']}"
        return status, answer, body

    def push_blob(self, repository: str, data: bytes) -> str:
        digest = _sha256(data)
        status, answer, body = self.request("POST", f"/v2/{repository}/blobs/uploads/", b"")
        assert status == 202, (status, body)
        location = urllib.parse.urljoin(f"http://{self.host}/", answer["Location"])
        separator = "&" if "?" in location else "?"
        status, _, body = self.request(
            "PUT",
            f"{location}{separator}digest={digest}",
            data,
            {"Content-Type": "application/octet-stream"},
        )
        assert status == 201, (status, body)
        return digest

    def push_manifest(self, repository: str, tag: str, manifest: dict, media_type: str) -> str:
        """PUT the manifest under `tag`; its digest, as computed here and as the registry says."""
        payload = json.dumps(manifest, indent=3).encode()  # bytes no client would re-create
        status, answer, body = self.request(
            "PUT", f"/v2/{repository}/manifests/{tag}", payload, {"Content-Type": media_type}
        )
        assert status == 201, (status, body)
        assert answer["Docker-Content-Digest"] == _sha256(payload)
        return _sha256(payload)

    def push_image(self, repository: str, tag: str, seed: str) -> tuple[str, int]:
        """A small single-platform image whose content depends on `seed`: (digest, size)."""
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "config": {"Labels": {"seed": seed}}}
        ).encode()
        layer = f"layer for {seed}\n".encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": self.push_blob(repository, config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": OCI_LAYER,
                    "digest": self.push_blob(repository, layer),
                    "size": len(layer),
                }
            ],
        }
        digest = self.push_manifest(repository, tag, manifest, OCI_MANIFEST)
        return digest, len(json.dumps(manifest, indent=3).encode())

    def push_index(self, repository: str, tag: str, seed: str) -> str:
        """An image index (two platforms) under `tag`; its digest is what a pin must hold."""
        entries = []
        for architecture in ("amd64", "arm64"):
            digest, size = self.push_image(repository, f"{tag}-{architecture}", seed + architecture)
            entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": size,
                    "platform": {"architecture": architecture, "os": "linux"},
                }
            )
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        return self.push_manifest(repository, tag, index, OCI_INDEX)

    def stop(self, tokens_too: bool = True) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if tokens_too and self.tokens is not None:
            self.tokens.stop()


def _send(
    method: str, url: str, data: bytes | None, headers: dict
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as answer:
        with answer:
            return answer.code, dict(answer.headers), answer.read()


def start(work: Path, token_auth: bool = False, realm: str | None = None) -> Registry:
    """A registry of its own under `work`; with `token_auth`, behind the token service (or
    behind `realm`, a token realm URL the test chooses)."""
    if not shutil.which("docker-registry"):
        raise Unavailable("docker-registry is not installed (Debian package docker-registry)")
    if token_auth and not shutil.which("openssl"):
        raise Unavailable("openssl is not installed: the token service signs with it")
    work.mkdir(parents=True, exist_ok=True)
    tokens = TokenService(work) if token_auth else None
    auth = ""
    if tokens is not None:
        started = tokens.start()  # its certificate is what the registry trusts
        given = realm or started
        auth = (
            f"auth:\n  token:\n    realm: {given}\n    service: {SERVICE}\n"
            f"    issuer: {ISSUER}\n    rootcertbundle: {work / 'token.pem'}\n"
        )
    for _ in range(3):  # a free port can be taken between the probe and the bind
        host = f"127.0.0.1:{_free_port()}"
        config = work / "registry.yml"
        config.write_text(
            "version: 0.1\nlog: {level: warn}\n"
            f"storage:\n  filesystem: {{rootdirectory: {work / 'storage'}}}\n"
            f"http:\n  addr: {host}\n{auth}"
        )
        log = work / "registry.log"
        with log.open("wb") as stream:
            process = subprocess.Popen(
                ["docker-registry", "serve", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=stream,
            )
        registry = Registry(host, process, log, tokens)
        if _answers(registry):
            return registry
        registry.stop(tokens_too=False)
    if tokens is not None:
        tokens.stop()
    raise Unavailable(f"docker-registry did not start; see {work / 'registry.log'}")


def _answers(registry: Registry, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and registry.process.poll() is None:
        try:
            status, _, _ = _send("GET", f"http://{registry.host}/v2/", None, {})
        except OSError:
            time.sleep(0.1)
            continue
        return status in (200, 401)
    return False
