"""Rendering: every target's output validates against real schemas (Kubernetes, the KServe,
Seldon and Argo CD CRDs, Triton's model_config.proto, MLServer's settings models), is
byte-identical across runs, survives hostile values, and `render --check` catches drift."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from validator import render
from validator.check import load, names, workspace
from validator.render import crds, kube_schemas, pbtxt

from . import kube_env
from .conftest import PROJECT, Scaffold, assert_both_parsers_agree, crd_dirs, run_cli


@pytest.fixture(scope="module")
def schemas() -> kube_schemas.Schemas:
    return crds.load_dirs(crd_dirs())


@pytest.fixture(scope="module")
def any_schemas() -> kube_schemas.Schemas:
    """The CRDs where they are at hand; built-in kinds are checked either way."""
    try:
        return crds.load_dirs(kube_env.default_crd_dirs())
    except kube_env.Unavailable:
        return kube_schemas.Schemas()


def project_documents() -> list[load.Document]:
    result = workspace.validate(workspace.discover(PROJECT, []), PROJECT)
    assert not result.failed(), result.diagnostics
    return result.valid_documents()


def rendered_tree(root: Path) -> dict[str, bytes]:
    base = root / "rendered"
    return {
        str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()
    }


def copy_project(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    for part in ("models", "templates", "policies", "rendered", "docs/models"):
        shutil.copytree(PROJECT / part, copy / part)
    return copy


def test_every_target_of_every_example_validates(schemas: kube_schemas.Schemas) -> None:
    """With the CRDs of the pinned Go modules (tests/kube/crds) and Seldon's, no kind of
    rendered/ goes unchecked, and every object passes its CRD's schema."""
    crd_dirs(seldon=True)
    assert schemas.problems == []
    rendering = render.render_all(project_documents(), PROJECT, schemas)
    assert rendering.diagnostics == []
    assert rendering.unchecked == set(), "every kind was checked against a real schema"
    kinds = {
        yaml.safe_load(f.content).get("kind")
        for f in rendering.files
        if f.path.suffix == ".yaml" and f.path.name != "compose.yaml"
    }
    assert kinds >= {
        "InferenceService",
        "ServingRuntime",
        "Model",
        "Deployment",
        "Service",
        "ConfigMap",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Ingress",
        "ApplicationSet",
    }


def test_crd_schemas_are_strict(schemas: kube_schemas.Schemas) -> None:
    [isvc] = [
        f
        for f in render.render_all(project_documents(), PROJECT, schemas).files
        if f.path.name == "inferenceservice.yaml"
    ][:1]
    manifest = yaml.safe_load(isvc.content)
    manifest["spec"]["predictor"]["minReplica"] = 1  # a typo an unchecked manifest would keep
    problem, found = kube_schemas.check(manifest, schemas)
    assert found and "minReplica" in problem
    manifest = yaml.safe_load(isvc.content)
    manifest["spec"]["predictor"]["minReplicas"] = "two"
    assert "minReplicas" in kube_schemas.check(manifest, schemas)[0]


