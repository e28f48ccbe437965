"""What the clusters offer for exposing endpoints, as templates/values.yaml declares it.

`spec.endpoint` asks for things only the platform can give: an ingress controller and a
certificate issuer for public hosts, a service mesh for encrypted in-cluster traffic and
caller authentication, an identity provider for tokens. The `exposure:` section of the values
names them; validation (check/exposure.py) refuses what it does not offer, and rendering
(render/view.py) builds the resources from the same record.

The values file comes from the repository like specs do: it is read with the spec loader's
refusals and its `exposure:` section is checked here, with positions (MG215).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import memo, paths
from ..diagnostics import Diagnostic, error
from ..engines import ENGINES, engine_values
from . import delivery, fit, load, stores

VALUES_PATH = "templates/values.yaml"
VALUES_INVALID = "MG215"
MESHES = ("istio", "none")
# How the model namespaces join the Istio mesh: the labels that enrol a namespace in each
# data plane mode. Plain sidecars (istio-init, NET_ADMIN) are no mode here: Pod Security
# "restricted" refuses them, so the sidecar mode needs Istio CNI.
ISTIO_MODES: dict[str, dict[str, str]] = {
    "sidecar-cni": {"istio-injection": "enabled"},
    "ambient": {"istio.io/dataplane-mode": "ambient"},
}
DEFAULT_ISTIO_NAMESPACE = "istio-system"
# The auth types a Seldon Core v2 installation can enforce for every model it serves.
SELDON_AUTH = ("none", "mtls", "oidc")
DEFAULT_HOSTS = {"default": "{host}"}
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_HOST_PATTERN = re.compile(r"^([a-z0-9.-]*)\{host\}([a-z0-9.-]*)$")
_URL = re.compile(r"^https://[^\s/]+(/\S*)?$")


@dataclass(frozen=True)
class Ingress:
    class_name: str
    namespace: str  # where the ingress controller runs: the one source public pods admit
    cluster_issuer: str = ""  # cert-manager ClusterIssuer for public TLS certificates
    hosts: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_HOSTS))

    def host(self, host: str, environment: str) -> str:
        """The host `environment`'s Ingress claims for spec.endpoint.host `host`."""
        pattern = self.hosts.get(environment, self.hosts.get("default", "{host}"))
        return pattern.replace("{host}", host)


@dataclass(frozen=True)
class Oidc:
    issuer: str
    jwks_uri: str
    audiences: tuple[str, ...] = ()


@dataclass(frozen=True)
class Platform:
    """What templates/values.yaml says the clusters provide; nothing, where it says nothing."""

    ingress: Ingress | None = None
    mesh: str = "none"
    oidc: Oidc | None = None
    seldon_tls: bool = False
    seldon_auth: str = "none"
    modelmesh_tls: bool = False  # KServe ModelMesh's shared serving Service, likewise
    modelmesh_auth: str = "none"
    inference_service_tls: bool = False
    istio_mode: str = ""  # of ISTIO_MODES, with mesh istio
    istio_namespace: str = DEFAULT_ISTIO_NAMESPACE  # where istiod runs
    default_versions: Mapping[str, str] = field(default_factory=dict)
    # the environments specs may name, in rollout order (check/delivery.py); None: none declared
    environments: Mapping[str, delivery.Environment] | None = None
    # the accelerator products the clusters offer, smallest memory first (check/fit/)
    accelerators: tuple[fit.products.Product, ...] = ()

    @property
    def istio(self) -> bool:
        return self.mesh == "istio"

    @property
    def namespace_labels(self) -> dict[str, str]:
        """The labels that enrol the model namespaces in the mesh's data plane."""
        return dict(ISTIO_MODES.get(self.istio_mode, {})) if self.istio else {}


def from_values(values: Mapping[str, Any]) -> Platform:
    """The platform a values mapping declares. Lenient: a value of the wrong shape counts as
    not declared (read() reports it, MG215, so the run fails before anything is written)."""
    return memo.remembered_for("platform", values, lambda: _from_values(values))


