"""One record per engine: everything modelgate knows about an inference engine.

Each module in this package defines `ENGINE = Engine(...)` (yamllint's rules are the model:
one self-describing module each). The schema's `engine.name` enum, the built-in policy's
engine allow-list, `modelgate new --engine`, the defaults under `engines:` in
templates/values.yaml and the engine table of docs/spec.md (report/engine_table.py) all
come from these records, so adding an engine is one module here plus its folder in
templates/ (and its tests).

Template paths are relative to templates/; the output file is the template's name without
".j2". `local` templates make rendered/local/NAME/ (the local target's files), `cluster`
templates make rendered/ENV/NAME/ for each environment of the spec.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# The service mesh's policies for a model's pods (Istio): each renders only where its
# spec.endpoint asks for it and templates/values.yaml declares the mesh (check/exposure.py).
MESH = (
    "_k8s/peerauthentication.yaml.j2",
    "_k8s/requestauthentication.yaml.j2",
    "_k8s/authorizationpolicy.yaml.j2",
)
# What every Deployment-based engine renders besides its workload (the Ingress only for a
# public endpoint; the HorizontalPodAutoscaler or the KEDA ScaledObject, as scaling.autoscaler
# chooses).
WORKLOAD = (
    "_k8s/service.yaml.j2",
    "_k8s/hpa.yaml.j2",
    "_k8s/scaledobject.yaml.j2",
    "_k8s/pdb.yaml.j2",
    "_k8s/networkpolicy.yaml.j2",
    "_k8s/ingress.yaml.j2",
    *MESH,
)
# How spec.endpoint becomes resources (check/exposure.py): a Deployment-based engine's own
# Service, Ingress, NetworkPolicy and mesh policies; an InferenceService behind KServe's
# ingress; or a Seldon Core v2 Model behind the servers and mesh every model shares.
# KServe ModelMesh serves every model through the one Service of its shared runtime pods.
BY_WORKLOAD, BY_INFERENCE_SERVICE, BY_SELDON = "workload", "inference-service", "seldon"
BY_MODELMESH = "modelmesh"
# spec.model.format's values (the schema's enum; a test keeps them equal)
EVERY_FORMAT = (
    "sklearn", "xgboost", "lightgbm", "onnx", "pytorch", "tensorflow", "huggingface", "gguf",
    "custom",
)  # fmt: skip
# The health paths each inference protocol defines (server liveness, model readiness): what a
# custom container speaking that protocol answers. {name} is the model's name.
PROTOCOL_HEALTH = {
    "v2": ("/v2/health/live", "/v2/health/ready"),
    "v1": ("/", "/v1/models/{name}"),
    "openai": ("/health", "/health"),  # vLLM, TGI, llama.cpp: unauthenticated, unlike /v1/models
}


@dataclass(frozen=True)
class Accelerator:
    """A GPU vendor as Kubernetes sees it: the extended resource its device plugin advertises,
    and the node label its feature discovery sets to the GPU's product name."""

    resource: str
    product_label: str


# spec.resources.accelerator -> the vendor; the first is the default (spec.resources.gpu alone)
ACCELERATORS: dict[str, Accelerator] = {
    # NVIDIA device plugin; GPU feature discovery (e.g. NVIDIA-A100-SXM4-80GB)
    "nvidia": Accelerator("nvidia.com/gpu", "nvidia.com/gpu.product"),
    # ROCm device plugin; its node labeller (e.g. AMD_Instinct_MI300X_OAM)
    "amd": Accelerator("amd.com/gpu", "amd.com/gpu.product-name"),
    # Intel GPU plugin; the NFD rules of intel-device-plugins-for-kubernetes (e.g. Max_1550)
    "intel": Accelerator("gpu.intel.com/i915", "gpu.intel.com/product"),
}
EVERY_ACCELERATOR = tuple(ACCELERATORS)
# GPU nodes are tainted so that only pods asking for GPUs land there: the taint's key is the
# vendor's resource (nvidia.com/gpu on GKE, EKS and the GPU operator's node pools)
GPU_TAINT_EFFECT = "NoSchedule"


