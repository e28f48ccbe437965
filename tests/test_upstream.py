"""The canonical KServe and Seldon Core v2 examples, written as modelgate specs.

Each example is tests/upstream/NAME.yaml, a spec written from an upstream documentation
sample (named in its first comment), and NAME.expect.yaml: the source, what the upstream
manifest means (tests/upstream_meaning.py's vocabulary, written from reading it), and each
field where modelgate renders something else, with the reason. The specs are rendered in a
scratch repository with the project's templates, values and policies; the rendered manifests
must mean what the upstream ones mean, field by field, must pass the real CRDs, and the specs
must pass `modelgate validate` with the built-in policies. docs/upstream.md is the table.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from validator import render
from validator.check import workspace
from validator.render import crds, kube_schemas

from . import kube_env
from . import upstream_meaning as meaning
from .conftest import PROJECT, crd_dirs, run_cli
from .test_kube_apiserver import dry_run_problems, manifest_files

UPSTREAM = Path(__file__).parent / "upstream"
EXPECT_SUFFIX = ".expect.yaml"
EXAMPLES = sorted(
    path.name.removesuffix(".yaml")
    for path in UPSTREAM.glob("*.yaml")
    if not path.name.endswith(EXPECT_SUFFIX)
)
DOCS = PROJECT / "docs" / "upstream.md"
PUBLIC_STORES = [
    "gs://kfserving-examples/",
    "gs://kfserving-samples/",
    "gs://seldon-models/",
    "s3://modelmesh-example-models/",
]
KINDS = ("policy", "explicit", "gap")  # why a field deviates; see docs/upstream.md
PLACEHOLDER = "placeholder "  # placeholder digests are sha256("placeholder " + what they pin)
SOURCE_COMMENT = re.compile(r"^# Upstream: ", re.MULTILINE)


def expectation(name: str) -> dict[str, Any]:
    return yaml.safe_load((UPSTREAM / f"{name}{EXPECT_SUFFIX}").read_text(encoding="utf-8"))


def spec_text(name: str) -> str:
    return (UPSTREAM / f"{name}.yaml").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with the project's templates, values and policies, whose models/ are the
    upstream examples."""
    root = tmp_path_factory.mktemp("upstream") / "repo"
    for part in ("templates", "policies"):
        shutil.copytree(PROJECT / part, root / part)
    values = root / "templates" / "values.yaml"
    # the samples read KServe's and Seldon's public example buckets, which need no credentials
    values.write_text(
        values.read_text(encoding="utf-8").replace(
            "publicArtifactStores: []", f"publicArtifactStores: {json.dumps(PUBLIC_STORES)}"
        ),
        encoding="utf-8",
    )
    (root / "models").mkdir()
    for name in EXAMPLES:
        shutil.copyfile(UPSTREAM / f"{name}.yaml", root / "models" / f"{name}.yaml")
    return root


@pytest.fixture(scope="module")
def schemas() -> kube_schemas.Schemas:
    return crds.load_dirs(crd_dirs(seldon=True))


@pytest.fixture(scope="module")
def rendered(repository: Path) -> dict[str, list[dict[str, Any]]]:
    """Each example's rendered manifests (its first environment), parsed."""
    result = workspace.validate(workspace.discover(repository, []), repository)
    assert not result.failed(), [str(d) for d in result.diagnostics]
    rendering = render.render_all(result.valid_documents(), repository)
    assert not rendering.failed(), [str(d) for d in rendering.diagnostics]
    first = {name: yaml.safe_load(spec_text(name))["spec"]["environments"][0] for name in EXAMPLES}
    manifests: dict[str, list[dict[str, Any]]] = {name: [] for name in EXAMPLES}
    for file in rendering.files:
        parts = file.path.parts  # rendered/ENV/NAME/FILE
        if len(parts) == 4 and parts[2] in first and parts[1] == first[parts[2]]:
            manifests[parts[2]].append(yaml.safe_load(file.content))
    return manifests


