"""crds/: `modelgate render` checks custom resources against the repository's CRDs without any
flag, reads the folder as strictly as anything else a pull request brings, and `modelgate crds
pull` fills it from a real API server (tests/kube_env.py) with the CRDs of the kinds rendered/
holds."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
import yaml

from validator.render import crds, kube_schemas

from . import kube_env
from .conftest import PROJECT, CliResult, Scaffold, run_cli

# A Seldon Core v2 Model CRD that declares storageUri and requirements and nothing else.
NARROW_MODEL_CRD = textwrap.dedent("""\
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: models.mlops.seldon.io
    spec:
      group: mlops.seldon.io
      names: {kind: Model, listKind: ModelList, plural: models, singular: model}
      scope: Namespaced
      versions:
        - name: v1alpha1
          served: true
          storage: true
          schema:
            openAPIV3Schema:
              type: object
              properties:
                apiVersion: {type: string}
                kind: {type: string}
                metadata: {type: object}
                spec:
                  type: object
                  properties:
                    storageUri: {type: string}
                    requirements: {type: array, items: {type: string}}
    """)


def render(scaffold: Scaffold, *args: str) -> CliResult:
    return run_cli("--root", str(scaffold.root), "render", *args, cwd=scaffold.root)


def test_render_checks_custom_resources_against_crds_by_default(scaffold: Scaffold) -> None:
    """No flag: the Model's fields the CRD does not declare are refused, as a server would."""
    scaffold.iris()
    assert render(scaffold).code == 0  # no crds/: the Model is reported unchecked (MG405)
    (scaffold.root / "crds").mkdir()
    (scaffold.root / "crds" / "models.yaml").write_text(NARROW_MODEL_CRD)
    refused = render(scaffold)
    assert refused.code == 1, refused.err
    assert "rendered/staging/iris/model.yaml" in refused.err and "MG403" in refused.err
    assert "Additional properties are not allowed" in refused.err
    assert "mlops.seldon.io/v1alpha1 Model" not in refused.err  # checked, not MG405


