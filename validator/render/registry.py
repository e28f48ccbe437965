"""A small client of the OCI distribution API: the digest a registry serves for a tag, and
the pushes that publish a model image (Repository, at the end).

What `modelgate images pin` needs: GET /v2/NAME/manifests/TAG accepting an OCI image
index, an OCI image manifest, a Docker manifest list or a Docker image manifest; the digest is
computed from the bytes received, and must equal the registry's Docker-Content-Digest when it
sends one; the anonymous Bearer token challenge (WWW-Authenticate: realm, service, scope) that
most registries answer a first request with.

https always: plain http only to a loopback host, where nothing crosses a network. No redirect
and no token realm leaves https for http, and a token is never sent to another host. Every
failure is a RegistryError that says what happened and what to do, never a traceback.

It lives outside render/ and cli/ because it is network I/O that neither the render stage (which
must stay offline and reproducible) nor the command line (which only parses and reports) should
hold; what it resolves, and where the result is written, is render/images.py's business.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import ipaddress
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import BinaryIO

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # what distribution itself accepts for a manifest
MAX_TOKEN_BYTES = 1024 * 1024
MAX_ERROR_BYTES = 64 * 1024
MAX_REDIRECTS = 5
DIGEST_ALGORITHMS = ("sha256", "sha384", "sha512")
USER_AGENT = "modelgate"
_REDIRECTS = (301, 302, 303, 307, 308)
_CHALLENGE_PARAMETER = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)="([^"]*)"')
_TOKEN = re.compile(r"[\x21-\x7e]+")  # a header value: no spaces, no line breaks


class RegistryError(Exception):
    """The registry could not give a digest: unreachable, no such tag, access refused, or an
    answer that cannot be trusted. `hint` says what to do."""

    def __init__(self, message: str, hint: str = "", *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.hint = hint
        self.unreachable = unreachable  # no answer at all: asking again for another tag is moot


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: Message
    body: bytes


def is_loopback(host: str) -> bool:
    """`host` ([user@]name[:port]) names this machine: localhost or a loopback address."""
    name = urllib.parse.urlsplit(f"//{host}").hostname or ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def base_url(host: str) -> str:
    return f"{'http' if is_loopback(host) else 'https'}://{host}"


def resolve(host: str, repository: str, tag: str, timeout: float = 30.0) -> str:
    """The digest (sha256:...) of the manifest or index `host` serves for REPOSITORY:TAG."""
    where = f"{host}/{repository}:{tag}"
    url = f"{base_url(host)}/v2/{repository}/manifests/{urllib.parse.quote(tag, safe='')}"
    accept = {"Accept": ", ".join(MANIFEST_TYPES)}
    reply = _get(url, accept, timeout, MAX_MANIFEST_BYTES)
    if reply.status == 401:
        token = _token(reply.headers.get("WWW-Authenticate", ""), host, repository, timeout)
        reply = _get(url, {**accept, "Authorization": f"Bearer {token}"}, timeout)
        if reply.status in (401, 403):
            raise _refused(host, repository, reply)
    _check_status(reply, where, host, repository)
    return manifest_digest(reply.body, reply.headers, where)


def manifest_digest(body: bytes, headers: Message, where: str) -> str:
    """sha256 of the manifest bytes, once they are known to be an image manifest or index and
    to match the registry's Docker-Content-Digest (when it sends one)."""
    media_type = _media_type(body, headers)
    if media_type not in MANIFEST_TYPES:
        raise RegistryError(
            f"{where} is {media_type or 'not a manifest'}, not an image index or manifest",
            "mirror the image with its manifest list (e.g. `skopeo copy --all`); schema 1 "
            "manifests have no stable digest",
        )
    check_declared_digest(body, headers.get("Docker-Content-Digest", ""), where)
    return f"sha256:{hashlib.sha256(body).hexdigest()}"


