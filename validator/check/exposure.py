"""spec.endpoint, honoured or refused: every setting either becomes a resource or an engine
flag, or validation refuses it for this engine with where it is written and what to do.

How each setting is honoured depends on how the engine is exposed (`Engine.exposure`):

- a Deployment-based engine (its own Service): `public` is a networking.k8s.io/v1 Ingress for
  `host` (TLS from a cert-manager ClusterIssuer when `tls`), and the NetworkPolicy then admits
  the ingress controller's namespace only; `tls` on an internal endpoint is the mesh's mutual
  TLS (an Istio PeerAuthentication in STRICT mode); `auth` is the engine's own API key check
  (from `auth.secretRef`), or the mesh: `oidc` an Istio RequestAuthentication and an
  AuthorizationPolicy requiring a token of the declared issuer, `mtls` a STRICT
  PeerAuthentication;
- a KServe InferenceService: KServe's own ingress (internal: the cluster-local label; public:
  the host KServe's domain template gives), the mesh policies selecting its pods;
- a Seldon Core v2 Model: served through the servers and mesh every model shares, so only what
  the platform enforces for all of them.

What the platform offers comes from templates/values.yaml (check/platform.py). `plan` is what
rendering makes of a valid spec; `check` refuses what `plan` could not honour.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..diagnostics import Diagnostic
from ..engines import (
    BY_INFERENCE_SERVICE,
    BY_MODELMESH,
    BY_SELDON,
    BY_WORKLOAD,
    Engine,
    engine_for,
)
from .load import Document
from .platform import VALUES_PATH, Platform

NOT_PROVIDED = "MG210"
AMBIENT = "ambient"  # the Istio data plane mode without sidecars (check/platform.py)
ENGINE_CANNOT = "MG211"
CONTRADICTORY = "MG212"
KEY_TWICE = "MG213"
HOST_CLAIMED = "MG214"

ENDPOINT = ("spec", "endpoint")
VISIBILITY = (*ENDPOINT, "visibility")
AUTH_TYPE = (*ENDPOINT, "auth", "type")
SECRET_REF = (*ENDPOINT, "auth", "secretRef")
TLS = (*ENDPOINT, "tls")
HOST = (*ENDPOINT, "host")

CLUSTER_ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"
# KServe's switch off its ingress for one InferenceService, per deployment mode
CLUSTER_LOCAL = {
    "RawDeployment": "networking.kserve.io/visibility",
    "Serverless": "networking.knative.dev/visibility",
}
INGRESS_NAMESPACE_LABEL = "kubernetes.io/metadata.name"  # set on every namespace by Kubernetes


@dataclass(frozen=True)
class Endpoint:
    """A spec's endpoint settings with the schema's defaults applied."""

    visibility: str
    auth: str
    secret_ref: Mapping[str, str] | None
    tls: bool | None
    host: str | None

    @property
    def public(self) -> bool:
        return self.visibility == "public"


def settings(spec: Mapping[str, Any]) -> Endpoint:
    endpoint = spec.get("endpoint", {})
    auth = endpoint.get("auth", {})
    return Endpoint(
        visibility=endpoint.get("visibility", "internal"),
        auth=auth.get("type", "none"),
        secret_ref=auth.get("secretRef"),
        tls=endpoint.get("tls"),
        host=endpoint.get("host"),
    )


# -- refusals ------------------------------------------------------------------------------------


def check(document: Document, platform: Platform) -> list[Diagnostic]:
    """Every endpoint setting this engine, on the declared platform, cannot honour."""
    spec = document.data["spec"]
    engine = engine_for(spec)
    endpoint = settings(spec)
    found = _contradictions(document, endpoint)
    found += _BY_EXPOSURE[engine.exposure](document, endpoint, platform, engine)
    if endpoint.auth == "apiKey":
        found += _api_key(document, endpoint, platform, engine)
    return found


def _contradictions(document: Document, endpoint: Endpoint) -> list[Diagnostic]:
    found = []
    if endpoint.host and not endpoint.public:
        found.append(
            document.finding(
                HOST,
                CONTRADICTORY,
                f"endpoint.host {endpoint.host} is a public host name, but the endpoint is "
                "internal: nothing would route it",
                "set spec.endpoint.visibility: public, or remove spec.endpoint.host",
            )
        )
    if endpoint.secret_ref is not None and endpoint.auth != "apiKey":
        found.append(
            document.finding(
                SECRET_REF,
                CONTRADICTORY,
                f"auth.secretRef holds an API key, but auth.type is {endpoint.auth}: "
                "nothing would check it",
                "remove spec.endpoint.auth.secretRef, or set spec.endpoint.auth.type: apiKey",
            )
        )
    if endpoint.auth == "apiKey" and endpoint.secret_ref is None:
        found.append(
            document.finding(
                AUTH_TYPE,
                CONTRADICTORY,
                "auth.type apiKey needs auth.secretRef: the Secret key requests are checked "
                "against",
                "add spec.endpoint.auth.secretRef: {name: SECRET, key: KEY}",
            )
        )
    if endpoint.auth == "mtls" and endpoint.tls is False:
        found.append(
            document.finding(
                TLS,
                CONTRADICTORY,
                "tls: false contradicts auth.type mtls: mutual TLS is TLS",
                "set spec.endpoint.tls: true, or remove it",
            )
        )
    if endpoint.auth == "mtls" and endpoint.public:
        found.append(
            document.finding(
                AUTH_TYPE,
                CONTRADICTORY,
                "auth.type mtls on a public endpoint: callers outside the cluster arrive "
                "through the ingress controller, so mesh mutual TLS would authenticate the "
                "controller, not them",
                "use auth.type oidc or apiKey for a public endpoint, or make it internal",
            )
        )
    return found


def _workload(
    document: Document, endpoint: Endpoint, platform: Platform, engine: Engine
) -> list[Diagnostic]:
    found = _public_ingress(document, endpoint, platform) if endpoint.public else []
    if endpoint.tls and not endpoint.public and not platform.istio:
        found.append(_no_mesh(document, TLS, "tls on an internal endpoint"))
    return found + _mesh_auth(document, endpoint, platform)


def _public_ingress(document: Document, endpoint: Endpoint, platform: Platform) -> list[Diagnostic]:
    if platform.ingress is None:
        return [
            _not_provided(
                document,
                VISIBILITY,
                "a public endpoint needs an ingress controller, and the platform declares none",
                "declare it in templates/values.yaml (exposure.ingress: className, namespace), "
                "or set spec.endpoint.visibility: internal",
            )
        ]
    found = []
    if not endpoint.host:
        found.append(
            document.finding(
                VISIBILITY,
                CONTRADICTORY,
                "a public endpoint needs endpoint.host: its Ingress routes requests by host name",
                "set spec.endpoint.host to the DNS name callers use",
            )
        )
    if endpoint.tls and not platform.ingress.cluster_issuer:
        found.append(
            _not_provided(
                document,
                TLS,
                "tls on a public endpoint needs a certificate, and the platform declares no "
                "cert-manager ClusterIssuer",
                "declare it in templates/values.yaml (exposure.ingress.clusterIssuer), or set "
                "spec.endpoint.tls: false",
            )
        )
    if endpoint.host:
        found += _host_clashes(document, endpoint.host, platform)
    return found


def _host_clashes(document: Document, host: str, platform: Platform) -> list[Diagnostic]:
    """Every environment runs in one cluster (the ApplicationSets'): two environments of a
    spec must not claim one host, or their Ingresses would steal each other's requests."""
    assert platform.ingress is not None
    claimed: dict[str, str] = {}
    for environment in document.data["spec"]["environments"]:
        name = platform.ingress.host(host, environment)
        if name in claimed:
            return [
                document.finding(
                    HOST,
                    HOST_CLAIMED,
                    f"environments {claimed[name]} and {environment} would both claim host {name}",
                    f"give environments their own host pattern in {VALUES_PATH} "
                    '(exposure.ingress.hosts, e.g. staging: "staging.{host}")',
                )
            ]
        claimed[name] = environment
    return []


def _inference_service(
    document: Document, endpoint: Endpoint, platform: Platform, engine: Engine
) -> list[Diagnostic]:
    found = []
    if endpoint.public and endpoint.host:
        found.append(
            document.finding(
                HOST,
                ENGINE_CANNOT,
                f"engine {engine.name} cannot serve endpoint.host {endpoint.host}: KServe "
                "names a public InferenceService's host from its domain template "
                "(NAME-NAMESPACE.DOMAIN) and owns the route to it",
                "remove spec.endpoint.host; the host is in the InferenceService's status.url",
            )
        )
    if endpoint.public and endpoint.tls and not platform.inference_service_tls:
        found.append(
            _not_provided(
                document,
                TLS,
                "tls on a public InferenceService is KServe's ingress serving https, and the "
                "platform does not declare it",
                f"declare it in {VALUES_PATH} (exposure.inferenceService.ingressTLS: true), "
                "or set spec.endpoint.tls: false",
            )
        )
    if endpoint.tls and not endpoint.public and not platform.istio:
        found.append(_no_mesh(document, TLS, "tls on an internal endpoint"))
    return found + _mesh_auth(document, endpoint, platform)


def _seldon(
    document: Document, endpoint: Endpoint, platform: Platform, engine: Engine
) -> list[Diagnostic]:
    return _shared_servers(
        document,
        endpoint,
        Shared(
            f"engine {engine.name} runs a Seldon Core v2 Model on servers every model shares, "
            "behind one Seldon mesh",
            "exposing the Seldon mesh is a platform decision",
            "seldon",
            platform.seldon_tls,
            platform.seldon_auth,
        ),
    )


def _modelmesh(
    document: Document, endpoint: Endpoint, platform: Platform, engine: Engine
) -> list[Diagnostic]:
    return _shared_servers(
        document,
        endpoint,
        Shared(
            f"engine {engine.name} in ModelMesh mode serves the model from runtime pods every "
            "ModelMesh model shares, behind one Service",
            "exposing ModelMesh's Service is a platform decision",
            "modelMesh",
            platform.modelmesh_tls,
            platform.modelmesh_auth,
        ),
    )


@dataclass(frozen=True)
class Shared:
    """Servers every model shares: what their mesh does for all of them (templates/values.yaml
    exposure.SECTION), never one model's own settings."""

    what: str
    public: str  # why one model cannot be public on its own
    section: str
    tls: bool
    auth: str


def _shared_servers(document: Document, endpoint: Endpoint, shared: Shared) -> list[Diagnostic]:
    found = []
    if endpoint.public:
        found.append(
            document.finding(
                VISIBILITY,
                ENGINE_CANNOT,
                f"{shared.what}: one model cannot be made public on its own",
                f"set spec.endpoint.visibility: internal ({shared.public}), or serve the "
                "model with a Deployment-based engine",
            )
        )
    if endpoint.tls and not shared.tls:
        found.append(
            _not_provided(
                document,
                TLS,
                f"{shared.what}: tls is what that mesh does for all of them, and the platform "
                "does not declare it",
                f"declare it in {VALUES_PATH} (exposure.{shared.section}.tls: true), or set "
                "spec.endpoint.tls: false",
            )
        )
    if endpoint.auth in ("oidc", "mtls") and endpoint.auth != shared.auth:
        found.append(
            _not_provided(
                document,
                AUTH_TYPE,
                f"{shared.what}: callers are authenticated as that mesh does for all of them "
                f"({shared.auth}), not by auth.type {endpoint.auth} for one",
                f"set spec.endpoint.auth.type: {shared.auth}, or declare what the "
                f"platform enforces in {VALUES_PATH} (exposure.{shared.section}.auth)",
            )
        )
    return found


def _mesh_auth(document: Document, endpoint: Endpoint, platform: Platform) -> list[Diagnostic]:
    if endpoint.auth == "oidc" and not (platform.istio and platform.oidc):
        return [
            _not_provided(
                document,
                AUTH_TYPE,
                "auth.type oidc is the mesh checking callers' tokens, and the platform "
                "declares " + ("no identity provider" if platform.istio else "no service mesh"),
                f"declare them in {VALUES_PATH} (exposure.mesh: istio, exposure.oidc: "
                "issuer, jwksUri)",
            )
        ]
    if endpoint.auth == "oidc" and platform.istio_mode == AMBIENT:
        # ztunnel enforces no request-level policy: a RequestAuthentication is ignored and an
        # AuthorizationPolicy on requestPrincipals denies every request
        return [
            _not_provided(
                document,
                AUTH_TYPE,
                "auth.type oidc needs the mesh to check each request's token, which the "
                "ambient data plane does only through a waypoint proxy the platform does not "
                "declare",
                f"use auth.type mtls, or run Istio with sidecars (exposure.istio.mode: "
                f"sidecar-cni in {VALUES_PATH})",
            )
        ]
    if endpoint.auth == "mtls" and not endpoint.public and not platform.istio:
        return [_no_mesh(document, AUTH_TYPE, "auth.type mtls")]
    return []


def _api_key(
    document: Document, endpoint: Endpoint, platform: Platform, engine: Engine
) -> list[Diagnostic]:
    if not engine.api_key_env:
        return [
            document.finding(
                AUTH_TYPE,
                ENGINE_CANNOT,
                f"engine {engine.name} cannot check an API key itself",
                "use auth.type oidc or mtls (the mesh checks callers), or an engine that "
                "checks keys (see docs/spec.md, 'Endpoint exposure')",
            )
        ]
    found = []
    version = engine_version(document.data["spec"], platform, engine)
    if not _at_least(version, engine.api_key_since):
        written = "version" in document.data["spec"]["engine"]
        found.append(
            document.finding(
                ("spec", "engine", "version") if written else AUTH_TYPE,
                ENGINE_CANNOT,
                f"engine {engine.name} {version or '(no version)'} cannot check an API key: "
                f"{engine.name} does from {engine.api_key_since}",
                f"set spec.engine.version to {engine.api_key_since} or later",
            )
        )
    for index, variable in enumerate(document.data["spec"]["engine"].get("env", [])):
        if variable["name"] == engine.api_key_env:
            found.append(
                document.finding(
                    ("spec", "engine", "env", index, "name"),
                    KEY_TWICE,
                    f"{engine.api_key_env} is set from auth.secretRef for auth.type apiKey; "
                    "setting it here too would leave two values for one variable",
                    f"remove this entry: {engine.name} gets the key from "
                    "spec.endpoint.auth.secretRef",
                )
            )
    return found


def engine_version(spec: Mapping[str, Any], platform: Platform, engine: Engine) -> str:
    return str(
        spec["engine"].get("version")
        or platform.default_versions.get(engine.name)
        or engine.default_version
    )


_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def _at_least(version: str, minimum: str) -> bool:
    have, need = _VERSION.match(version), _VERSION.match(minimum)
    if have is None or need is None:
        return False  # "latest" and the like: no telling what it does
    return tuple(int(part or 0) for part in have.groups()) >= tuple(
        int(part or 0) for part in need.groups()
    )


def _no_mesh(document: Document, where: tuple, what: str) -> Diagnostic:
    return _not_provided(
        document,
        where,
        f"{what} is the service mesh's mutual TLS between workloads, and the platform "
        "declares no mesh",
        f"declare it in {VALUES_PATH} (exposure.mesh: istio), or remove the setting",
    )


def _not_provided(document: Document, where: tuple, message: str, hint: str) -> Diagnostic:
    return document.finding(where, NOT_PROVIDED, message, hint)


_BY_EXPOSURE = {
    BY_WORKLOAD: _workload,
    BY_INFERENCE_SERVICE: _inference_service,
    BY_SELDON: _seldon,
    BY_MODELMESH: _modelmesh,
}


# -- what rendering makes of a valid spec --------------------------------------------------------


def plan(
    spec: Mapping[str, Any], name: str, environment: str, platform: Platform
) -> dict[str, Any]:
    """The exposure resources and settings one environment's manifests carry, for the
    templates (`v.exposure`): only what `check` let through."""
    engine = engine_for(spec)
    endpoint = settings(spec)
    mesh = platform.istio and engine.exposure not in (BY_SELDON, BY_MODELMESH)
    return {
        "ingress": _ingress(endpoint, engine, name, environment, platform),
        "selector": {engine.pod_label: name},
        # mesh mutual TLS, required of every caller: for tls on an internal endpoint and for
        # auth mtls (public callers come through an ingress controller outside the mesh)
        "strict_mtls": mesh
        and not endpoint.public
        and (bool(endpoint.tls) or endpoint.auth == "mtls"),
        "oidc": _oidc(platform) if mesh and endpoint.auth == "oidc" else None,
        "labels": _inference_service_labels(spec, endpoint, engine),
        "env": _api_key_env(endpoint, engine),
    }


def _ingress(
    endpoint: Endpoint, engine: Engine, name: str, environment: str, platform: Platform
) -> dict[str, Any] | None:
    if not (endpoint.public and endpoint.host and engine.exposure == BY_WORKLOAD):
        return None
    if platform.ingress is None:
        return None
    tls = bool(endpoint.tls) and bool(platform.ingress.cluster_issuer)
    return {
        "class_name": platform.ingress.class_name,
        "namespace": platform.ingress.namespace,
        "host": platform.ingress.host(endpoint.host, environment),
        "tls_secret": f"{name}-tls" if tls else None,
        "annotations": (
            {CLUSTER_ISSUER_ANNOTATION: platform.ingress.cluster_issuer} if tls else {}
        ),
    }


def _oidc(platform: Platform) -> dict[str, Any] | None:
    if platform.oidc is None:
        return None
    return {
        "issuer": platform.oidc.issuer,
        "jwks_uri": platform.oidc.jwks_uri,
        "audiences": list(platform.oidc.audiences),
        # a token of this issuer, whoever its subject: RequestAuthentication checked it
        "principals": [f"{platform.oidc.issuer}/*"],
    }


def _inference_service_labels(
    spec: Mapping[str, Any], endpoint: Endpoint, engine: Engine
) -> dict[str, str]:
    if engine.exposure != BY_INFERENCE_SERVICE or endpoint.public:
        return {}
    mode = spec["engine"].get("deploymentMode", "RawDeployment")
    return {CLUSTER_LOCAL[mode]: "cluster-local"}


def _api_key_env(endpoint: Endpoint, engine: Engine) -> list[dict[str, Any]]:
    if endpoint.auth != "apiKey" or not engine.api_key_env or endpoint.secret_ref is None:
        return []
    return [
        {
            "name": engine.api_key_env,
            "valueFrom": {
                "secretKeyRef": {
                    "name": endpoint.secret_ref["name"],
                    "key": endpoint.secret_ref["key"],
                }
            },
        }
    ]