def tolerates(toleration: Any, key: str, effect: str = GPU_TAINT_EFFECT) -> bool:
    """A pod toleration lets the pod onto nodes tainted `key` with `effect`, whatever the
    taint's value: every key (operator Exists, no key), or the key, of that effect or all."""
    if not isinstance(toleration, Mapping):
        return False
    if toleration.get("effect") not in (None, "", effect):
        return False
    if toleration.get("key") in (None, ""):
        return toleration.get("operator") == "Exists"
    return toleration.get("key") == key


@dataclass(frozen=True)
class Gpus:
    """The GPUs an engine's own image can use: the vendors (ACCELERATORS) it is built for, none
    for a CPU-only build, and whether the server needs one to start at all."""

    vendors: tuple[str, ...]
    required: bool = False


CPU_ONLY = Gpus(())


# How a pod gets an artifact from a store (spec.model.artifact, or the artifact store a
# repository artifact is uploaded to): an init container (values.storageInitializer) fetches
# it ALWAYS; for STORES only what is not on the Hugging Face Hub (hf://, which the server
# downloads itself at spec.model.revision); TO_VERIFY only when the spec names a digest to
# check (the cluster fetches it otherwise, KServe's own storage initializer). What is fetched
# with a digest is checked by a second init container before the server starts.
ALWAYS, STORES, TO_VERIFY = "always", "stores", "to-verify"
COMPOSE_TEMPLATE = "docker/compose.yaml.j2"
APPLICATIONSET_TEMPLATE = "argocd/applicationset.yaml.j2"
# The Argo CD project of a team's Applications in an environment, made from the kinds the
# team renders there (rendered/ENV/_rbac/, with the deployer's Role: a cluster admin applies
# both)
APPPROJECT_TEMPLATE = "argocd/appproject.yaml.j2"
# What an environment's ApplicationSet reads of each model (its git files generator): the team
# whose project the model's Application belongs to, rendered/ENV/NAME/application.json
APPLICATION_TEMPLATE = "argocd/application.json.j2"
APPLICATION_FILE = "application.json"
ARTIFACT, IMAGE = "artifact", "image"  # how a model is packaged: spec.model.artifact or .image


# spec.scaling.autoscaler: who scales a model. hpa: a HorizontalPodAutoscaler (Knative's HPA
# class in KServe Serverless mode); keda: a KEDA ScaledObject; knative: Knative's own
# autoscaler (KPA). Seldon and ModelMesh scale models themselves: a spec cannot name them.
HPA, KEDA, KNATIVE = "hpa", "keda", "knative"
AUTOSCALERS = (HPA, KEDA, KNATIVE)
# spec.transformer and spec.explainer: KServe components beside the predictor
COMPONENTS = ("transformer", "explainer")
# What a transformer or explainer answers whatever serves the predictor: it is a KServe model
# server (the kserve package's ModelServer), with the Open Inference Protocol's health paths
COMPONENT_HEALTH = ("/v2/health/live", "/v2/health/ready")


@dataclass(frozen=True)
class Scaling:
    """What one autoscaler (of an engine in one deployment mode) does with spec.scaling and
    spec.rollout. Validation refuses what it cannot do (validator/check/capabilities.py)."""

    autoscaler: str  # who scales, for messages and the docs: "a HorizontalPodAutoscaler"
    name: str = ""  # the spec.scaling.autoscaler value that picks it; "": a spec cannot name it
    metrics: tuple[str, ...] = ()  # scaling.metric values it scales on, the default first;
    # none: it scales on a signal of its own, and scaling.metric and .target have no effect
    whole_targets: tuple[str, ...] = ()  # metrics whose target it takes as a whole number
    target_max: int | None = None  # the largest target it accepts
    to_zero: bool = False  # minReplicas 0 scales the model down to no replicas when idle
    canary: bool = False  # rollout.canaryTrafficPercent splits traffic between revisions
    # scaling.minReplicas and .maxReplicas bound it; False where something else decides how
    # many pods serve the model (ModelMesh: its ServingRuntime)
    replicas: bool = True


