"""The rendered manifests against a real Kubernetes API server (tests/kube_env.py): every object
of rendered/ (and of specs of every engine and format, rendered by `modelgate render`) is
accepted by a server-side dry run with strict field validation, and comes back with every field
it sent, with the value it sent. What Argo CD syncs is then what the server keeps: a field the
server drops or rewrites is a diff on every sync.

Kinds the server does not serve (no CRD at hand) are skipped, and each skip says which."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from validator.cli import scaffold
from validator.engines import ENGINES

from . import kube_env
from .conftest import PROJECT, fill_in, run_cli

pytestmark = pytest.mark.kube
RENDERED = PROJECT / "rendered"
KEDA = "vllm-keda"  # a spec scaled by KEDA: a ScaledObject instead of an HPA
ENGINE_FORMATS = [(engine.name, fmt) for engine in ENGINES.values() for fmt in engine.formats]


def objects_in(path: Path) -> list[dict[str, Any]]:
    """The Kubernetes objects of a rendered file (none in compose files)."""
    documents = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    return [d for d in documents if isinstance(d, dict) and "apiVersion" in d and "kind" in d]


def manifest_files(rendered: Path) -> list[Path]:
    return sorted(path for path in rendered.rglob("*.yaml") if objects_in(path))


def lost_fields(sent: Any, returned: Any, path: str = "") -> list[str]:
    """Every field sent that did not come back with the same value: dropped (pruned by a CRD
    schema, omitted as empty) or changed. Fields only the server set (status, metadata.uid,
    managedFields, defaults...) are not in `sent`, so they are not compared."""
    if isinstance(sent, dict):
        if not isinstance(returned, dict):
            return [f"{path}: sent a mapping, the server keeps {returned!r}"]
        lost = []
        for key, value in sent.items():
            where = f"{path}.{key}" if path else key
            if key not in returned:
                lost.append(f"{where}: dropped by the server (sent {value!r})")
            else:
                lost += lost_fields(value, returned[key], where)
        return lost
    if isinstance(sent, list):
        if not isinstance(returned, list) or len(returned) != len(sent):
            return [f"{path}: sent {sent!r}, the server keeps {returned!r}"]
        return [
            lost
            for index, (item, kept) in enumerate(zip(sent, returned, strict=True))
            for lost in lost_fields(item, kept, f"{path}[{index}]")
        ]
    if sent != returned or type(sent) is not type(returned):
        return [f"{path}: sent {sent!r}, the server keeps {returned!r}"]
    return []


def describe(document: dict[str, Any]) -> str:
    metadata = document.get("metadata", {})
    return f"{document['kind']} {metadata.get('namespace', '-')}/{metadata.get('name')}"


def ensure_namespace(kube: kube_env.KubeEnv, name: str) -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    status, answer = kube.request("POST", "/api/v1/namespaces", namespace)
    assert status in (201, 409), answer  # 409: made by an earlier test


def dry_run_problems(kube: kube_env.KubeEnv, path: Path, label: str) -> list[str]:
    """What the server refused or did not keep of the file's objects. Skips (the test) when
    it serves none of their kinds; warns about the ones it cannot check beside others."""
    objects = objects_in(path)
    served = [d for d in objects if kube.resource(d["apiVersion"], d["kind"])]
    unserved = sorted({f"{d['apiVersion']} {d['kind']}" for d in objects if d not in served})
    if unserved:
        why = kube.crd_problem or "no CRD for it among the CRDs at hand"
        message = f"{label}: not checked: {', '.join(unserved)} ({why})"
        if not served:
            pytest.skip(message)
        warnings.warn(message, stacklevel=2)
    problems = []
    for document in served:
        namespace = document["metadata"].get("namespace")
        if namespace and kube.resource(document["apiVersion"], document["kind"]).namespaced:
            ensure_namespace(kube, namespace)
        status, answer = kube.apply(document, dry_run=True)
        if status not in (200, 201):  # 201: it would be created
            problems.append(f"{label}: {describe(document)} rejected: {answer.get('message')}")
            continue
        object_label = f"{label}: {describe(document)}"
        problems += [f"{object_label}: {lost}" for lost in lost_fields(document, answer)]
    return problems


@pytest.mark.parametrize(
    "path", manifest_files(RENDERED), ids=lambda path: str(path.relative_to(RENDERED))
)
def test_rendered_manifest_is_accepted_and_kept_whole(kube: kube_env.KubeEnv, path: Path) -> None:
    label = str(path.relative_to(PROJECT))
    assert dry_run_problems(kube, path, label) == []


def test_rendered_covers_every_environment_and_the_application_sets() -> None:
    folders = {path.relative_to(RENDERED).parts[0] for path in manifest_files(RENDERED)}
    assert {"staging", "production", "argocd"} <= folders


@pytest.fixture(scope="module")
def every_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A repository with a `modelgate new` spec for every engine and format it serves, its
    placeholders filled in, rendered by `modelgate render`: its rendered/."""
    root = tmp_path_factory.mktemp("every-engine") / "repo"
    (root / "models").mkdir(parents=True)
    shutil.copytree(PROJECT / "templates", root / "templates")
    for engine, fmt in ENGINE_FORMATS:
        name = f"{engine}-{fmt}"
        written = scaffold.new_spec(root, name, engine, fmt, "ml@example.com")
        scaffold.write_new(root, name, fill_in(written))
    keda = fill_in(scaffold.new_spec(root, KEDA, "vllm", "huggingface", "ml@example.com"))
    keda = keda.replace("    maxReplicas: 4\n", "    maxReplicas: 4\n    autoscaler: keda\n", 1)
    scaffold.write_new(root, KEDA, keda)
    result = run_cli("render", cwd=root)
    assert result.code == 0, result.err
    yield root / "rendered"