def check_declared_digest(body: bytes, declared: str, where: str) -> None:
    """The digest the registry declares for `body` must be the digest of `body`."""
    declared = declared.strip()
    if not declared:
        return
    algorithm, _, expected = declared.partition(":")
    if algorithm not in DIGEST_ALGORITHMS:
        raise RegistryError(
            f"{where}: the registry declares a digest modelgate cannot check ({_short(declared)})",
            "use a registry that names manifests by sha256",
        )
    actual = hashlib.new(algorithm, body).hexdigest()
    if actual != expected.lower():
        raise RegistryError(
            f"{where}: the registry declares {_short(declared)}, but the manifest it sent "
            f"hashes to {algorithm}:{actual}",
            "something between here and the registry changed the manifest; nothing was pinned",
        )


def _media_type(body: bytes, headers: Message) -> str:
    declared = headers.get_content_type()
    if declared in MANIFEST_TYPES:
        return declared
    try:  # some registries send application/json: the manifest names its own type
        manifest = json.loads(body)
    except ValueError:
        return declared
    inner = manifest.get("mediaType") if isinstance(manifest, dict) else None
    return inner if isinstance(inner, str) else declared


def _check_status(reply: _Reply, where: str, host: str, repository: str) -> None:
    if reply.status == 200:
        return
    said = _registry_message(reply.body)
    if reply.status == 404:
        raise RegistryError(
            f"{where} is unknown to the registry ({said or 'not found'})",
            "copy the upstream image into the mirror first (e.g. `skopeo copy --all`), or "
            "choose a version the mirror holds",
        )
    if reply.status in (401, 403):
        raise _refused(host, repository, reply)
    if reply.status == 429:
        raise RegistryError(
            f"{host} is limiting requests (HTTP 429) for {where}", "wait a little, then run again"
        )
    raise RegistryError(
        f"{host} answered HTTP {reply.status} for {where}{f' ({said})' if said else ''}",
        "check that imageMirror in templates/values.yaml names a registry (OCI distribution API)",
    )


def _refused(host: str, repository: str, reply: _Reply) -> RegistryError:
    said = _registry_message(reply.body)
    return RegistryError(
        f"{host} refused anonymous pull access to {repository} (HTTP {reply.status}"
        f"{f': {said}' if said else ''})",
        "modelgate pins through anonymous pull access: allow it for the mirror's "
        "repositories, or write the digests under `images:` in templates/values.yaml yourself",
    )


def _token(challenge: str, host: str, repository: str, timeout: float) -> str:
    """A Bearer token from the realm the registry's challenge names, asked for anonymously."""
    scheme, _, rest = challenge.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise RegistryError(
            f"{host} asks for credentials ({_short(scheme) or 'HTTP 401 without a challenge'}) "
            f"to pull {repository}",
            "modelgate pins through anonymous pull access (the Bearer token challenge): allow "
            "it for the mirror's repositories",
        )
    parameters = {name.lower(): value for name, value in _CHALLENGE_PARAMETER.findall(rest)}
    realm = parameters.get("realm", "")
    if not realm:
        raise RegistryError(f"{host}'s Bearer challenge names no token realm", "")
    _require_secure(realm, "token realm")
    query = {"scope": parameters.get("scope") or f"repository:{repository}:pull"}
    if "service" in parameters:
        query = {"service": parameters["service"], **query}
    url = f"{realm}{'&' if '?' in realm else '?'}{urllib.parse.urlencode(query)}"
    reply = _get(url, {"Accept": "application/json"}, timeout, MAX_TOKEN_BYTES)
    if reply.status != 200:
        raise _refused(host, repository, reply)
    try:
        answer = json.loads(reply.body)
    except ValueError:
        answer = None
    token = (answer.get("token") or answer.get("access_token")) if isinstance(answer, dict) else ""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise RegistryError(f"{host}'s token realm answered without a usable token", "")
    return token


def _get(
    url: str, headers: dict[str, str], timeout: float, limit: int = MAX_MANIFEST_BYTES
) -> _Reply:
    return _request("GET", url, headers, timeout, limit)