@dataclass(frozen=True)
class Mode:
    """One deployment mode (spec.engine.deploymentMode): the autoscalers it can use, the
    default first, and the engine record's fields that differ in it (a triton model in
    Seldon mode is a Seldon Model on the cluster's Triton servers, not a Deployment)."""

    autoscalers: tuple[Scaling, ...]
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def autoscaler(self, settings: Mapping[str, Any]) -> Scaling:
        """The autoscaler spec.scaling names, where this mode has it, else the default."""
        named = {scaler.name: scaler for scaler in self.autoscalers if scaler.name}
        return named.get(settings.get("autoscaler", ""), self.autoscalers[0])


# Deployment-based engines: a Deployment scaled by the HorizontalPodAutoscaler of
# templates/_k8s/hpa.yaml.j2 (resource utilisation in percent, or per-pod request metrics),
# or by the KEDA ScaledObject of templates/_k8s/scaledobject.yaml.j2 in its place (the
# request metrics as Prometheus queries, or KEDA's cpu and memory scalers). Neither scales
# from zero: the request series come from the model's own pods.
DEPLOYMENT = "Deployment"
HPA_SCALING = Scaling(
    autoscaler="a HorizontalPodAutoscaler on a Deployment",
    name=HPA,
    metrics=("cpu", "memory", "rps", "concurrency"),
    whole_targets=("cpu", "memory"),
)
KEDA_SCALING = Scaling(
    autoscaler="a KEDA ScaledObject on a Deployment",
    name=KEDA,
    metrics=("rps", "concurrency", "cpu", "memory"),
    whole_targets=("cpu", "memory"),
)
DEPLOYMENT_MODE = Mode((HPA_SCALING, KEDA_SCALING))


MIB, GIB = 2**20, 2**30


@dataclass(frozen=True)
class GpuMemory:
    """How an engine that loads a model's weights onto GPUs spends their memory, as its own
    flags and defaults decide it: what validator/check/fit/ needs to tell whether a spec
    fits the GPUs it asks for. Flags are given with every spelling the engine accepts; the
    first one a spec's engine.args sets wins. Each figure says where it comes from."""

    # the tokens each sequence's KV cache holds; 0: the model's own context length
    context_flags: tuple[str, ...] = ()
    fallback_context_flags: tuple[str, ...] = ()  # read where context_flags are not given
    default_context: int = 0
    context_padding: int = 1  # the engine rounds the context up to a multiple of this
    # the sequences that hold a full context each at once; none: one
    sequence_flags: tuple[str, ...] = ()
    default_sequences: int = 1
    # sequences the engine batches, where they share the cache sized above (reported only)
    batch_flags: tuple[str, ...] = ()
    default_batch: int = 0
    kv_dtype_flags: tuple[str, ...] = ()
    kv_value_dtype_flags: tuple[str, ...] = ()  # the V cache's, where set apart from the K's
    # a KV-cache dtype flag value -> bytes per element; a value not listed: the model's dtype
    kv_dtypes: Mapping[str, float] = field(default_factory=dict)
    default_kv_dtype: str = ""  # "": the model's dtype
    dtype_flags: tuple[str, ...] = ()  # the dtype floating-point weights are loaded in
    # floating-point weights are loaded in the served dtype (float32 checkpoints in
    # float16), not as stored; False: every tensor as its file stores it (GGUF)
    casts_weights: bool = False
    quantization_flags: tuple[str, ...] = ()
    # a method that quantizes a checkpoint as it loads -> bytes per element of the decoder
    # layers' matrices; methods not listed read checkpoints already quantized (their file's
    # bytes are what loads)
    quantized_on_load: Mapping[str, float] = field(default_factory=dict)
    tensor_parallel_flags: tuple[str, ...] = ()
    default_tensor_parallel: int = 0  # 0: every GPU the pod asks for
    utilisation_flags: tuple[str, ...] = ()
    default_utilisation: float = 1.0
    # the decoder layers offloaded to GPUs (llama.cpp's -ngl); none: every layer
    gpu_layer_flags: tuple[str, ...] = ()
    default_gpu_layers: int | None = None
    kv_cache: bool = True  # False: no KV cache (Triton's ONNX, PyTorch and TensorFlow models)
    # activations, CUDA context, graphs and workspaces beside weights and KV cache, per GPU
    reserve: int = 0
    reserve_source: str = ""


