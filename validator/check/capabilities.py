"""What the chosen engine, in its deployment mode, can honour.

Every spec field changes what is rendered or deployed, or validation refuses it here, at its
position: a setting the engine cannot honour would otherwise render into something that
silently does nothing (an HPA that never scales a Deployment up from 0 replicas, a canary
split KServe ignores in RawDeployment mode). The facts come from the engine records
(validator/engines/): these are not policies, and no waiver accepts them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from ..diagnostics import Diagnostic
from ..engines import (
    ARTIFACT,
    COMPONENTS,
    ENGINES,
    EVERY_ACCELERATOR,
    IMAGE,
    Engine,
    Mode,
    Scaling,
    digest_field,
    engine_for,
    verified_by_pod,
)
from .load import Document

SCALE_TO_ZERO = "MG220"
CANARY = "MG221"
SCALE_METRIC = "MG222"
SCALE_TARGET = "MG223"
PROTOCOL = "MG224"
PACKAGING = "MG225"
ENGINE_SETTING = "MG226"
POD_SETTING = "MG227"
HOST_ACCESS = "MG228"
ACCELERATOR = "MG229"
GPU_REQUIRED = "MG256"
AUTOSCALER = "MG234"
RUNTIME_FIT = "MG235"
REVISION = "MG240"
UNCHECKED_DIGEST = "MG244"
ARCHIVES = (".tar.gz", ".tgz", ".tar", ".zip")  # what storage initializers unpack

JsonPath = list[str | int]


class Refusal(NamedTuple):
    path: JsonPath
    rule: str
    message: str
    hint: str


def check(document: Document) -> list[Diagnostic]:
    """Refusals for a spec that passed the schema."""
    spec = document.data["spec"]
    engine = engine_for(spec)  # as it is in the spec's deployment mode
    return [
        document.finding(refusal.path, refusal.rule, refusal.message, refusal.hint)
        for rule in RULES
        for refusal in rule(spec, engine)
    ]


# --- scaling and rollout: what the engine's autoscaler in the chosen mode can do ----------


def scaling(spec: dict[str, Any], engine: Engine) -> Iterator[Refusal]:
    mode, scaler = engine.scaling(spec)
    where = _where(engine, mode)
    settings = spec.get("scaling", {})
    yield from _autoscaler(settings, engine, mode)
    yield from _replicas(settings, where, scaler)
    if settings.get("minReplicas") == 0 and not scaler.to_zero and scaler.replicas:
        yield Refusal(
            ["spec", "scaling", "minReplicas"],
            SCALE_TO_ZERO,
            f"minReplicas 0 asks for scale to zero, which {where} does not do: "
            f"{scaler.autoscaler} cannot scale a model to zero and back",
            _instead(engine, lambda s: s.to_zero, "set minReplicas to 1 or more", mode),
        )
    metric = settings.get("metric")
    if metric is not None and metric not in scaler.metrics:
        yield Refusal(
            ["spec", "scaling", "metric"],
            SCALE_METRIC,
            f"{where} does not scale on {metric}: {_signals(scaler)}",
            _instead(
                engine,
                lambda s: metric in s.metrics,
                f"use one of {', '.join(scaler.metrics)}"
                if scaler.metrics
                else "remove spec.scaling.metric",
                mode,
            ),
        )
    # a target is measured in the metric's unit: judged once the metric is one it takes
    if "target" in settings and (metric in (None, *scaler.metrics) or not scaler.metrics):
        yield from _target(settings["target"], metric, where, scaler)


def _autoscaler(settings: dict[str, Any], engine: Engine, mode: str) -> Iterator[Refusal]:
    chosen = settings.get("autoscaler")
    offered = [scaler.name for scaler in engine.modes[mode].autoscalers if scaler.name]
    if chosen is None or chosen in offered:
        return
    able = f"it is scaled by {', or '.join(s.autoscaler for s in engine.modes[mode].autoscalers)}"
    yield Refusal(
        ["spec", "scaling", "autoscaler"],
        AUTOSCALER,
        f"{_where(engine, mode)} cannot be scaled by {chosen}: {able}",
        _instead(
            engine,
            lambda s: s.name == chosen,
            f"use autoscaler {' or '.join(offered)}"
            if offered
            else "remove spec.scaling.autoscaler",
            mode,
        ),
    )


def _replicas(settings: dict[str, Any], where: str, scaler: Scaling) -> Iterator[Refusal]:
    if scaler.replicas:
        return
    for bound in ("minReplicas", "maxReplicas"):
        if bound in settings:
            yield Refusal(
                ["spec", "scaling", bound],
                ENGINE_SETTING,
                f"spec.scaling.{bound} has no effect: {where} runs the model in pods it does "
                f"not own ({scaler.autoscaler}), whose own settings decide how many there are",
                f"remove spec.scaling.{bound}; set the runtime's pods with spec.runtime.replicas, "
                "or leave them to the cluster's ServingRuntime",
            )


def _target(target: float, metric: str | None, where: str, scaler: Scaling) -> Iterator[Refusal]:
    path: JsonPath = ["spec", "scaling", "target"]
    if not scaler.metrics:
        yield Refusal(
            path,
            SCALE_TARGET,
            f"{where} takes no scaling target: {_signals(scaler)}",
            "remove spec.scaling.target",
        )
        return
    measured = metric or scaler.metrics[0]
    if measured in scaler.whole_targets and target != int(target):
        yield Refusal(
            path,
            SCALE_TARGET,
            f"target {target} would become {int(target)}: {scaler.autoscaler} takes a whole "
            f"number for {measured}",
            f"write a whole number of 1 or more for {measured}",
        )
    elif scaler.target_max is not None and target > scaler.target_max:
        yield Refusal(
            path,
            SCALE_TARGET,
            f"target {target} is over {scaler.target_max}, the most {scaler.autoscaler} "
            f"accepts for {measured} in {where}",
            f"write a target of {scaler.target_max} or less",
        )


def rollout(spec: dict[str, Any], engine: Engine) -> Iterator[Refusal]:
    mode, scaler = engine.scaling(spec)
    if "canaryTrafficPercent" in spec.get("rollout", {}) and not scaler.canary:
        yield Refusal(
            ["spec", "rollout", "canaryTrafficPercent"],
            CANARY,
            f"{_where(engine, mode)} does not split traffic between versions: every request "
            "would go to the new version",
            _instead(engine, lambda s: s.canary, "remove spec.rollout.canaryTrafficPercent", mode),
        )


def _signals(scaler: Scaling) -> str:
    if scaler.metrics:
        return f"{scaler.autoscaler} scales on {', '.join(scaler.metrics)}"
    if not scaler.replicas:
        return f"it is scaled by {scaler.autoscaler}"
    return f"it is scaled by {scaler.autoscaler}, between minReplicas and maxReplicas"


def _where(engine: Engine, mode: str) -> str:
    return f"{engine.name} in {mode} mode" if len(engine.modes) > 1 else engine.name


def _instead(engine: Engine, able: Callable[[Scaling], bool], otherwise: str, mode: str) -> str:
    """What to do: another autoscaler of this mode that can, else another mode of this engine
    that can, else the engines that can, else `otherwise`."""
    here = [s.name for s in engine.modes[mode].autoscalers if s.name and able(s)]
    if here:
        return f"set spec.scaling.autoscaler: {here[0]}, or {otherwise}"
    modes = [name for name, m in engine.modes.items() if name != mode and _any(m, able)]
    if modes and len(engine.modes) > 1:
        return f"set spec.engine.deploymentMode: {modes[0]}, or {otherwise}"
    elsewhere = [
        _where(other, name)
        for other in ENGINES.values()
        if other.name != engine.name
        for name, m in other.modes.items()
        if _any(m, able)
    ]
    return f"{otherwise} ({', '.join(elsewhere)} can)" if elsewhere else otherwise


def _any(mode: Mode, able: Callable[[Scaling], bool]) -> bool:
    return any(able(scaler) for scaler in mode.autoscalers)


# --- how the engine is reached and what it loads -------------------------------------------


def protocol(spec: dict[str, Any], engine: Engine) -> Iterator[Refusal]:
    spoken = spec["engine"]["protocol"]
    if spoken not in engine.protocols:
        speakers = [name for name, other in ENGINES.items() if spoken in other.protocols]
        yield Refusal(
            ["spec", "engine", "protocol"],
            PROTOCOL,
            f"{engine.name} does not speak protocol {spoken}; it speaks "
            + ", ".join(engine.protocols),
            f"set protocol to {engine.protocols[0]}, or serve the model with "
            + ", ".join(speakers),
        )


def packaging(spec: dict[str, Any], engine: Engine) -> Iterator[Refusal]:
    model = spec["model"]
    kind = IMAGE if "image" in model else ARTIFACT
    if kind not in engine.packaging:
        others = [name for name, other in ENGINES.items() if kind in other.packaging]
        yield Refusal(
            ["spec", "model", kind],
            PACKAGING,
            f"{engine.name} serves a model {' or '.join(engine.packaging)}, not a model {kind}",
            f"set spec.model.{engine.packaging[0]}, or serve the model {kind} with "
            + ", ".join(others),
        )
    if engine.folder_artifact and "sha256" in model:
        yield Refusal(
            ["spec", "model", "sha256"],
            PACKAGING,
            f"{_named(engine)} loads a model folder (config.pbtxt and the version folders "
            "inside), and sha256 names a single file",
            "point spec.model.artifact at the model's folder and name it by treeSha256 "
            "(`modelgate hash FOLDER`)",
        )
    for digest in ("sha256", "treeSha256"):
        if kind == IMAGE and digest in model:
            yield Refusal(
                ["spec", "model", digest],
                PACKAGING,
                f"{digest} checks an artifact; a model image is pinned by the digest in its "
                "reference",
                f"remove spec.model.{digest} and reference the image as "
                "registry/repository@sha256:...",
            )


# --- settings the engine has no use for ----------------------------------------------------


def engine_settings(spec: dict[str, Any], engine: Engine) -> Iterator[Refusal]:
    settings, model = spec["engine"], spec["model"]
    served_image = "image" in model
    unused = {
        "version": None
        if engine.takes_version
        else f"{engine.name} has no engine image to tag: the cluster's installation or the "
        "model image decides what runs",
        "image": _engine_image(engine, served_image),
        "runtime": _runtime(engine, served_image),
        "deploymentMode": _mode(engine, settings.get("deploymentMode")),
        "maxBatchSize": None if engine.batching else f"{engine.name} forms no batches of its own",
        "runtimeVersion": _runtime_version(engine, served_image, "runtime" in spec),
    }
    for field, why in unused.items():
        if field in settings and why:
            yield Refusal(
                ["spec", "engine", field],
                ENGINE_SETTING,
                f"spec.engine.{field} has no effect: {why}",
                f"remove spec.engine.{field}",
            )
    if "signature" in model and not engine.takes_signature:
        users = [name for name, other in ENGINES.items() if other.takes_signature]
        yield Refusal(
            ["spec", "model", "signature"],
            ENGINE_SETTING,
            f"spec.model.signature has no effect: {engine.name} reads the tensors from the "
            f"model itself (only {', '.join(users)} is configured from the signature)",
            "remove spec.model.signature",
        )


def _engine_image(engine: Engine, served_image: bool) -> str | None:
    if served_image:
        return "the model image is the server, and the engine image would replace it"
    return None if engine.image else f"{engine.name} has no engine image to replace"


def _runtime(engine: Engine, served_image: bool) -> str | None:
    if served_image:
        return "a model image serves itself"
    if engine.runtime:
        return None
    takers = [f"{other.runtime} on {name}" for name, other in ENGINES.items() if other.runtime]
    return f"{engine.name} takes no runtime (spec.engine.runtime names {', '.join(takers)})"


def _mode(engine: Engine, chosen: str | None) -> str | None:
    if len(engine.modes) < 2:
        return f"{engine.name} has no deployment modes to choose from"
    if chosen in engine.modes:
        return None
    return f"{engine.name} has no {chosen} mode; its modes are {', '.join(engine.modes)}"


def _runtime_version(engine: Engine, served_image: bool, defined: bool) -> str | None:
    if served_image:
        return "a model image serves itself, with no runtime to pick a version of"
    if defined and engine.runtime_definition:
        # KServe re-tags the runtime's image; one pinned by digest it leaves alone (or, before
        # 0.15, breaks: its tag pattern matches the digest's hex)
        return (
            "the runtime spec.runtime defines runs its image pinned by digest, which KServe "
            "does not re-tag; write the version into spec.runtime.image"
        )
    if engine.runtime_version:
        return None
    takers = [name for name, other in ENGINES.items() if other.runtime_version]
    return (
        f"{_named(engine)} picks no runtime image by version (only "
        f"{', '.join(takers)} takes runtimeVersion, outside ModelMesh)"
    )


def _named(engine: Engine) -> str:
    """The engine, with its deployment mode where the record differs in it."""
    differing = [name for name, mode in engine.modes.items() if mode.overrides]
    for name in differing:
        if engine.in_mode(name) == engine:
            return f"{engine.name} in {name} mode"
    return engine.name


# --- components and runtime definitions ---------------------------------------------------


def components(spec: dict[str, Any], engine: Engine) -> Iterator[Refusal]:
    for component in COMPONENTS:
        if component in spec and component not in engine.components:
            takers = [name for name, other in ENGINES.items() if component in other.components]
            yield Refusal(
                ["spec", component],
                ENGINE_SETTING,
                f"spec.{component} has no effect: {_named(engine)} renders no {component} "
                f"beside the model (only {', '.join(takers)} does, outside ModelMesh)",
                f"remove spec.{component}, or serve the model with "
                f"{' or '.join(takers)} in another mode",
            )


def runtime_definition(spec: dict[str, Any], engine: Engine) -> Iterator[Refusal]:
    runtime = spec.get("runtime")
    if runtime is None:
        return
    why = _runtime_unused(engine, "image" in spec["model"])
    if why:
        yield Refusal(
            ["spec", "runtime"],
            ENGINE_SETTING,
            f"spec.runtime has no effect: {why}",
            "remove spec.runtime",
        )
        return
    yield from _runtime_fit(spec, runtime, engine)


def _runtime_unused(engine: Engine, served_image: bool) -> str | None:
    if served_image:
        return "a model image serves itself, and no runtime loads it"
    if engine.runtime_definition:
        return None
    takers = [name for name, other in ENGINES.items() if other.runtime_definition]
    return (
        f"{engine.name} renders no runtime definition (only {', '.join(takers)} renders "
        "spec.runtime, as a ServingRuntime)"
    )


def _runtime_fit(
    spec: dict[str, Any], runtime: dict[str, Any], engine: Engine
) -> Iterator[Refusal]:
    """A runtime that cannot load the spec's model: KServe would refuse the pair, or ModelMesh
    would never place the model on it."""
    model_format = spec["model"]["format"]
    formats = [entry["name"] for entry in runtime["formats"]]
    if model_format not in formats:
        yield Refusal(
            ["spec", "runtime", "formats"],
            RUNTIME_FIT,
            f"the runtime serves {', '.join(formats)}, not the model's format {model_format}",
            f"add {{name: {model_format}}} to spec.runtime.formats",
        )
    protocol = spec["engine"]["protocol"]
    if "protocols" in runtime and protocol not in runtime["protocols"]:
        yield Refusal(
            ["spec", "runtime", "protocols"],
            RUNTIME_FIT,
            f"the runtime speaks {', '.join(runtime['protocols'])}, not the endpoint's "
            f"protocol {protocol}",
            f"add {protocol} to spec.runtime.protocols, or change spec.engine.protocol",
        )
    multi = runtime.get("multiModel", False)
    if "replicas" in runtime and not multi:
        yield Refusal(
            ["spec", "runtime", "replicas"],
            ENGINE_SETTING,
            "spec.runtime.replicas has no effect: a single-model runtime's pods are the "
            "predictor's, which spec.scaling bounds",
            "remove spec.runtime.replicas, and set spec.scaling.minReplicas and maxReplicas",
        )
    if multi != engine.multi_model:
        mode = engine.mode(spec["engine"])
        yield Refusal(
            ["spec", "runtime", "multiModel"] if "multiModel" in runtime else ["spec", "runtime"],
            RUNTIME_FIT,
            f"{_where(engine, mode)} needs a "
            f"{'multi-model' if engine.multi_model else 'single-model'} runtime; this one is "
            f"{'multi-model' if multi else 'single-model'}",
            "set spec.runtime.multiModel: true for ModelMesh (spec.engine.deploymentMode: "
            "ModelMesh), and leave it out otherwise",
        )


def pod_settings(spec: dict[str, Any], engine: Engine) -> Iterator[Refusal]:
    if engine.pod:
        return
    why = (
        f"{_named(engine)} runs the model on servers the cluster provides, and modelgate "
        "writes no pod for it"
    )
    resources = spec.get("resources", {})
    written = (
        (["spec", "engine", "args"], "args" in spec["engine"]),
        (["spec", "engine", "env"], "env" in spec["engine"]),
        (["spec", "security"], "security" in spec),
        (["spec", "serviceAccountName"], "serviceAccountName" in spec),
        (["spec", "resources", "gpu"], bool(resources.get("gpu"))),  # 0: none
        (["spec", "resources", "accelerator"], "accelerator" in resources),
        (["spec", "resources", "acceleratorProduct"], "acceleratorProduct" in resources),
        (["spec", "scheduling"], "scheduling" in spec),
        (["spec", "probes"], "probes" in spec),
        (["spec", "volumes"], "volumes" in spec),
    )
    for path in (path for path, here in written if here):
        yield Refusal(
            path,
            POD_SETTING,
            f"{'.'.join(map(str, path))} has no effect: {why}",
            "remove it: the cluster's servers for this engine carry their own settings",
        )


def host_access(spec: dict[str, Any], engine: Engine) -> Iterator[Refusal]:
    """No engine's manifests give a model server the node's network, ports or paths."""
    if not engine.pod:
        return  # spec.security as a whole is refused
    security = spec.get("security", {})
    for field in ("hostNetwork", "hostPorts", "hostPaths"):
        if security.get(field):
            yield Refusal(
                ["spec", "security", field],
                HOST_ACCESS,
                f"spec.security.{field} has no effect: modelgate renders no host network, "
                "host ports or host paths for any engine",
                f"remove spec.security.{field}",
            )


# --- pins: what the spec's revision and digest can be checked against -----------------------


def revision(spec: dict[str, Any], engine: Engine) -> Iterator[Refusal]:
    """spec.model.revision names a commit of a Hugging Face repository: for an hf:// artifact
    on an engine with a revision setting, and for nothing else."""
    model = spec["model"]
    if "revision" not in model:
        return
    where: JsonPath = ["spec", "model", "revision"]
    artifact = model.get("artifact", "")
    if not artifact.startswith("hf://"):
        yield Refusal(
            where,
            REVISION,
            "spec.model.revision has no effect: it names a commit of a Hugging Face repository "
            f"(hf://), and {_pinned_by(model)}",
            "remove spec.model.revision",
        )
    elif not engine.revision:
        takers = [f"{name} ({other.revision})" for name, other in ENGINES.items() if other.revision]
        yield Refusal(
            where,
            REVISION,
            f"{engine.name} cannot pin a Hugging Face revision: "
            + (
                "the cluster's servers download the model themselves, with no revision setting"
                if not engine.pod
                else f"{engine.name} has no revision setting"
            ),
            "serve the model with an engine that takes one: " + ", ".join(takers),
        )


def _pinned_by(model: dict[str, Any]) -> str:
    if "image" in model:
        return "a model image is pinned by the digest in its reference"
    artifact = model.get("artifact", "")
    if artifact.startswith("oci://"):
        return "an oci:// artifact is pinned by a digest in its reference (oci://...@sha256:...)"
    if "://" in artifact:
        return (
            "an artifact in a store is pinned by its sha256 or treeSha256, which the pod "
            "checks before the server starts"
        )
    return "a repository artifact is pinned by its sha256 or treeSha256"


def unchecked_digest(spec: dict[str, Any], engine: Engine) -> Iterator[Refusal]:
    """A digest nothing could check: of a Hugging Face snapshot (pinned by its revision; a
    download adds its own metadata files beside the model's), of an oci:// artifact (its
    reference carries the digest), or of an archive the storage initializer unpacks."""
    model = spec["model"]
    field = digest_field(model)
    artifact = model.get("artifact", "")
    if field is None or not artifact:
        return
    where: JsonPath = ["spec", "model", field]
    if artifact.startswith(("hf://", "oci://")):
        pin = "spec.model.revision" if artifact.startswith("hf://") else "a digest in the reference"
        yield Refusal(
            where,
            UNCHECKED_DIGEST,
            f"spec.model.{field} has no effect: nothing checks a digest of an "
            f"{artifact.split('://')[0]}:// artifact, which {pin} pins",
            f"remove spec.model.{field} and pin the artifact by {pin}",
        )
    elif verified_by_pod(spec) and artifact.lower().endswith(ARCHIVES):
        yield Refusal(
            where,
            UNCHECKED_DIGEST,
            f"the pod cannot check the {field} of {artifact}: {engine.name}'s storage "
            "initializer unpacks archives, and the archive is gone when the check runs",
            "store the model unpacked, as a folder, and name it by treeSha256 "
            "(`modelgate hash FOLDER` prints the line)",
        )


def cache_volume(spec: dict[str, Any], engine: Engine) -> Iterator[Refusal]:
    if not engine.pod or engine.cache or "cache" not in spec.get("volumes", {}):
        return
    takers = [name for name, other in ENGINES.items() if other.cache]
    yield Refusal(
        ["spec", "volumes", "cache"],
        ENGINE_SETTING,
        f"spec.volumes.cache has no effect: {engine.name} fetches no model into a cache "
        "volume of its own",
        f"remove spec.volumes.cache (only {', '.join(takers)} keep a model cache)",
    )


def accelerator(spec: dict[str, Any], engine: Engine) -> Iterator[Refusal]:
    """An engine's own image can use the GPUs of some vendors, or none, and may need one to
    start; an image the spec names (the engine's, or a model image) is the spec's own build,
    for whichever vendor it says, or a CPU."""
    resources = spec.get("resources", {})
    own_image = "image" in spec["engine"] or "image" in spec["model"]
    if not engine.pod or own_image:
        return  # a GPU on a pod that is not the spec's is MG227's (check/pod.py)
    vendors = engine.gpus.vendors
    if not resources.get("gpu"):
        if engine.gpus.required:
            yield Refusal(
                ["spec", "resources", "gpu"] if "gpu" in resources else ["spec", "resources"],
                GPU_REQUIRED,
                f"{engine.name}'s image is built for {_vendors(vendors, 'and')} GPUs and does "
                "not start without one, and the spec asks for none",
                "set spec.resources.gpu to 1 or more, or set spec.engine.image to a CPU build "
                f"of {engine.name} (judged by MG-SEC-001 and MG-SEC-002)",
            )
        return  # without a GPU, a vendor is refused as having no effect (check/pod.py)
    vendor = resources.get("accelerator", EVERY_ACCELERATOR[0])
    if vendor in vendors:
        return
    where = "accelerator" if "accelerator" in resources else "gpu"
    if not vendors:
        yield Refusal(
            ["spec", "resources", where],
            ACCELERATOR,
            f"{engine.name}'s image is a CPU-only build: it would never use the {vendor} GPU "
            "it is given",
            f"remove spec.resources.gpu, or set spec.engine.image to a {vendor} build of "
            f"{engine.name} (judged by MG-SEC-001 and MG-SEC-002)",
        )
        return
    yield Refusal(
        ["spec", "resources", where],
        ACCELERATOR,
        f"{engine.name}'s image is built for {_vendors(vendors, 'and')} GPUs, not {vendor}: "
        f"the server would not see the {vendor} GPU it is given",
        f"set spec.engine.image to a {vendor} build of {engine.name} (judged by MG-SEC-001 and "
        f"MG-SEC-002), or use {_vendors(vendors, 'or')} GPUs (spec.resources.accelerator)",
    )


def _vendors(vendors: tuple[str, ...], joined_by: str) -> str:
    return f" {joined_by} ".join(vendors)


RULES: tuple[Callable[[dict[str, Any], Engine], Iterator[Refusal]], ...] = (
    scaling,
    rollout,
    protocol,
    packaging,
    engine_settings,
    components,
    runtime_definition,
    pod_settings,
    host_access,
    revision,
    unchecked_digest,
    cache_volume,
    accelerator,
)