def _request(
    method: str,
    url: str,
    headers: dict[str, str],
    timeout: float,
    limit: int = MAX_MANIFEST_BYTES,
    data: bytes | BinaryIO | None = None,
) -> _Reply:
    """One request, following at most MAX_REDIRECTS redirects of a GET or HEAD by hand: each
    must stay on https (or loopback), and the Authorization header stays behind when the host
    changes. An upload is never redirected: its answer comes back as it is."""
    for _ in range(MAX_REDIRECTS + 1):
        request = urllib.request.Request(
            url, data=data, method=method, headers={**headers, "User-Agent": USER_AGENT}
        )
        try:
            with _opener(url).open(request, timeout=timeout) as answer:
                return _Reply(answer.status, answer.headers, _read(answer, limit, url))
        except urllib.error.HTTPError as answer:
            with answer:
                location = answer.headers.get("Location")
                if answer.code not in _REDIRECTS or not location or method not in ("GET", "HEAD"):
                    return _Reply(answer.code, answer.headers, _error_body(answer))
            target = urllib.parse.urljoin(url, location)
            _require_secure(target, "redirect")
            if _authority(target) != _authority(url):
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            url = target
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise RegistryError(
                f"{_authority(url)} is unreachable: {_reason(exc)}",
                "check the registry's address in templates/values.yaml, the network, and "
                "that the registry is up; nothing was written",
                unreachable=True,
            ) from None
    raise RegistryError(f"{_authority(url)} redirected more than {MAX_REDIRECTS} times", "")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects come back as HTTPError, for _get to judge and follow."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _opener(url: str) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
    if is_loopback(_authority(url)):  # this machine: never through a proxy
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


def _require_secure(url: str, what: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.netloc)):
        return
    raise RegistryError(
        f"refusing a {what} to {_short(url)}: only https (or http to this machine) is used",
        "serve the registry and its token service over https",
    )


def _read(answer: http.client.HTTPResponse, limit: int, url: str) -> bytes:
    body = answer.read(limit + 1)
    if len(body) > limit:
        raise RegistryError(f"{_authority(url)} sent more than {limit} bytes for {_short(url)}", "")
    return body


def _error_body(answer: urllib.error.HTTPError) -> bytes:
    """What an error answer says, if it can be read: the status alone must still count."""
    try:
        return answer.read(MAX_ERROR_BYTES)
    except (OSError, http.client.HTTPException):
        return b""


def _registry_message(body: bytes) -> str:
    """The registry's own words from an error body ({"errors": [{"code", "message"}]})."""
    try:
        errors = json.loads(body).get("errors") or []
        first = errors[0]
        return _short(f"{first.get('code', '')}: {first.get('message', '')}".strip(": "))
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""