def test_builtin_kinds_are_checked_strictly() -> None:
    deployment = PROJECT / "rendered/production/chat-assistant/deployment.yaml"
    manifest = yaml.safe_load(deployment.read_text())
    assert kube_schemas.check(manifest, kube_schemas.Schemas()) == (None, True)
    manifest["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    problem, _ = kube_schemas.check(manifest, kube_schemas.Schemas())
    assert "imagePullPolice" in problem


TRITON_PARSE = """
import json, sys
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2
config = text_format.Parse(sys.stdin.read(), model_config_pb2.ModelConfig())
print(json.dumps(json_format.MessageToDict(config)))
"""


def test_triton_config_parses_with_tritons_own_proto() -> None:
    pytest.importorskip("tritonclient")
    configmap = yaml.safe_load(
        (PROJECT / "rendered/production/fraud-onnx/configmap.yaml").read_text()
    )
    # its own process: tritonclient's protos clash with MLServer's in one descriptor pool
    done = subprocess.run(
        [sys.executable, "-c", TRITON_PARSE],
        input=configmap["data"]["config.pbtxt"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    assert (config["name"], config["platform"], config["maxBatchSize"]) == (
        "fraud-onnx",
        "onnxruntime_onnx",
        64,
    )
    assert config["input"] == [{"name": "features", "dataType": "TYPE_FP32", "dims": ["32"]}]
    assert config["output"][0]["dataType"] == "TYPE_FP32"


def test_local_files_are_accepted_by_mlserver_itself(scaffold: Scaffold) -> None:
    settings_models = pytest.importorskip("mlserver.settings")
    scaffold.iris()
    assert run_cli("--root", str(scaffold.root), "render").code == 0
    out = scaffold.root / "rendered" / "local" / "iris"
    settings = settings_models.Settings.model_validate(
        json.loads((out / "settings.json").read_text())
    )
    assert settings.parallel_workers == 0 and settings.metrics_endpoint is None
    model = settings_models.ModelSettings.model_validate(
        json.loads((out / "model-settings.json").read_text())
    )
    assert model.name == "iris" and model.implementation_ == "mlserver_sklearn.SKLearnModel"
    assert (out / model.parameters.uri).resolve() == (
        scaffold.root / "models/artifacts/iris/model.joblib"
    )


def test_committed_rendered_tree_matches_the_specs(tmp_path: Path) -> None:
    copy = copy_project(tmp_path)
    shutil.rmtree(copy / "rendered")
    assert run_cli("--root", str(copy), "render").code == 0
    assert rendered_tree(copy) == rendered_tree(PROJECT)


def test_rendering_twice_is_byte_identical(tmp_path: Path) -> None:
    copy = copy_project(tmp_path)
    first = rendered_tree(copy)
    result = run_cli("--root", str(copy), "render")
    assert "0 file(s) changed, 0 removed" in result.out
    assert rendered_tree(copy) == first
    assert all(b"\r\n" not in content for content in first.values())


def test_render_check_catches_edits_stale_files_and_orphans(tmp_path: Path) -> None:
    copy = copy_project(tmp_path)
    assert run_cli("--root", str(copy), "render", "--check").code == 0

    edited = copy / "rendered/staging/iris/model.yaml"
    edited.write_text(edited.read_text().replace("replicas: 2", "replicas: 9"))
    result = run_cli("--root", str(copy), "render", "--check")
    assert result.code == 1 and "MG404" in result.err
    assert "-  replicas: 9\n+  replicas: 2" in result.out  # a unified diff back to the truth

    run_cli("--root", str(copy), "render")
    spec = copy / "models/iris.yaml"
    spec.write_text(spec.read_text().replace("maxReplicas: 3", "maxReplicas: 4"))
    result = run_cli("--root", str(copy), "render", "--check")
    assert result.code == 1 and "rendered/production/iris/model.yaml differs" in result.err
    assert "+  maxReplicas: 4" in result.out

    run_cli("--root", str(copy), "render")
    (copy / "models/chat-assistant.yaml").unlink()
    result = run_cli("--root", str(copy), "render", "--check")
    assert result.code == 1
    assert "rendered/staging/chat-assistant/deployment.yaml is orphaned" in result.err
    assert (
        copy / "rendered/staging/chat-assistant/deployment.yaml"
    ).exists()  # check writes nothing
    result = run_cli("--root", str(copy), "render")
    assert result.code == 0 and "removed" in result.out
    assert not (copy / "rendered/staging/chat-assistant").exists()
    assert run_cli("--root", str(copy), "render", "--check").code == 0


HOSTILE = [
    'evil"\n  "implementation": "os.system',
    "x\nkind: Secret\nmetadata:\n  name: stolen",
    "{{ 7 * 7 }}{% raw %}{{ lipsum }}",
    "line\u2028separator\u2029and\x85next",
    "'; rm -rf / #",
    "---\napiVersion: v1\nkind: Secret",
    "</script><!-- & ' \\ \t tab",
    "emoji \U0001f600 and \ufeff bom",
    "x" * 4000,
]


def hostile_spec(scaffold: Scaffold, engine_patch: str, value: str) -> load.Document:
    """A spec whose free-text fields (owner, contact, an argument, an env value) hold `value`."""
    text = (PROJECT / "models" / engine_patch).read_text()
    data = yaml.safe_load(text)
    data["metadata"]["owner"] = value
    data["metadata"]["contact"] = value
    data["spec"]["engine"]["args"] = [value]
    data["spec"]["engine"]["env"] = [{"name": "HOSTILE", "value": value}]
    return load.Document(f"models/{data['metadata']['name']}.yaml", data, text="")


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize(
    "spec", ["iris.yaml", "chat-assistant.yaml", "fraud-onnx.yaml", "churn-kserve.yaml"]
)
def test_hostile_values_cannot_change_the_structure(
    scaffold: Scaffold, any_schemas: kube_schemas.Schemas, spec: str, value: str
) -> None:
    """Rendered with hostile free text, every file parses to exactly the structure it has with
    harmless text, the hostile text sitting verbatim where the harmless text was."""
    hostile = render.render_document(hostile_spec(scaffold, spec, value), PROJECT, any_schemas)
    calm = render.render_document(hostile_spec(scaffold, spec, "calm"), PROJECT, any_schemas)
    assert hostile.diagnostics == [] and calm.diagnostics == []
    assert [f.path for f in hostile.files] == [f.path for f in calm.files]
    for hostile_file, calm_file in zip(hostile.files, calm.files, strict=True):
        parsed = _parse(hostile_file.content, hostile_file.path.suffix)
        expected = _substitute(_parse(calm_file.content, calm_file.path.suffix), "calm", value)
        assert _without_derived_labels(parsed) == _without_derived_labels(expected), (
            f"{hostile_file.path} changed shape"
        )
        assert_both_parsers_agree(hostile_file)
        for labels in _label_maps(parsed):
            assert all(LABEL_VALUE.fullmatch(v) for v in labels.values()), labels


LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
DERIVED_LABELS = {"modelgate.dev/owner", "modelgate.dev/spec-hash"}  # sanitised or hashed


def _parse(text: str, suffix: str) -> Any:
    if suffix == ".json":
        return json.loads(text)
    if suffix == ".pbtxt":  # Triton's config (a stand-in's, under rendered/local): its grammar
        assert pbtxt.parse_error(text) is None, text
        return text
    documents = list(yaml.safe_load_all(text))
    assert len(documents) == 1
    return documents[0]


def _substitute(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        return {key: _substitute(value, old, new) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute(item, old, new) for item in node]
    if isinstance(node, str):
        return node.replace(old, new)
    return node


def _without_derived_labels(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                {k: v for k, v in value.items() if k not in DERIVED_LABELS}
                if key == "labels" and isinstance(value, dict)
                else _without_derived_labels(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_without_derived_labels(item) for item in node]
    return node


def _label_maps(node: Any) -> list[dict[str, str]]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("labels", "matchLabels") and isinstance(value, dict):
                found.append(value)
            found.extend(_label_maps(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_label_maps(item))
    return found


def test_parallel_and_serial_rendering_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = copy_project(tmp_path)
    examples = {p.stem: p.read_text() for p in (copy / "models").glob("*.yaml")}
    for index in range(render.PARALLEL_FROM):
        stem = sorted(examples)[index % len(examples)]
        name = f"{stem}-{index:03d}"
        text = examples[stem].replace(f"name: {stem}", f"name: {name}")
        text = text.replace(f"model: {stem}\n", f"model: {name}\n")  # its smoke requests'
        text = text.replace("chat.models.example.com", f"{name}.models.example.com")
        (copy / "models" / f"{name}.yaml").write_text(text.replace("    port: 8080\n", ""))
    documents = workspace.validate(workspace.discover(copy, []), copy).valid_documents()
    assert len(documents) > render.PARALLEL_FROM
    parallel = render.render_all(documents, copy)
    monkeypatch.setattr(render, "PARALLEL_FROM", 10**9)
    serial = render.render_all(documents, copy)
    assert parallel.files == serial.files and parallel.diagnostics == serial.diagnostics

    # as `modelgate render` does: each spec rendered in the worker that validated it
    monkeypatch.setattr(workspace, "PARALLEL_FROM", 16)
    renderer = render.Renderer(copy).preload()
    validation = workspace.validate(workspace.discover(copy, []), copy, follow=renderer)
    followed = render.render_all(
        validation.valid_documents(), copy, renderer=renderer, rendered=validation.followed
    )
    assert len(validation.followed) == len(documents)
    assert followed.files == serial.files and followed.diagnostics == serial.diagnostics


def test_a_broken_crd_file_is_a_located_finding_and_a_missing_directory_a_usage_error(
    tmp_path: Path,
) -> None:
    crds = tmp_path / "crds"
    crds.mkdir()
    (crds / "broken.yaml").write_text("kind: CustomResourceDefinition\nspec: [1,\n")
    result = run_cli("render", "--check", "--crds", str(crds))
    assert result.code == 1, result.err
    assert f"{crds / 'broken.yaml'}:3:1: MG406 CRD file cannot be read" in result.err
    assert "internal error" not in result.err
    missing = run_cli("render", "--check", "--crds", str(tmp_path / "nowhere"))
    assert missing.code == 2 and "--crds needs a directory" in missing.err


@pytest.mark.parametrize("reserved", ["local", "docker", "argocd"])
def test_environments_cannot_take_the_name_of_a_target_directory(
    scaffold: Scaffold, reserved: str
) -> None:
    """rendered/local, rendered/docker and rendered/argocd are not environments: a spec
    deploying to one would mix its manifests into another target's files."""
    assert {render.LOCAL, render.DOCKER, render.ARGOCD} == set(names.TARGET_DIRECTORIES)
    path = scaffold.iris(
        **{"environments: [staging, production]": f"environments: [{reserved}, production]"}
    )
    line = next(
        number
        for number, text in enumerate(path.read_text().splitlines(), 1)
        if "environments:" in text
    )
    result = workspace.validate([path], scaffold.root)
    [finding] = [d for d in result.diagnostics if d.rule == "MG114"]
    assert (finding.line, finding.col) == (line, 18)
    assert f"environment name '{reserved}' is reserved" in finding.message
    assert result.valid_documents() == []


def test_render_env_touches_only_that_environment(tmp_path: Path) -> None:
    copy = copy_project(tmp_path)
    rendered = copy / "rendered"
    for environment in ("staging", "production"):
        (rendered / environment / "ghost").mkdir()
        (rendered / environment / "ghost" / "a.yaml").write_text("x: 1\n")
    edited = rendered / "staging/iris/model.yaml"
    edited.write_text(edited.read_text() + "# edited\n")
    before = rendered_tree(copy)

    check = run_cli("--root", str(copy), "render", "--check", "--env", "production")
    assert check.code == 1
    assert "rendered/production/ghost/a.yaml is orphaned" in check.err
    assert "staging" not in check.err + check.out  # other environments are out of scope

    result = run_cli("--root", str(copy), "render", "--env", "production")
    assert result.code == 0, result.err
    assert "into rendered/production/: 0 file(s) changed, 1 removed" in result.out
    after = rendered_tree(copy)
    assert "production/ghost/a.yaml" not in after
    del before["production/ghost/a.yaml"]
    assert after == before  # staging, local, docker and the other ApplicationSet untouched

    for reserved in ("local", "../staging", "Prod"):
        usage = run_cli("--root", str(copy), "render", "--env", reserved)
        assert usage.code == 2 and "is not an environment name" in usage.err


# iris packaged as an image that serves itself: the docker engine's, with a compose file
AS_IMAGE = {
    "    artifact: models/artifacts/iris/model.joblib\n": "    image: "
    "registry.example.com/ml/iris@sha256:" + "a" * 64 + "\n",
    "    sha256: 8698570b26d3905996e7e4cc7fb011d9f4e7d66cad16bdd14e47891e9f7c44be\n": "",
    "    name: mlserver\n    version: 1.7.1\n": "    name: docker\n",
}


def test_compose_files_keep_dollar_signs_literal(scaffold: Scaffold) -> None:
    """`docker compose` would substitute ${HOME} from the deployer's environment."""
    spec = scaffold.iris(
        **{
            **AS_IMAGE,
            "    protocol: v2\n": "    protocol: v2\n    env:\n"
            '      - {name: GREETING, value: "${HOME} and $USER"}\n',
        }
    )
    result = run_cli("--root", str(scaffold.root), "render", str(spec))
    assert result.code == 0, result.out + result.err
    compose = (scaffold.root / "rendered/docker/iris/compose.yaml").read_text()
    assert 'GREETING: "$${HOME} and $$USER"' in compose


def test_compose_runs_the_image_with_the_engine_args_as_the_docker_target_does(
    scaffold: Scaffold,
) -> None:
    """engine.args replace the image's command on the docker target; `docker compose up` of
    the rendered file ran the image without them."""
    spec = scaffold.iris(
        **{
            **AS_IMAGE,
            "    protocol: v2\n": '    protocol: v2\n    args: ["serve", "--port=$PORT"]\n',
        }
    )
    result = run_cli("--root", str(scaffold.root), "render", str(spec))
    assert result.code == 0, result.out + result.err
    compose = yaml.safe_load((scaffold.root / "rendered/docker/iris/compose.yaml").read_text())
    assert compose["services"]["model"]["command"] == ["serve", "--port=$$PORT"]


def test_fractional_millicores_render_for_compose(scaffold: Scaffold) -> None:
    """The schema allows `1.5m`; the compose file needs cores: it was an internal error."""
    text = (scaffold.iris()).read_text()
    spec = scaffold.iris(**AS_IMAGE)
    limits = re.search(r"limits: \{cpu: \"?([0-9.]+m?)\"?", text)
    assert limits, "the iris spec has no cpu limit to vary"
    spec.write_text(spec.read_text().replace(limits[0], 'limits: {cpu: "1500.5m"'))
    result = run_cli("--root", str(scaffold.root), "render", str(spec))
    assert result.code == 0, result.out + result.err
    compose = (scaffold.root / "rendered/docker/iris/compose.yaml").read_text()
    assert 'cpus: "1.5005"' in compose


def test_render_check_names_a_failing_spec_first_and_not_its_files_as_orphans(
    tmp_path: Path,
) -> None:
    copy = copy_project(tmp_path)
    spec = copy / "models/iris.yaml"
    spec.write_text(spec.read_text().replace("minReplicas: 2", "minReplicas: 1"))
    edited = copy / "rendered/staging/chat-assistant/pdb.yaml"
    edited.write_text(edited.read_text().replace("maxUnavailable: 1", "maxUnavailable: 7"))
    result = run_cli("--root", str(copy), "render", "--check")
    assert result.code == 1
    first = result.err.splitlines()[0]
    assert first == (
        "modelgate: 1 spec(s) failed their checks, so their rendered files were not compared: "
        "models/iris.yaml"
    )
    assert result.err.index("MG-OPS-011") < result.err.index("MG404")
    assert "orphaned" not in result.err and "rendered/production/iris" not in result.out
    # the other specs' files are still compared
    assert "rendered/staging/chat-assistant/pdb.yaml differs" in result.err
    assert "-  maxUnavailable: 7" in result.out
    assert "1 rendered file(s) out of date; run `modelgate render` once the specs pass" in (
        result.err
    )


def objects_of(path: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(path.read_text()))


def manifests_of(folder: Path) -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.yaml"))]


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_each_team_has_a_project_allowing_only_the_kinds_it_renders(environment: str) -> None:
    """Argo CD delivers both environments: every model's folder names its team for the
    ApplicationSet's generator, and each team gets the project modelgate-TEAM-ENV, which
    allows exactly the namespaced kinds that team's models render there."""
    rendered = PROJECT / "rendered" / environment
    teams: dict[str, set[tuple[str, str]]] = {}
    for document in project_documents():
        if environment not in document.data["spec"]["environments"]:
            continue
        folder = rendered / document.data["metadata"]["name"]
        team = document.data["metadata"]["team"]
        assert json.loads((folder / "application.json").read_text()) == {"team": team}
        teams.setdefault(team, set()).update(
            (m["apiVersion"].rpartition("/")[0], m["kind"]) for m in manifests_of(folder)
        )
    assert len(teams) > 1  # the examples belong to several teams
    projects = sorted((rendered / "_rbac").glob("argocd-appproject*.yaml"))
    assert [path.name for path in projects] == [
        f"argocd-appproject-{team}.yaml" for team in sorted(teams)
    ]
    for team, kinds in teams.items():
        [project] = objects_of(rendered / "_rbac" / f"argocd-appproject-{team}.yaml")
        assert project["metadata"]["name"] == f"modelgate-{team}-{environment}"
        assert project["metadata"]["labels"]["modelgate.dev/team"] == team
        spec = project["spec"]
        allowed = {(entry["group"], entry["kind"]) for entry in spec["namespaceResourceWhitelist"]}
        assert allowed == kinds, team
        assert spec["destinations"] == [
            {"server": "https://kubernetes.default.svc", "namespace": f"models-{environment}"}
        ]
        assert spec["clusterResourceWhitelist"] == [
            {"group": "", "kind": "Namespace", "name": f"models-{environment}"}
        ]
    application_set = objects_of(PROJECT / "rendered" / "argocd" / f"{environment}.yaml")[0]
    template = application_set["spec"]["template"]["spec"]
    assert template["project"] == f"modelgate-{{{{.team}}}}-{environment}"
    assert template["source"]["directory"] == {"exclude": "application.json"}


def test_a_pushed_environment_has_no_generator_files_nor_projects(scaffold: Scaffold) -> None:
    """No ApplicationSet reads a pushed environment: nothing rendered for one."""
    scaffold.iris()
    values = scaffold.root / "templates" / "values.yaml"
    values.write_text(
        values.read_text().replace(
            "staging: {delivery: argocd, autoSync: true}", "staging: {delivery: push}"
        )
    )
    assert run_cli("render", cwd=scaffold.root).code == 0
    rendered = scaffold.root / "rendered"
    assert not (rendered / "staging" / "iris" / "application.json").exists()
    assert not list((rendered / "staging" / "_rbac").glob("argocd-*"))
    assert (rendered / "production" / "iris" / "application.json").is_file()
    assert (rendered / "production" / "_rbac" / "argocd-appproject-ml-platform.yaml").is_file()