# The deployer's Role and its binding, per environment (rendered/ENV/_rbac/)
RBAC_TEMPLATES = ("_k8s/role.yaml.j2", "_k8s/rolebinding.yaml.j2")


@dataclass(frozen=True)
class LocalDrop:
    """An engine argument the build the local target runs cannot take (a GPU's setting on a
    CPU build): left out of the command line it runs there, with its value when that is
    given apart (`takes_value`), and the deploy's report names it with `reason`."""

    flag: str
    reason: str
    takes_value: bool = True


@dataclass(frozen=True)
class Engine:
    name: str
    summary: str  # one line for the docs and `new`
    formats: tuple[str, ...]  # model formats it can serve
    protocols: tuple[str, ...]  # v1, v2, openai
    default_version: str = ""
    versions: tuple[str, ...] = ()  # versions the built-in policy allows (shell patterns)
    # repository:tag under values.imageMirror, {version} filled in; rendered pinned by the
    # digest templates/values.yaml's `images` holds for it (`modelgate images pin`)
    image: str = ""
    port: int = 8080
    metrics_port: int = 0  # where Prometheus metrics are served, when not on `port`
    live: str = "/v2/health/live"
    ready: str = "/v2/health/ready"
    llm: bool = False  # a large language model server: GPUs, large pods, slow to load
    local: tuple[str, ...] = ()  # the local target runs the engines that have local templates
    # How the local target starts it: an executable (MODELGATE_<NAME> if set, else beside
    # modelgate's Python, else on PATH), its arguments and environment, where {model_dir},
    # {http_port}, {grpc_port}, {workdir} and {environment} (the engine's environment, where
    # what it compiles is kept between deploys) are filled in.
    local_command: tuple[str, ...] = ()
    local_env: Mapping[str, str] = field(default_factory=dict)
    # The environment the local target runs it from, by model format ("*": any format): the
    # `engine-NAME` dependency group, locked in locks/engine-NAME.txt and installed on first
    # use (validator/deploy/environments.py); its executable is local_command[0] in its bin/.
    # {servers} is filled in too: the model servers modelgate ships (engines/_servers/). A
    # format without one runs beside modelgate (the embedded engine, the `serve` extra).
    local_environments: Mapping[str, str] = field(default_factory=dict)
    # The model formats the local target serves with it; empty: every format it serves.
    local_formats: tuple[str, ...] = ()
    # spec.engine.args the local target leaves out, each with why (its build is a CPU one)
    local_drops: tuple[LocalDrop, ...] = ()
    cluster: tuple[str, ...] = ()
    # a model configuration template (Triton's config.pbtxt): checked against its grammar and
    # given to the cluster templates as v.model_config; it needs the spec's tensor signature
    model_config: str = ""
    # when an init container fetches the artifact with values.storageInitializer (pinned like
    # `image`): ALWAYS, STORES or TO_VERIFY (see ALWAYS); "": never, the cluster does
    fetch: str = ""
    # its pods pull a model image named by an oci:// storage URI (KServe's "modelcar")
    model_images: bool = False
    # the emptyDir the artifact is fetched into; where the server mounts it when that is not
    # its `cache` volume (KServe's /mnt/models); and the folder in it the artifact goes to
    # ({name} is the spec's name): a folder artifact goes into a folder of its own name there
    # when `folder_by_name` (Triton's config.pbtxt names it)
    model_volume: str = ""
    model_mount: str = ""
    model_dir: str = ""
    folder_by_name: bool = False
    # How the engine takes spec.model.revision, the commit of a Hugging Face repository: the
    # flags each given it, the variable set to it, or the storage URI (hf://ORG/NAME:REVISION,
    # KServe's storage initializer). None: validator/check/capabilities.py refuses the field.
    revision_args: tuple[str, ...] = ()
    revision_env: str = ""
    revision_in_uri: bool = False
    runtimes: Mapping[str, str] = field(default_factory=dict)  # format -> default runtime
    # runtimes that load the model with pickle (joblib.load, torch.load): a spec served by
    # one is pickle-based whatever its format says (MG-SEC-009, MG-SEC-160)
    pickle_runtimes: tuple[str, ...] = ()
    named_runtimes: Mapping[str, str] = field(default_factory=dict)  # format -> what `new` names
    # runtime -> (liveness, readiness) paths, for runtimes that do not answer the engine's
    # own `live` and `ready` paths; {name} is the model's name. A spec's runtime, else the
    # one named_runtimes gives for its format (the one the cluster picks by itself).
    runtime_health: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    platforms: Mapping[str, str] = field(default_factory=dict)  # format -> Triton platform
    requirements: Mapping[str, str] = field(default_factory=dict)  # format -> Seldon capability
    # the label its pods carry with the spec's name: what NetworkPolicies, PodDisruptionBudgets
    # and mesh policies select (KServe labels an InferenceService's pods with its own)
    pod_label: str = "app.kubernetes.io/name"
    # the name of the pod port requests arrive at; empty: the container port's number
    port_name: str = "http"
    # environment the server needs in clusters (caches on its writable volumes, no telemetry)
    cluster_env: Mapping[str, str] = field(default_factory=dict)
    exposure: str = BY_WORKLOAD  # how its spec.endpoint is honoured (see BY_WORKLOAD)
    # The environment variable through which the engine itself refuses requests without the
    # API key (auth.type apiKey), and its first version that does; "" where it cannot.
    api_key_env: str = ""
    api_key_since: str = ""
    # What the engine can honour; validator/check/capabilities.py refuses the rest.
    # Deployment modes (spec.engine.deploymentMode), the default first; a spec chooses only
    # where there are two or more.
    modes: Mapping[str, Mode] = field(default_factory=lambda: {DEPLOYMENT: DEPLOYMENT_MODE})
    packaging: tuple[str, ...] = (ARTIFACT,)  # spec.model.artifact and/or spec.model.image
    runtime: str = ""  # what spec.engine.runtime names on this engine; "": it takes none
    batching: bool = False  # spec.engine.maxBatchSize sets the batch the engine forms
    # modelgate writes the server's pod: args, env, security, service account, GPUs,
    # scheduling, probes and volumes reach it. False where the cluster's own servers run the
    # model (a Seldon Model).
    pod: bool = True
    # Where the server keeps the model it fetches: an emptyDir, sized by spec.volumes.cache
    # (else templates/values.yaml's modelCacheSize). "": it keeps none of its own.
    cache: str = ""
    # the GPUs its own image can use, said by every record; a spec that names its engine image
    # (or a model image) brings its own build, for any vendor or none
    gpus: Gpus = field(kw_only=True)
    components: tuple[str, ...] = ()  # of COMPONENTS: rendered beside the predictor
    # spec.runtime: a runtime definition it renders (a KServe ServingRuntime); "" where none
    runtime_definition: str = ""
    multi_model: bool = False  # its runtime serves many models at once (ModelMesh)
    runtime_version: bool = False  # spec.engine.runtimeVersion picks the runtime's image tag
    # the Deployment whose pods serve the model in clusters ({name}: metadata.name): what a
    # KEDA query selects
    workload: str = "{name}"
    # it loads a model folder (Triton's model repository layout), never a single file: an
    # artifact named by sha256 (a file) cannot be one
    folder_artifact: bool = False
    # how it spends GPU memory (validator/check/fit/); None: it loads no weights onto GPUs
    # that modelgate can size
    gpu_memory: GpuMemory | None = None

    @property
    def templates(self) -> tuple[str, ...]:
        """Every template it may render, in any of its modes."""
        moded = [m.overrides.get("cluster", ()) for m in self.modes.values()]
        every = (*self.local, *((self.model_config,) if self.model_config else ()), *self.cluster)
        return tuple(dict.fromkeys((*every, *(t for cluster in moded for t in cluster))))

    def serves_locally(self, model_format: str) -> bool:
        """The local target can start it for a model of this format."""
        return bool(self.local_command) and model_format in (self.local_formats or self.formats)

    def local_environment(self, model_format: str) -> str:
        """The environment (locks/engine-NAME.txt) the local target runs this format from;
        "" for modelgate's own."""
        environments = self.local_environments
        return environments.get(model_format) or environments.get("*", "")

    def local_args(self, args: list[str]) -> tuple[list[str], list[str]]:
        """spec.engine.args as the local target runs them, and what it left out: one line
        each, the argument as the spec gives it and why."""
        drops = {drop.flag: drop for drop in self.local_drops}
        kept: list[str] = []
        dropped: list[str] = []
        pending = iter(args)
        for argument in pending:
            flag = argument.split("=", 1)[0]
            drop = drops.get(flag)
            if drop is None:
                kept.append(argument)
                continue
            if drop.takes_value and argument == flag:
                argument = f"{flag} {next(pending, '')}".rstrip()
            dropped.append(f"{argument}: {drop.reason}")
        return kept, dropped

    @property
    def image_only(self) -> bool:
        return self.packaging == (IMAGE,)

    @property
    def takes_version(self) -> bool:
        """spec.engine.version picks the image tag, or is checked against the policy's
        version allow-list; else the cluster's installation decides what runs."""
        return "{version}" in self.image or bool(self.versions)

    @property
    def revision(self) -> str:
        """How it takes spec.model.revision, in words; "" when it cannot."""
        if self.revision_args:
            return " and ".join(self.revision_args)
        if self.revision_env:
            return f"the {self.revision_env} variable"
        return "the storage URI, hf://ORG/NAME:REVISION" if self.revision_in_uri else ""

    @property
    def fetch_mount(self) -> str:
        """Where the volume the model is fetched into is mounted."""
        return self.model_mount or self.cache

    @property
    def storage_initializer(self) -> bool:
        """Its pods may fetch their artifact with values.storageInitializer."""
        return bool(self.fetch)

    @property
    def takes_signature(self) -> bool:
        return bool(self.model_config)  # the model configuration is written from it

    def mode(self, engine_spec: Mapping[str, Any]) -> str:
        """The deployment mode a spec's engine block chooses, or the default."""
        chosen = engine_spec.get("deploymentMode") if len(self.modes) > 1 else None
        return chosen if chosen in self.modes else next(iter(self.modes))

    def scaling(self, spec: Mapping[str, Any]) -> tuple[str, Scaling]:
        """The spec's deployment mode and the autoscaler that scales it there."""
        mode = self.mode(spec["engine"])
        return mode, self.modes[mode].autoscaler(spec.get("scaling", {}))

    def in_mode(self, mode: str) -> Engine:
        """This record as it is in `mode`: its fields, with the mode's overrides."""
        return _in_mode(self, mode)

    def values(self) -> dict[str, Any]:
        """The defaults templates/values.yaml may override under engines.NAME."""
        return {
            "image": self.image,
            "defaultVersion": self.default_version,
            "port": self.port,
            "live": self.live,
            "ready": self.ready,
        }

    def policy(self) -> dict[str, Any]:
        """This engine's entry in the built-in policy parameter `engines`."""
        entry: dict[str, Any] = {"formats": list(self.formats)}
        if self.versions:
            entry["versions"] = list(self.versions)
        return entry