def test_a_keda_scaled_object_is_what_the_server_keeps(
    kube: kube_env.KubeEnv, every_engine: Path
) -> None:
    files = sorted(every_engine.glob(f"*/{KEDA}/scaledobject.yaml"))
    assert {path.parent.parent.name for path in files} == {"staging", "production"}
    if kube.resource("keda.sh/v1alpha1", "ScaledObject") is None:
        pytest.skip(f"no ScaledObject CRD: {kube.crd_problem or 'the KEDA module was not had'}")
    problems = []
    for path in files:
        problems += dry_run_problems(kube, path, str(path.relative_to(every_engine.parent)))
    assert problems == []


@pytest.mark.parametrize(
    ("engine", "fmt"), ENGINE_FORMATS, ids=[f"{e}-{f}" for e, f in ENGINE_FORMATS]
)
def test_every_engine_and_format_renders_what_the_server_keeps(
    kube: kube_env.KubeEnv, every_engine: Path, engine: str, fmt: str
) -> None:  # fmt: skip
    files = sorted(every_engine.glob(f"*/{engine}-{fmt}/*.yaml"))
    files = [path for path in files if objects_in(path)]
    assert {path.parent.parent.name for path in files} == {"staging", "production"}
    problems = []
    for path in files:
        problems += dry_run_problems(kube, path, str(path.relative_to(every_engine.parent)))
    assert problems == []


# --- the check finds what the server does ------------------------------------------------------


def deployment(**container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "probe", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "probe"}},
            "template": {
                "metadata": {"labels": {"app": "probe"}},
                "spec": {"containers": [{"name": "c", "image": "example.com/c:1", **container}]},
            },
        },
    }


def test_lost_fields_names_what_was_dropped_or_changed() -> None:
    sent = {"spec": {"env": [], "replicas": 2, "ports": [{"port": 80}], "cpu": "1000m"}}
    kept = {"spec": {"replicas": 2, "ports": [{"port": 80, "protocol": "TCP"}], "cpu": "1"}}
    assert lost_fields(sent, kept) == [
        "spec.env: dropped by the server (sent [])",
        "spec.cpu: sent '1000m', the server keeps '1'",
    ]
    assert lost_fields({"a": 1}, {"a": True}) == ["a: sent 1, the server keeps True"]


def test_the_server_drops_empty_lists_and_rewrites_quantities(kube: kube_env.KubeEnv) -> None:
    """What the comparison is for: the real server omits `env: []` and stores "1000m" as "1"."""
    sent = deployment(env=[], resources={"limits": {"cpu": "1000m"}})
    status, kept = kube.apply(sent, dry_run=True)
    assert status in (200, 201), kept
    assert lost_fields(sent, kept) == [
        "spec.template.spec.containers[0].env: dropped by the server (sent [])",
        "spec.template.spec.containers[0].resources.limits.cpu: sent '1000m', the server keeps '1'",
    ]


def test_unknown_fields_are_refused_not_pruned(kube: kube_env.KubeEnv) -> None:
    """Server-side apply refuses a field the schema does not declare, in built-in kinds and in
    custom resources alike, rather than dropping it: such a field is a rejection above."""
    status, answer = kube.apply(deployment(imagePullPolicyy="Always"), dry_run=True)
    assert status >= 400
    assert ".imagePullPolicyy: field not declared in schema" in answer["message"]
    if kube.resource("serving.kserve.io/v1beta1", "InferenceService") is None:
        pytest.skip(f"no InferenceService CRD: {kube.crd_problem}")
    inference_service = objects_in(RENDERED / "staging" / "churn-kserve" / "inferenceservice.yaml")[
        0
    ]
    inference_service["spec"]["predictor"]["minReplica"] = 2
    ensure_namespace(kube, inference_service["metadata"]["namespace"])
    status, answer = kube.apply(inference_service, dry_run=True)
    assert status >= 400
    assert ".spec.predictor.minReplica: field not declared in schema" in answer["message"]


def test_kubectl_dry_run_agrees(kube: kube_env.KubeEnv) -> None:
    """The kubectl built beside the server says what the API calls above say."""
    path = RENDERED / "staging" / "fraud-onnx" / "deployment.yaml"
    ensure_namespace(kube, "models-staging")
    done = kube.kubectl(
        "apply", "--server-side", "--dry-run=server", "--validate=strict",
        "--field-manager=modelgate", "-f", str(path), "-o", "yaml",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert lost_fields(objects_in(path)[0], yaml.safe_load(done.stdout)) == []
    refused = kube.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-",
        input=yaml.safe_dump(deployment(imagePullPolicyy="Always")),
    )  # fmt: skip
    assert refused.returncode == 1 and "imagePullPolicyy" in refused.stderr