def _authority(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return _short(getattr(reason, "strerror", None) or str(reason) or type(exc).__name__)


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- pushes: what `modelgate publish` needs -----------------------------------------------

USERNAME_VARIABLE = "MODELGATE_REGISTRY_USERNAME"
PASSWORD_VARIABLE = "MODELGATE_REGISTRY_PASSWORD"  # a password or an access token
UPLOAD_TIMEOUT_FACTOR = 10  # an upload may take longer than a question


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def basic(self) -> str:
        pair = f"{self.username}:{self.password}".encode()
        return f"Basic {base64.b64encode(pair).decode()}"


def credentials_from(environ: Mapping[str, str]) -> Credentials | None:
    """The registry credentials the environment holds (USERNAME_VARIABLE and
    PASSWORD_VARIABLE), or None: anonymous, as a registry's token service may allow."""
    username, password = environ.get(USERNAME_VARIABLE, ""), environ.get(PASSWORD_VARIABLE, "")
    if not username and not password:
        return None
    return Credentials(username, password)


class Repository:
    """One repository of a registry: the questions and uploads that publish a model image
    (`access` pull,push), or the reads that copy a base image's layers (pull). The
    authorization a challenge asked for is kept for the session; credentials go only to the
    registry and its https (or loopback) token realm."""

    def __init__(
        self,
        host: str,
        name: str,
        credentials: Credentials | None,
        timeout: float = 30.0,
        access: str = "pull,push",
    ) -> None:
        self.host, self.name, self.timeout = host, name, timeout
        self.credentials = credentials
        self.access = access
        self._authorization = ""

    @property
    def where(self) -> str:
        return f"{self.host}/{self.name}"

    def manifest_digest(self, reference: str) -> str | None:
        """The digest of the manifest `reference` (a tag or digest) names; None when the
        repository has none by that reference."""
        reply = self._send("GET", f"manifests/{reference}", {"Accept": ", ".join(MANIFEST_TYPES)})
        if reply.status == 404:
            return None
        self._expect(reply, 200, f"reading {self.where}:{reference}")
        return manifest_digest(reply.body, reply.headers, f"{self.where}:{reference}")

    def has_blob(self, digest: str) -> bool:
        reply = self._send("HEAD", f"blobs/{digest}", {})
        if reply.status == 404:
            return False
        self._expect(reply, 200, f"asking for blob {digest}")
        return True

    def push_blob(self, digest: str, size: int, data: bytes | BinaryIO) -> None:
        """A monolithic upload: POST for an upload location, then PUT the bytes there."""
        started = self._send("POST", "blobs/uploads/", {"Content-Length": "0"}, b"")
        self._expect(started, 202, f"starting the upload of {digest}")
        location = started.headers.get("Location", "")
        if not location:
            raise RegistryError(f"{self.host} started an upload without a Location", "")
        url = urllib.parse.urljoin(f"{base_url(self.host)}/v2/", location)
        _require_secure(url, "upload location")
        url = f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode({'digest': digest})}"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        done = self._send("PUT", url, headers, data, self.timeout * UPLOAD_TIMEOUT_FACTOR)
        self._expect(done, 201, f"uploading {digest}")

    def mount_blob(self, digest: str, source: str) -> bool:
        """Ask the registry to share a blob of its repository `source` with this one (a
        cross-repository mount); False when it will not, and the blob must be copied."""
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        reply = self._send("POST", f"blobs/uploads/?{query}", {"Content-Length": "0"}, b"")
        if reply.status == 201:
            return True
        if reply.status == 202:  # an upload was started instead: not needed
            self._abandon(reply.headers.get("Location", ""))
            return False
        self._expect(reply, 201, f"mounting {digest} from {source}")
        return False

    def fetch_blob(self, digest: str, size: int) -> bytes:
        """A blob of this repository, of the size its manifest declares, checked against its
        digest."""
        timeout = self.timeout * UPLOAD_TIMEOUT_FACTOR
        reply = self._send("GET", f"blobs/{digest}", {}, timeout=timeout, limit=size)
        self._expect(reply, 200, f"reading blob {digest} of {self.name}")
        actual = f"sha256:{hashlib.sha256(reply.body).hexdigest()}"
        if actual != digest:
            raise RegistryError(
                f"{self.where}: blob {digest} arrived as {actual}",
                "something between here and the registry changed it; nothing was pushed",
            )
        return reply.body

    def _abandon(self, location: str) -> None:
        if location:
            url = urllib.parse.urljoin(f"{base_url(self.host)}/v2/", location)
            if _authority(url) == self.host:
                self._send("DELETE", url, {})

    def put_manifest(self, reference: str, body: bytes, media_type: str) -> None:
        """PUT the manifest under `reference`; the digest the registry declares for it must
        be the digest of `body`."""
        reply = self._send(
            "PUT",
            f"manifests/{reference}",
            {"Content-Type": media_type, "Content-Length": str(len(body))},
            body,
        )
        self._expect(reply, 201, f"writing {self.where}:{reference}")
        check_declared_digest(
            body, reply.headers.get("Docker-Content-Digest", ""), f"{self.where}:{reference}"
        )

    def _send(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        data: bytes | BinaryIO | None = None,
        timeout: float | None = None,
        limit: int = MAX_MANIFEST_BYTES,
    ) -> _Reply:
        """One request under /v2/NAME/ (or to a full upload URL); a challenge is answered
        once, and what it granted is kept for the next requests."""
        url = path if "://" in path else f"{base_url(self.host)}/v2/{self.name}/{path}"
        timeout = timeout or self.timeout
        authorized = self._authorization_for(url)
        reply = _request(method, url, {**headers, **authorized}, timeout, limit, data)
        if reply.status != 401 or _rewound(data) is False:
            return reply
        self._authorization = self._answer(reply.headers.get("WWW-Authenticate", ""))
        authorized = self._authorization_for(url)
        return _request(method, url, {**headers, **authorized}, timeout, limit, data)

    def _authorization_for(self, url: str) -> dict[str, str]:
        if self._authorization and _authority(url) == self.host:
            return {"Authorization": self._authorization}
        return {}

    def _answer(self, challenge: str) -> str:
        """The Authorization header the registry's challenge asks for: a Bearer token for pull
        and push from its realm (with the credentials, if any), or Basic credentials."""
        scheme, _, rest = challenge.strip().partition(" ")
        if scheme.lower() == "basic":
            if self.credentials is None:
                raise self._needs_credentials(f"asks for a user name and password for {self.name}")
            return self.credentials.basic()
        if scheme.lower() != "bearer":
            raise self._needs_credentials(
                f"answers {_short(scheme) or 'HTTP 401 without a challenge'} for {self.name}"
            )
        parameters = {name.lower(): value for name, value in _CHALLENGE_PARAMETER.findall(rest)}
        realm = parameters.get("realm", "")
        if not realm:
            raise RegistryError(f"{self.host}'s Bearer challenge names no token realm", "")
        _require_secure(realm, "token realm")
        # this repository's access, and what else the challenge names (a mount's source)
        scopes = [f"repository:{self.name}:{self.access}"]
        for name, value in _CHALLENGE_PARAMETER.findall(rest):
            if name.lower() == "scope":
                scopes += [scope for scope in value.split() if scope not in scopes]
        query = [("service", parameters["service"])] if "service" in parameters else []
        query += [("scope", scope) for scope in scopes]
        url = f"{realm}{'&' if '?' in realm else '?'}{urllib.parse.urlencode(query)}"
        headers = {"Accept": "application/json"}
        if self.credentials is not None:
            headers["Authorization"] = self.credentials.basic()
        reply = _get(url, headers, self.timeout, MAX_TOKEN_BYTES)
        if reply.status != 200:
            raise self._needs_credentials(
                f"refused a token for {self.name} (its realm answered HTTP {reply.status})"
            )
        try:
            answer = json.loads(reply.body)
        except ValueError:
            answer = None
        token = (
            (answer.get("token") or answer.get("access_token")) if isinstance(answer, dict) else ""
        )
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise RegistryError(f"{self.host}'s token realm answered without a usable token", "")
        return f"Bearer {token}"

    def _needs_credentials(self, what: str) -> RegistryError:
        given = f"as {USERNAME_VARIABLE} names" if self.credentials else "without credentials"
        return RegistryError(
            f"{self.host} {what}, {given}",
            f"set {USERNAME_VARIABLE} and {PASSWORD_VARIABLE} to an account (or token) that "
            f"may push to {self.where}",
        )

    def _expect(self, reply: _Reply, status: int, doing: str) -> None:
        if reply.status == status:
            return
        said = _registry_message(reply.body)
        if reply.status in (401, 403):
            raise self._needs_credentials(
                f"refused {doing} (HTTP {reply.status}{f': {said}' if said else ''})"
            )
        raise RegistryError(
            f"{self.host} answered HTTP {reply.status} {doing}{f' ({said})' if said else ''}",
            "check artifactStore in templates/values.yaml: it names a registry repository "
            "(oci://HOST/PATH) that accepts OCI image manifests",
        )


def _rewound(data: bytes | BinaryIO | None) -> bool | None:
    """Ready to send `data` again after a challenge: a file is read from its start again;
    False when it cannot be (a stream without seek)."""
    if data is None or isinstance(data, bytes):
        return None
    try:
        data.seek(0)
    except (OSError, ValueError):
        return False
    return True