def test_there_are_at_least_twelve_examples_each_with_its_expectation() -> None:
    assert len(EXAMPLES) >= 12, EXAMPLES
    for name in EXAMPLES:
        assert (UPSTREAM / f"{name}{EXPECT_SUFFIX}").is_file(), name
        assert SOURCE_COMMENT.search(spec_text(name)), f"{name}.yaml names no upstream source"
        source = expectation(name)["source"]
        assert (
            source["repository"]
            and source["path"]
            and re.fullmatch("[0-9a-f]{40}", source["commit"])
        ), name
        assert source["path"] in spec_text(name), f"{name}.yaml's comment names another source"


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_rendered_manifests_mean_what_the_upstream_ones_mean(
    name: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    expected = expectation(name)
    deviations = expected.get("deviations") or []
    for item in deviations:
        assert item["kind"] in KINDS and item["why"].strip(), item
    found = meaning.meaning_of(rendered[name])
    wanted = meaning.normalise(expected["upstream"])
    assert set(found) == set(wanted), "the same kinds of object"
    problems = meaning.differences(wanted, found, deviations)
    assert problems == [], "\n".join(problems)


def test_the_rendered_manifests_pass_the_real_crds(
    repository: Path, schemas: kube_schemas.Schemas
) -> None:
    result = workspace.validate(workspace.discover(repository, []), repository)
    rendering = render.render_all(result.valid_documents(), repository, schemas)
    assert rendering.diagnostics == []
    checked = {
        yaml.safe_load(file.content)["kind"]
        for file in rendering.files
        if file.path.suffix == ".yaml" and file.path.parts[1] not in ("argocd", "docker")
    }
    assert checked >= {"InferenceService", "Model"}
    assert not any("serving.kserve.io" in kind or "mlops" in kind for kind in rendering.unchecked)


@pytest.mark.kube
def test_a_real_api_server_accepts_and_keeps_every_rendered_object(
    repository: Path, kube: kube_env.KubeEnv
) -> None:
    """Server-side dry runs with strict field validation (tests/kube_env.py): every object the
    examples render is accepted, and comes back with every field it was sent."""
    for api, kind in (("serving.kserve.io/v1beta1", "InferenceService"), MODEL):
        if not kube.resource(api, kind):
            pytest.skip(f"the API server has no {kind} CRD: {kube.crd_problem}")
    written = run_cli("--root", str(repository), "render")
    assert written.code == 0, written.err
    rendered = repository / "rendered"
    files = [path for path in manifest_files(rendered) if path.parts[-2] in EXAMPLES]
    assert {path.parts[-2] for path in files} == set(EXAMPLES)
    problems = []
    for path in files:
        if any(kube.resource(d["apiVersion"], d["kind"]) for d in _objects(path)):
            problems += dry_run_problems(kube, path, str(path.relative_to(rendered)))
    assert problems == [], "\n".join(problems)


MODEL = ("mlops.seldon.io/v1alpha1", "Model")


def _objects(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]


def test_every_example_passes_validate_with_the_built_in_policies(repository: Path) -> None:
    """`validate --strict` finds nothing but the warnings an expectation declares (where the
    sample itself does what a policy warns of), each with its reason."""
    result = run_cli("--root", str(repository), "validate", "--strict", "--format", "json")
    found: dict[str, list[str]] = {name: [] for name in EXAMPLES}
    for diagnostic in json.loads(result.out)["diagnostics"]:
        assert diagnostic["severity"] == "warning", diagnostic
        found[Path(diagnostic["path"]).stem].append(diagnostic["rule"])
    for name in EXAMPLES:
        declared = expectation(name).get("warnings") or []
        assert all(item["why"].strip() for item in declared), name
        assert sorted(found[name]) == sorted(item["code"] for item in declared), name
    assert result.code == (1 if any(found.values()) else 0), result.err


def test_placeholder_digests_are_what_they_say(repository: Path) -> None:
    """The samples publish no digest of their artifacts or images; where a policy asks for
    one the spec carries sha256("placeholder " + what it pins), and says so."""
    checked = 0
    for name in EXAMPLES:
        spec = yaml.safe_load(spec_text(name))["spec"]
        model = spec["model"]
        pinned = [(model.get("artifact"), model.get("treeSha256") or model.get("sha256"))]
        images = [model.get("image")] + [
            spec.get(part, {}).get("image") for part in ("transformer", "explainer", "runtime")
        ]
        pinned += [tuple(image.split("@sha256:")) for image in images if image]
        for what, digest in pinned:
            if digest:
                assert digest == placeholder(what), f"{name}: {what} has a digest of its own"
                assert "placeholder" in spec_text(name), f"{name}: no word of the placeholder"
                checked += 1
    assert checked >= len(EXAMPLES)


def placeholder(pinned: str) -> str:
    return hashlib.sha256(f"{PLACEHOLDER}{pinned}".encode()).hexdigest()


def status(name: str) -> str:
    """`yes`: every field means the same or a deviation is deliberate; `partly`: something
    the sample does cannot be written."""
    kinds = {item["kind"] for item in expectation(name).get("deviations") or []}
    return "partly" if "gap" in kinds else "yes"


def test_the_docs_table_lists_every_example_with_its_status() -> None:
    text = DOCS.read_text(encoding="utf-8")
    row = re.compile(r"^\| `([a-z0-9-]+)` \|[^|]*\|[^|]*\| (yes|partly|no) \|", re.MULTILINE)
    rows = {match.group(1): match.group(2) for match in row.finditer(text)}
    for name in EXAMPLES:
        assert rows.get(name) == status(name), f"docs/upstream.md: {name} {rows.get(name)}"


# -- the comparison itself can fail ------------------------------------------------------------


def test_a_changed_field_is_a_difference() -> None:
    upstream = {"InferenceService": {"name": "a", "predictor": {"storageUri": "gs://x/model"}}}
    rendered = {"InferenceService": {"name": "a", "predictor": {"storageUri": "gs://x/model-2"}}}
    assert meaning.differences(upstream, rendered, []) == [
        "InferenceService.predictor.storageUri: upstream means 'gs://x/model', "
        "rendered 'gs://x/model-2'"
    ]
    assert meaning.differences(upstream, {"InferenceService": {"name": "a"}}, [])


def test_a_deviation_must_still_deviate_and_be_what_renders() -> None:
    upstream = {"Model": {"requirements": ["sklearn"]}}
    rendered = {"Model": {"requirements": ["mlserver", "sklearn"]}}
    deviation = {"at": ["Model", "requirements"], "kind": "explicit", "why": "-"}
    both = ["mlserver", "sklearn"]
    assert meaning.differences(upstream, rendered, [{**deviation, "modelgate": both}]) == []
    assert meaning.differences(upstream, rendered, [{**deviation, "modelgate": ["x"]}])
    assert meaning.differences(upstream, upstream, [{**deviation, "modelgate": ["sklearn"]}])


def test_defaults_read_as_what_the_platform_does() -> None:
    """An InferenceService that leaves mode, protocol, scaling and requests unset means what
    KServe, Knative and Kubernetes then do."""
    manifest = {
        "kind": "InferenceService",
        "metadata": {"name": "m"},
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "sklearn"},
                    "storageUri": "gs://b/m/",
                    "resources": {"limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": 1}},
                }
            }
        },
    }
    assert meaning.meaning_of([manifest]) == meaning.normalise(
        {
            "InferenceService": {
                "name": "m",
                "deploymentMode": "Serverless",
                "visibility": "public",
                "predictor": {
                    "modelFormat": "sklearn",
                    "protocol": "v1",
                    "storageUri": "gs://b/m",
                    "resources": {
                        "requests": {"cpu": "1000m", "memory": 1073741824, "nvidia.com/gpu": "1"},
                        "limits": {"cpu": 1, "memory": "1024Mi", "nvidia.com/gpu": "1"},
                    },
                    "scaling": {
                        "autoscaler": "knative",
                        "minReplicas": 1,
                        "maxReplicas": "unbounded",
                        "metric": "concurrency",
                        "target": 100,
                    },
                },
            }
        }
    )