def _discover() -> dict[str, Engine]:
    found = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if module.name.startswith("_"):
            continue
        engine = importlib.import_module(f"{__name__}.{module.name}").ENGINE
        found[engine.name] = engine
    return found


ENGINES: dict[str, Engine] = _discover()


_MODED: dict[tuple[str, str], Engine] = {}


def _in_mode(engine: Engine, mode: str) -> Engine:
    key = (engine.name, mode)
    if key not in _MODED:
        overrides = engine.modes[mode].overrides
        _MODED[key] = replace(engine, **overrides) if overrides else engine
    return _MODED[key]


def engine_for(spec: Mapping[str, Any]) -> Engine:
    """The record of the engine that serves `spec`, as it is in the spec's deployment mode."""
    engine = ENGINES[spec["engine"]["name"]]
    return engine.in_mode(engine.mode(spec["engine"]))


def engine_values(values: Mapping[str, Any], name: str) -> dict[str, Any]:
    """An engine's image, version, port and health paths: its record's defaults, overridden
    by templates/values.yaml's engines.NAME."""
    record = ENGINES[name].values()
    return {**record, **(values.get("engines") or {}).get(name, {})}


def health_paths(spec: Mapping[str, Any], name: str, values: Mapping[str, Any]) -> tuple[str, str]:
    """(liveness, readiness) paths of the server that serves `spec` in a cluster: those
    spec.probes names, else the engine record's (as templates/values.yaml may override them),
    or, for a model image serving itself, those of the protocol it speaks."""
    live, ready = _default_health(spec, name, values)
    probes = spec.get("probes", {})
    return (
        probes.get("liveness", {}).get("path", live),
        probes.get("readiness", {}).get("path", ready),
    )