BAD_FILES = {
    "a duplicate key": ("kind: CustomResourceDefinition\nkind: Other\n", "2:1", "duplicate key"),
    "an alias": ("a: &x {b: 1}\nc: *x\n", "2:1", "'c' is a YAML alias"),
    "a tag": ("a: !!python/name:os.system ''\n", "1:4", "tag"),
    "not a CRD": ("apiVersion: v1\nkind: ConfigMap\n", "1:1", "is not an apiextensions"),
    "not UTF-8": (b"a: \xff\n", "1:1", "not UTF-8"),
    "no schema": (
        NARROW_MODEL_CRD.split("      schema:")[0],
        "1:1",
        "a version without an openAPIV3Schema",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_crds_file_is_parsed_strictly(scaffold: Scaffold, case: str) -> None:
    content, position, reason = BAD_FILES[case]
    scaffold.iris()
    folder = scaffold.root / "crds"
    folder.mkdir()
    raw = content if isinstance(content, bytes) else content.encode()
    (folder / "bad.yaml").write_bytes(raw)
    refused = render(scaffold)
    assert refused.code == 1
    assert f"crds/bad.yaml:{position}: MG406 CRD file cannot be read" in refused.err
    assert reason in refused.err and "Traceback" not in refused.err


def test_crds_readme_and_other_files_are_not_crds(scaffold: Scaffold) -> None:
    scaffold.iris()
    (scaffold.root / "crds").mkdir()
    readme = (PROJECT / "crds" / "README.md").read_text()
    (scaffold.root / "crds" / "README.md").write_text(readme)
    assert render(scaffold).code == 0


def test_what_pull_writes_reads_back_strictly(tmp_path: Path) -> None:
    """The file `crds pull` writes is what crds/ accepts: one CRD, schemas kept."""
    crd = yaml.safe_load(NARROW_MODEL_CRD)
    crd["status"] = {"acceptedNames": {"kind": "Model"}}
    crd["metadata"].update(uid="u", resourceVersion="1", managedFields=[{"manager": "x"}])
    pulled = crds.pull(tmp_path, {("mlops.seldon.io/v1alpha1", "Model")}, [crd])
    assert pulled.written == {"crds/mlops.seldon.io_models.yaml": [
        ("mlops.seldon.io/v1alpha1", "Model")
    ]}  # fmt: skip
    path = tmp_path / "crds" / "mlops.seldon.io_models.yaml"
    assert path.read_text().startswith("# Pulled from the cluster by `modelgate crds pull`")
    [written] = crds.parse_documents(path.read_bytes())
    assert written == {k: v for k, v in crd.items() if k != "status"} | {
        "metadata": {"name": "models.mlops.seldon.io"}
    }
    found, problem = crds.schemas_of_file(path, "crds/mlops.seldon.io_models.yaml")
    assert problem is None and list(found) == [("mlops.seldon.io/v1alpha1", "Model")]


SPEC_ONLY_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {type: object, properties: {size: {type: integer}}}
"""


def test_a_crd_that_declares_only_spec_accepts_apiversion_kind_and_metadata(
    tmp_path: Path,
) -> None:
    """Istio's CRDs declare spec and status alone: the API server still takes apiVersion, kind
    and metadata on every object, and so does the check; other unknown fields stay refused."""
    path = tmp_path / "widgets.yaml"
    path.write_text(SPEC_ONLY_CRD)
    found, problem = crds.schemas_of_file(path, "crds/widgets.yaml")
    assert problem is None
    schemas = kube_schemas.Schemas(found)
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "models"},
        "spec": {"size": 1},
    }
    assert kube_schemas.check(widget, schemas) == (None, True)
    problem, _ = kube_schemas.check({**widget, "extra": 1}, schemas)
    assert problem is not None and "extra" in problem


def test_pull_says_what_the_cluster_lacks() -> None:
    crd = yaml.safe_load(NARROW_MODEL_CRD)
    kinds = {("mlops.seldon.io/v1beta1", "Model"), ("security.istio.io/v1", "PeerAuthentication")}
    pulled = crds.pull(Path("/nonexistent"), kinds, [crd])
    assert pulled.written == {}
    assert pulled.missing == [
        "mlops.seldon.io/v1beta1 Model: the cluster serves v1alpha1 only",
        "security.istio.io/v1 PeerAuthentication: the cluster has no CRD for it",
    ]


def test_pull_with_no_custom_resources_needs_no_cluster(scaffold: Scaffold) -> None:
    result = run_cli("--root", str(scaffold.root), "crds", "pull", cwd=scaffold.root)
    assert result.code == 0, result.err
    assert "rendered/ holds no custom resources: no CRD to pull" in result.out


# --- against the real API server --------------------------------------------------------------


def in_cluster(kube: kube_env.KubeEnv, identity: kube_env.Identity) -> dict[str, str]:
    return {
        "KUBECONFIG": str(kube.kubeconfig_for(identity)),
        "PATH": f"{kube.bin}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def example_repository(scaffold: Scaffold) -> None:
    for spec in (PROJECT / "models").glob("*.yaml"):
        (scaffold.root / "models" / spec.name).write_bytes(spec.read_bytes())
    assert render(scaffold).code == 0


@pytest.mark.kube
def test_pull_fills_crds_from_the_cluster_and_render_uses_them(
    kube: kube_env.KubeEnv, scaffold: Scaffold, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube.serves_or_skip("serving.kserve.io/v1beta1", "InferenceService")
    example_repository(scaffold)
    for name, value in in_cluster(kube, kube.admin).items():
        monkeypatch.setenv(name, value)
    pulled = run_cli("--root", str(scaffold.root), "crds", "pull", cwd=scaffold.root)
    assert pulled.code == 0, pulled.err
    written = sorted(p.name for p in (scaffold.root / "crds").iterdir())
    istio = ["authorizationpolicies", "peerauthentications", "requestauthentications"]
    served_istio = kube.resource("security.istio.io/v1", "PeerAuthentication") is not None
    # Seldon's Model CRD comes from no registry (docs/kubernetes.md): served only where the
    # tests were given it (MODELGATE_TEST_CRDS)
    served_seldon = kube.resource("mlops.seldon.io/v1alpha1", "Model") is not None
    assert written == sorted([
        "argoproj.io_applicationsets.yaml",
        "argoproj.io_appprojects.yaml",  # the teams' projects, in rendered/ENV/_rbac/
        *(["mlops.seldon.io_models.yaml"] if served_seldon else []),
        "serving.kserve.io_inferenceservices.yaml",
        "serving.kserve.io_servingruntimes.yaml",  # a custom runtime's (churn-pipeline)
        *(f"security.istio.io_{plural}.yaml" for plural in istio if served_istio),
    ])  # fmt: skip
    assert "wrote crds/serving.kserve.io_inferenceservices.yaml: InferenceService " in pulled.out
    # a kind the server does not serve is named, none is invented
    not_pulled = pulled.err.count("warning: not pulled: security.istio.io/v1 ")
    assert not_pulled == (0 if served_istio else 3)
    served = kube.kubectl("get", "crd", "inferenceservices.serving.kserve.io", "-o", "json")
    [document] = crds.parse_documents(
        (scaffold.root / "crds" / "serving.kserve.io_inferenceservices.yaml").read_bytes()
    )
    assert document["spec"] == json.loads(served.stdout)["spec"]

    checked = render(scaffold, "--check")
    assert checked.code == 0, checked.err
    unchecked = "".join(line for line in checked.err.splitlines() if "MG405" in line)
    for kind in ("InferenceService", "ServingRuntime", "ApplicationSet", "AppProject"):
        assert kind not in unchecked
    assert ("mlops.seldon.io/v1alpha1 Model" in unchecked) is not served_seldon
    # Istio's CRDs declare spec alone: their objects' apiVersion, kind and metadata are taken
    assert ("security.istio.io/v1 PeerAuthentication" in unchecked) is not served_istio

    template = scaffold.root / "templates" / "kserve" / "inferenceservice.yaml.j2"
    text = template.read_text()
    assert "\nspec:\n" in text
    template.write_text(text.replace("\nspec:\n", "\nspec:\n  replicaz: 2\n", 1))
    refused = render(scaffold)
    assert refused.code == 1
    assert "MG403" in refused.err and "replicaz" in refused.err


@pytest.mark.kube
def test_pull_without_the_right_to_list_crds_says_so(
    kube: kube_env.KubeEnv, scaffold: Scaffold, monkeypatch: pytest.MonkeyPatch
) -> None:
    scaffold.iris()
    assert render(scaffold).code == 0
    for name, value in in_cluster(kube, kube.deployer).items():
        monkeypatch.setenv(name, value)
    refused = run_cli("--root", str(scaffold.root), "crds", "pull", cwd=scaffold.root)
    assert refused.code == 1
    assert "nothing pulled: the cluster did not list its CRDs: " in refused.err
    assert "forbidden" in refused.err and "allowed to list customresourcedefinitions" in " ".join(
        refused.err.split()
    )
    assert not (scaffold.root / "crds").exists()