def _from_values(values: Mapping[str, Any]) -> Platform:
    exposure = _mapping(values.get("exposure"))
    ingress = _mapping(exposure.get("ingress"))
    oidc = _mapping(exposure.get("oidc"))
    seldon = _mapping(exposure.get("seldon"))
    modelmesh = _mapping(exposure.get("modelMesh"))
    inference_service = _mapping(exposure.get("inferenceService"))
    istio = _mapping(exposure.get("istio"))
    return Platform(
        ingress=_ingress(ingress) if ingress else None,
        mesh=exposure.get("mesh") if exposure.get("mesh") in MESHES else "none",
        oidc=_oidc(oidc) if oidc else None,
        seldon_tls=seldon.get("tls") is True,
        seldon_auth=seldon.get("auth") if seldon.get("auth") in SELDON_AUTH else "none",
        modelmesh_tls=modelmesh.get("tls") is True,
        modelmesh_auth=modelmesh.get("auth") if modelmesh.get("auth") in SELDON_AUTH else "none",
        inference_service_tls=inference_service.get("ingressTLS") is True,
        istio_mode=istio.get("mode") if istio.get("mode") in ISTIO_MODES else "",
        istio_namespace=_text(istio.get("namespace")) or DEFAULT_ISTIO_NAMESPACE,
        default_versions={
            name: str(engine_values(values, name).get("defaultVersion") or "") for name in ENGINES
        },
        environments=delivery.from_values(values),
        accelerators=fit.products.from_values(values),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _ingress(section: Mapping[str, Any]) -> Ingress | None:
    if not (_text(section.get("className")) and _text(section.get("namespace"))):
        return None
    hosts = _mapping(section.get("hosts")) or DEFAULT_HOSTS
    return Ingress(
        class_name=section["className"],
        namespace=section["namespace"],
        cluster_issuer=_text(section.get("clusterIssuer")),
        hosts={key: value for key, value in hosts.items() if isinstance(value, str)},
    )


def _oidc(section: Mapping[str, Any]) -> Oidc | None:
    if not (_text(section.get("issuer")) and _text(section.get("jwksUri"))):
        return None
    audiences = section.get("audiences")
    return Oidc(
        issuer=section["issuer"],
        jwks_uri=section["jwksUri"],
        audiences=tuple(a for a in audiences if isinstance(a, str))
        if isinstance(audiences, list)
        else (),
    )


def read(root: Path) -> tuple[Platform | None, list[Diagnostic]]:
    """The platform templates/values.yaml declares, or None with the reasons it cannot be
    read. No values file declares nothing: every exposure setting is then refused."""
    path = root / VALUES_PATH
    if paths.leads_out(path, root):
        return None, [
            error(
                VALUES_PATH,
                1,
                1,
                paths.LINK_OUT,
                f"{VALUES_PATH} leads out of the repository through a symbolic link",
                "commit the values file itself, not a link to a file elsewhere",
            )
        ]
    if not path.is_file():
        return from_values({}), []
    document, problems = load.load_file(path, VALUES_PATH)
    if document is None or problems:
        return None, problems
    problems = (
        check_values(document)
        + delivery.check_values(document)
        + stores.check_values(document)
        + fit.products.check_values(document)
    )
    return (None if problems else from_values(document.data)), problems


# -- the `exposure:` section's shape, reported where it is written ------------------------------

_SECTIONS: dict[str, tuple[str, ...]] = {
    "ingress": ("className", "namespace", "clusterIssuer", "hosts"),
    "oidc": ("issuer", "jwksUri", "audiences"),
    "seldon": ("tls", "auth"),
    "modelMesh": ("tls", "auth"),
    "inferenceService": ("ingressTLS",),
    "istio": ("mode", "namespace"),
}


def check_values(document: load.Document) -> list[Diagnostic]:
    exposure = document.data.get("exposure")
    if exposure is None:
        return []
    if not isinstance(exposure, dict):
        return [_bad(document, ["exposure"], "exposure must be a mapping")]
    problems = _unknown(document, ["exposure"], exposure, ("mesh", *_SECTIONS))
    if "mesh" in exposure and exposure["mesh"] not in MESHES:
        problems.append(
            _bad(
                document, ["exposure", "mesh"], f"exposure.mesh must be one of {', '.join(MESHES)}"
            )
        )
    if exposure.get("mesh") == "istio" and not isinstance(exposure.get("istio"), dict):
        problems.append(
            _bad(
                document,
                ["exposure", "mesh"],
                "exposure.mesh istio needs exposure.istio.mode: how the model namespaces join "
                "the mesh",
                f"declare exposure.istio: {{mode: {' or '.join(ISTIO_MODES)}, namespace: "
                "ISTIOD_NAMESPACE}; without it the Istio policies rendered for endpoints are "
                "not enforced",
            )
        )
    for name, allowed in _SECTIONS.items():
        section = exposure.get(name)
        if section is None:
            continue
        if not isinstance(section, dict):
            problems.append(_bad(document, ["exposure", name], f"exposure.{name} is a mapping"))
            continue
        problems += _unknown(document, ["exposure", name], section, allowed)
        problems += _SECTION_CHECKS[name](document, section)
    return problems


def _check_ingress(document: load.Document, section: dict[str, Any]) -> list[Diagnostic]:
    where = ["exposure", "ingress"]
    problems = [
        _bad(document, [*where, key], f"exposure.ingress.{key} must be a Kubernetes name")
        for key in ("className", "namespace", "clusterIssuer")
        if key in section and not _NAME.match(_text(section[key]))
    ]
    problems += [
        _bad(document, where, f"exposure.ingress needs {key}")
        for key in ("className", "namespace")
        if key not in section
    ]
    hosts = section.get("hosts", DEFAULT_HOSTS)
    if not isinstance(hosts, dict):
        return [*problems, _bad(document, [*where, "hosts"], "exposure.ingress.hosts is a mapping")]
    return problems + [
        _bad(
            document,
            [*where, "hosts", environment],
            f"exposure.ingress.hosts.{environment} must hold {{host}} once, with lowercase "
            "letters, digits, '.' and '-' around it",
        )
        for environment, pattern in hosts.items()
        if not _HOST_PATTERN.match(_text(pattern))
    ]


def _check_oidc(document: load.Document, section: dict[str, Any]) -> list[Diagnostic]:
    where = ["exposure", "oidc"]
    problems = [
        _bad(document, [*where, key], f"exposure.oidc.{key} must be an https:// URL")
        for key in ("issuer", "jwksUri")
        if key in section and not _URL.match(_text(section[key]))
    ]
    problems += [
        _bad(document, where, f"exposure.oidc needs {key}")
        for key in ("issuer", "jwksUri")
        if key not in section
    ]
    audiences = section.get("audiences", [])
    if not (isinstance(audiences, list) and all(_text(a) for a in audiences)):
        problems.append(
            _bad(document, [*where, "audiences"], "exposure.oidc.audiences is a list of names")
        )
    return problems


def _check_seldon(document: load.Document, section: dict[str, Any]) -> list[Diagnostic]:
    return _check_shared(document, section, "seldon")


def _check_modelmesh(document: load.Document, section: dict[str, Any]) -> list[Diagnostic]:
    return _check_shared(document, section, "modelMesh")


def _check_shared(document: load.Document, section: dict[str, Any], name: str) -> list[Diagnostic]:
    """The section of servers every model shares: what their mesh does for all of them."""
    problems = []
    if "tls" in section and not isinstance(section["tls"], bool):
        problems.append(
            _bad(document, ["exposure", name, "tls"], f"exposure.{name}.tls is true or false")
        )
    if "auth" in section and section["auth"] not in SELDON_AUTH:
        problems.append(
            _bad(
                document,
                ["exposure", name, "auth"],
                f"exposure.{name}.auth must be one of {', '.join(SELDON_AUTH)}",
            )
        )
    return problems


def _check_inference_service(document: load.Document, section: dict[str, Any]) -> list[Diagnostic]:
    if "ingressTLS" in section and not isinstance(section["ingressTLS"], bool):
        return [
            _bad(
                document,
                ["exposure", "inferenceService", "ingressTLS"],
                "exposure.inferenceService.ingressTLS is true or false",
            )
        ]
    return []


def _check_istio(document: load.Document, section: dict[str, Any]) -> list[Diagnostic]:
    where = ["exposure", "istio"]
    problems = []
    mode = section.get("mode")
    if mode not in ISTIO_MODES:
        problems.append(
            _bad(
                document,
                [*where, "mode"] if "mode" in section else where,
                f"exposure.istio.mode must be one of {', '.join(ISTIO_MODES)}",
                "sidecars without Istio CNI need istio-init (NET_ADMIN, NET_RAW), which Pod "
                "Security 'restricted' refuses: install Istio CNI and declare sidecar-cni, "
                "or run the ambient data plane",
            )
        )
    if "namespace" in section and not _NAME.match(_text(section["namespace"])):
        problems.append(
            _bad(document, [*where, "namespace"], "exposure.istio.namespace must be a namespace")
        )
    return problems


_SECTION_CHECKS = {
    "ingress": _check_ingress,
    "oidc": _check_oidc,
    "seldon": _check_seldon,
    "modelMesh": _check_modelmesh,
    "inferenceService": _check_inference_service,
    "istio": _check_istio,
}


def _unknown(
    document: load.Document, where: list[str | int], section: dict[str, Any], allowed: tuple
) -> list[Diagnostic]:
    return [
        _bad(
            document,
            [*where, load.Key(key)],
            f"{'.'.join(map(str, where))}.{key} is not an exposure setting",
            f"the settings here are: {', '.join(allowed)}",
        )
        for key in section
        if key not in allowed
    ]


def _bad(document: load.Document, where: list, message: str, hint: str = "") -> Diagnostic:
    return document.finding(
        where,
        VALUES_INVALID,
        message,
        hint or "see docs/spec.md, 'Endpoint exposure', for the exposure section of the values",
    )