def _default_health(
    spec: Mapping[str, Any], name: str, values: Mapping[str, Any]
) -> tuple[str, str]:
    engine = ENGINES[spec["engine"]["name"]]
    if engine.image_only or "image" in spec["model"]:
        live, ready = PROTOCOL_HEALTH[spec["engine"]["protocol"]]
        return live, ready.format(name=name)
    named = engine.named_runtimes.get(spec["model"].get("format", ""))
    runtime = spec["engine"].get("runtime") or named
    if runtime in engine.runtime_health:
        live, ready = engine.runtime_health[runtime]
        return live.format(name=name), ready.format(name=name)
    defaults = engine_values(values, engine.name)
    return defaults["live"], defaults["ready"]


def fetched_by_pod(spec: Mapping[str, Any]) -> bool:
    """The spec's cluster pod fetches its artifact with an init container before the server
    starts (values.storageInitializer)."""
    engine = engine_for(spec)
    artifact = spec["model"].get("artifact")
    if not artifact or not engine.fetch:
        return False
    if engine.fetch == STORES:
        return not artifact.startswith("hf://")
    if engine.fetch == TO_VERIFY:
        return digest_field(spec["model"]) is not None
    return True


def verified_by_pod(spec: Mapping[str, Any]) -> bool:
    """The spec's cluster pod checks the fetched artifact's digest before the server starts."""
    return fetched_by_pod(spec) and digest_field(spec["model"]) is not None


def digest_field(model: Mapping[str, Any]) -> str | None:
    """sha256 (a file) or treeSha256 (a folder), whichever the spec names."""
    return next((name for name in ("sha256", "treeSha256") if name in model), None)


def accelerator_of(spec: Mapping[str, Any]) -> Accelerator:
    """The GPU vendor spec.resources names (NVIDIA unless it says otherwise)."""
    return ACCELERATORS[spec.get("resources", {}).get("accelerator", EVERY_ACCELERATOR[0])]


def loads_pickles(spec: Mapping[str, Any]) -> bool:
    """The runtime that serves the spec's model loads it with pickle: the spec's own runtime,
    else the one its engine picks for the format."""
    engine = ENGINES[spec["engine"]["name"]]
    model_format = spec["model"].get("format", "")
    runtime = (
        spec["engine"].get("runtime")
        or engine.runtimes.get(model_format)
        or engine.named_runtimes.get(model_format)
    )
    return runtime in engine.pickle_runtimes


def runtime_for(spec: dict) -> str | None:
    """The runtime named in the spec, else the engine's default for the model format."""
    engine = spec["engine"]
    if engine.get("runtime"):
        return engine["runtime"]
    return ENGINES[engine["name"]].runtimes.get(spec["model"]["format"])


def policy_parameter() -> dict[str, dict[str, Any]]:
    """The built-in `engines` policy parameter: every engine with the formats it serves."""
    return {name: engine.policy() for name, engine in ENGINES.items()}
