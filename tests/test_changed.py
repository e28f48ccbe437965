"""`validate --changed-since REF` and `render --check --changed-since REF` check what a change
touches, with the same findings a full run has, in a 1,000-spec repository.

The repository is benchmarks/render.py's (the four examples, renamed, cycled), rendered and
committed once for the module; each test changes it and the fixture puts it back.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import PROJECT, Scaffold, git, run_cli
from .test_crds import NARROW_MODEL_CRD
from .test_policy import SOON

COUNT = 1000
ENVIRONMENTS = ("staging", "production")
INFO_NOTE = "MG125"


def make_repository(count: int, parent: Path) -> Path:
    spec = importlib.util.spec_from_file_location("bench_render", PROJECT / "benchmarks/render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_repository(count, parent)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """1,000 specs, rendered and committed; an own cache directory for the facts index."""
    base = tmp_path_factory.mktemp("big")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELGATE_CACHE_DIR", str(base / "cache"))
        root = make_repository(COUNT, base)
        rendered = run_cli("--root", str(root), "render", timeout=600)
        assert rendered.code == 0, rendered.err
        git(root, "init", "-q", "-b", "main")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "1,000 specs")
        yield root
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def repo(big: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MODELGATE_CACHE_DIR", str(tmp_path / "cache"))  # a cold index
    base = git(big, "rev-parse", "HEAD").strip()
    yield big
    git(big, "reset", "-q", "--hard", base)
    git(big, "clean", "-q", "-fd")


def edit(root: Path, name: str, old: str, new: str) -> None:
    path = root / "models" / f"{name}.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def report(root: Path, *args: str) -> tuple[int, dict[str, Any]]:
    done = run_cli("--root", str(root), *args, "--format", "json", timeout=600)
    assert done.code in (0, 1), done.err
    return done.code, json.loads(done.out)


def findings(found: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every finding but information: the note on what was not checked again (MG125), and
    the one naming the custom resource kinds no schema checked (MG405) among those rendered,
    which a check of some specs renders fewer of."""
    return [
        (d["path"], d["line"], d["col"], d["rule"], d["message"], d["waiver"])
        for d in found["diagnostics"]
        if d["severity"] != "info"
    ]


def specs(found: dict[str, Any]) -> list[str]:
    """The spec files a report lists (render's also lists the files its findings are in)."""
    return sorted(path for path in found["files"] if re.fullmatch(r"models/[^/]+\.yaml", path))


def note(found: dict[str, Any]) -> str:
    [text] = [d["message"] for d in found["diagnostics"] if d["rule"] == INFO_NOTE]
    return text


HOST_1 = "host: m-00001.models.example.com"  # every fourth spec is the chat assistant
HOST_501 = "host: m-00501.models.example.com"


def test_a_changed_spec_is_found_and_checked_as_a_full_run_checks_it(repo: Path) -> None:
    edit(repo, "m-00501", HOST_501, HOST_1)  # a host an earlier spec has: MG-OPS-040
    edit(repo, "m-00501", "minReplicas: 2", "minReplicas: 9")  # above maxReplicas
    full_code, full = report(repo, "validate")
    code, partial = report(repo, "validate", "--changed-since", "HEAD")
    assert partial["files"] == ["models/m-00501.yaml"]
    assert (code, findings(partial)) == (full_code, findings(full)) == (1, findings(full))
    rules = {finding[3] for finding in findings(full)}
    assert {"MG-OPS-040"} < rules, rules
    assert note(partial).startswith(f"{COUNT - 1} spec(s) unchanged since HEAD were not checked")


def test_a_change_to_the_earlier_of_two_specs_fails_at_the_later_one_as_a_full_run_does(
    repo: Path,
) -> None:
    edit(repo, "m-00001", HOST_1, HOST_501)
    full_code, full = report(repo, "validate")
    code, partial = report(repo, "validate", "--changed-since", "HEAD")
    assert partial["files"] == ["models/m-00001.yaml"]
    assert (code, findings(partial)) == (full_code, findings(full))
    [(path, *_, rule, message, _)] = findings(full)
    assert (path, rule) == ("models/m-00501.yaml", "MG-OPS-040")
    assert "already used by models/m-00001.yaml" in message


def test_render_check_of_a_change_finds_what_the_full_check_finds(repo: Path) -> None:
    edit(repo, "m-00501", "maxReplicas: 6", "maxReplicas: 7")  # not rendered again
    (repo / "models" / "m-00003.yaml").unlink()  # its files are left behind
    service = repo / "rendered" / "staging" / "m-00002" / "service.yaml"
    service.write_text(service.read_text(encoding="utf-8") + "# edited by hand\n")
    git(repo, "add", "-A")  # a hand edit is part of a change once it is staged
    full_code, full = report(repo, "render", "--check")
    code, partial = report(repo, "render", "--check", "--changed-since", "HEAD")
    assert (code, findings(partial)) == (full_code, findings(full)) == (1, findings(full))
    drifted = {path for path, *_ in findings(full)}
    assert "rendered/staging/m-00002/service.yaml" in drifted  # edited by hand
    assert "rendered/staging/m-00003/inferenceservice.yaml" in drifted  # orphaned
    assert "rendered/docker/m-00003/compose.yaml" in drifted
    assert "rendered/production/m-00501/hpa.yaml" in drifted  # out of date
    assert specs(partial) == ["models/m-00002.yaml", "models/m-00501.yaml"]
    assert "were not rendered again" in note(partial)


def test_a_change_to_the_environments_reaches_the_applicationsets(repo: Path) -> None:
    edit(repo, "m-00004", "- staging\n", "- staging\n  - canary\n")  # a new environment
    values = repo / "templates" / "values.yaml"  # declared where environments are declared
    text = values.read_text(encoding="utf-8")
    values.write_text(
        text.replace("environments:\n", "environments:\n  canary: {delivery: argocd}\n", 1)
    )
    full_code, full = report(repo, "render", "--check")
    code, partial = report(repo, "render", "--check", "--changed-since", "HEAD")
    assert (code, findings(partial)) == (full_code, findings(full))
    assert "rendered/argocd/canary.yaml" in {path for path, *_ in findings(full)}


def test_a_role_that_does_not_grant_what_a_changed_spec_renders_fails(repo: Path) -> None:
    """The deployer's Role is made from every spec of its environment: a check of some
    specs makes sure it grants what they render (the full check compares it whole)."""
    role = repo / "rendered" / "staging" / "_rbac" / "role.yaml"
    text = role.read_text(encoding="utf-8")
    rule = '  - apiGroups:\n      - "autoscaling"\n'
    start = text.index(rule)
    role.write_text(text[:start] + text[text.index("  - apiGroups:", start + 1) :])
    git(repo, "commit", "-q", "-am", "a Role that grants no autoscaler")
    edit(repo, "m-00001", "maxReplicas: 6", "maxReplicas: 7")  # the vLLM spec has an HPA
    run_cli("--root", str(repo), "render", str(repo / "models" / "m-00001.yaml"))
    full_code, full = report(repo, "render", "--check")
    code, partial = report(repo, "render", "--check", "--changed-since", "HEAD")
    assert code == full_code == 1
    assert [(path, rule) for path, _, _, rule, *_ in findings(full)] == [
        ("rendered/staging/_rbac/role.yaml", "MG404")
    ]
    [(path, _, _, rule, message, _)] = findings(partial)
    assert (path, rule) == ("rendered/staging/_rbac/role.yaml", "MG404")
    assert "does not let the deployer apply autoscaling/horizontalpodautoscalers" in message


def test_a_spec_moved_to_a_team_without_a_project_fails_as_in_the_full_check(repo: Path) -> None:
    """Each team's Applications belong to the team's Argo CD project in their environment,
    made from every spec of that team there: a check of some specs makes sure their teams'
    projects are committed and allow what they render (the full check compares them whole)."""
    edit(repo, "m-00001", "team: genai-platform", "team: vision-ml")
    run_cli("--root", str(repo), "render", str(repo / "models" / "m-00001.yaml"))
    full_code, full = report(repo, "render", "--check")
    code, partial = report(repo, "render", "--check", "--changed-since", "HEAD")
    assert code == full_code == 1
    projects = [f"rendered/{env}/_rbac/argocd-appproject-vision-ml.yaml" for env in ENVIRONMENTS]
    assert {(path, rule) for path, _, _, rule, *_ in findings(full)} >= {
        (path, "MG404") for path in projects
    }
    assert [(path, rule, message) for path, _, _, rule, message, _ in findings(partial)] == [
        (path, "MG404", f"{path} is missing: Argo CD makes no Application of a project that "
         "does not exist")
        for path in sorted(projects)
    ]  # fmt: skip


def test_a_project_that_does_not_allow_what_a_changed_spec_renders_fails(repo: Path) -> None:
    project = repo / "rendered" / "staging" / "_rbac" / "argocd-appproject-genai-platform.yaml"
    text = project.read_text(encoding="utf-8")
    allowed = '    - group: "autoscaling"\n      kind: "HorizontalPodAutoscaler"\n'
    assert allowed in text
    project.write_text(text.replace(allowed, ""), encoding="utf-8")
    git(repo, "commit", "-q", "-am", "a project that allows no autoscaler")
    edit(repo, "m-00001", "maxReplicas: 6", "maxReplicas: 7")  # the vLLM spec has an HPA
    run_cli("--root", str(repo), "render", str(repo / "models" / "m-00001.yaml"))
    code, partial = report(repo, "render", "--check", "--changed-since", "HEAD")
    assert code == 1
    [(path, _, _, rule, message, _)] = findings(partial)
    assert (path, rule) == (str(project.relative_to(repo)), "MG404")
    assert "does not let team genai-platform's Applications sync autoscaling/Horizontal" in message


EXTRA_GRANT = """  - apiGroups: [""]
    resources: [secrets]
    verbs: [get, list]
"""
CLUSTER_ADMIN = """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: modelgate-deployer-admin}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "modelgate:deployers"}]
"""


@pytest.mark.parametrize(
    ("path", "added"),
    [
        ("rendered/staging/_rbac/role.yaml", EXTRA_GRANT),  # one more rule in the Role
        ("rendered/production/_rbac/clusterrolebinding.yaml", CLUSTER_ADMIN),  # a new file
    ],
)
def test_a_grant_added_to_the_deployer_roles_by_hand_is_refused(
    repo: Path, path: str, added: str
) -> None:
    """rendered/ENV/_rbac/ is judged whole, by a check of some specs too: a change to it is
    a change to every spec of ENV, and the files are compared with what the templates make."""
    with (repo / path).open("a", encoding="utf-8") as stream:
        stream.write(added)
    git(repo, "add", "-A")
    full_code, full = report(repo, "render", "--check")
    code, partial = report(repo, "render", "--check", "--changed-since", "HEAD")
    assert (code, findings(partial)) == (full_code, findings(full))
    assert code == 1
    assert [(found, rule) for found, _, _, rule, *_ in findings(full)] == [(path, "MG404")]
    assert f"every spec checked: {path} changed since HEAD" in note(partial)


def test_an_unchanged_repository_checks_nothing_and_says_so(repo: Path) -> None:
    code, partial = report(repo, "validate", "--changed-since", "HEAD")
    assert (code, partial["files"], findings(partial)) == (0, [], [])
    assert note(partial).startswith(f"{COUNT} spec(s) unchanged since HEAD")
    code, partial = report(repo, "render", "--check", "--changed-since", "HEAD")
    assert (code, specs(partial), findings(partial)) == (0, [], [])
    assert "were not rendered again" in note(partial)


@pytest.mark.parametrize(
    ("path", "addition"),
    [
        ("templates/values.yaml", "# a comment\n"),
        ("policies/modelgate.yaml", "# a comment\n"),
        ("templates/_k8s/service.yaml.j2", "{# a comment #}\n"),
    ],
)
def test_templates_values_or_policies_changed_means_every_spec(
    repo: Path, path: str, addition: str
) -> None:
    with (repo / path).open("a", encoding="utf-8") as stream:
        stream.write(addition)
    code, partial = report(repo, "validate", "--changed-since", "HEAD")
    assert (code, len(partial["files"])) == (0, COUNT)
    assert note(partial) == (
        f"every spec checked: {path} changed since HEAD, and that concerns every spec"
    )


def test_a_crd_change_means_every_spec_for_render_check(repo: Path) -> None:
    """crds/ holds the schemas every rendered custom resource is checked against: a CRD
    that refuses the Models' fields fails every spec rendering one, unchanged or not."""
    (repo / "crds").mkdir()
    (repo / "crds" / "models.yaml").write_text(NARROW_MODEL_CRD, encoding="utf-8")
    full_code, full = report(repo, "render", "--check")
    code, partial = report(repo, "render", "--check", "--changed-since", "HEAD")
    assert (code, findings(partial)) == (full_code, findings(full)) == (1, findings(full))
    assert "rendered/staging/m-00000/model.yaml" in {path for path, *_ in findings(full)}
    assert note(partial) == (
        "every spec checked: crds/models.yaml changed since HEAD, and that concerns every spec"
    )
    code, partial = report(repo, "validate", "--changed-since", "HEAD")  # no CRD is read
    assert (code, partial["files"]) == (0, [])


def test_a_changed_stand_in_checks_the_specs_that_name_it(repo: Path) -> None:
    """A change to an artifact that specs name, as their model or as a stand-in, checks
    those specs: the facts name both."""
    model = repo / "models" / "artifacts" / "fraud-onnx-small" / "model.onnx"
    model.write_bytes(model.read_bytes() + b"\0")  # its sha256 no longer matches
    full_code, full = report(repo, "validate")
    code, partial = report(repo, "validate", "--changed-since", "HEAD")
    assert (code, findings(partial)) == (full_code, findings(full)) == (1, findings(full))
    assert len(specs(partial)) == COUNT // 4  # every fourth spec is fraud-onnx
    assert {path for path, *_ in findings(full)} == set(specs(partial))


def test_a_stand_in_kept_outside_models_is_watched(repo: Path) -> None:
    """A stand-in may live anywhere in the repository: the facts name it, so a change to it
    checks the spec that names it, with a full run's findings."""
    kept = repo / "stand-ins" / "fraud.onnx"
    kept.parent.mkdir()
    source = repo / "models" / "artifacts" / "fraud-onnx-small"
    kept.write_bytes((source / "model.onnx").read_bytes())
    text = (PROJECT / "models" / "fraud-onnx.yaml").read_text(encoding="utf-8")
    text = text.replace("name: fraud-onnx\n", "name: z-fraud\n", 1)
    text = text.replace(
        f"artifact: {source.relative_to(repo)}/model.onnx", "artifact: stand-ins/fraud.onnx"
    )
    (repo / "models" / "z-fraud.yaml").write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a stand-in outside models/")
    kept.write_bytes(kept.read_bytes() + b"\0")  # its sha256 no longer matches
    full_code, full = report(repo, "validate")
    code, partial = report(repo, "validate", "--changed-since", "HEAD")
    assert (code, findings(partial)) == (full_code, findings(full)) == (1, findings(full))
    assert specs(partial) == ["models/z-fraud.yaml"]
    assert {(path, rule) for path, _, _, rule, *_ in findings(full)} == {
        ("models/z-fraud.yaml", "MG119")
    }


def test_an_engine_template_change_checks_that_engines_specs(repo: Path) -> None:
    with (repo / "templates" / "vllm" / "deployment.yaml.j2").open("a") as stream:
        stream.write("{# a comment #}\n")
    code, partial = report(repo, "render", "--check", "--changed-since", "HEAD")
    assert code == 0, findings(partial)
    assert len(specs(partial)) == COUNT // 4  # every fourth spec is served by vLLM


def test_an_unknown_ref_and_render_without_check_are_usage_errors(repo: Path) -> None:
    unknown = run_cli("--root", str(repo), "validate", "--changed-since", "no-such-ref")
    assert unknown.code == 2 and "--changed-since no-such-ref:" in unknown.err
    written = run_cli("--root", str(repo), "render", "--changed-since", "HEAD")
    assert written.code == 2 and "use it with --check" in written.err


# --- small repositories -------------------------------------------------------------------


@pytest.fixture
def pair(committed: Scaffold) -> Scaffold:
    """iris and a copy named alpha, with the policies, committed."""
    committed.with_policies()
    committed.iris("alpha")
    git(committed.root, "add", "-A")
    git(committed.root, "commit", "-q", "-m", "alpha")
    return committed


def test_one_named_spec_meets_the_others_in_path_order(pair: Scaffold) -> None:
    """The pre-commit hook (`validate FILE`) reports what a full run reports, at the spec a
    full run reports it at, whichever of the two was named."""
    port = {"visibility: internal": "visibility: internal\n    port: 8080"}
    pair.iris("alpha", **port)
    pair.iris("iris", **port)
    full = run_cli("--root", str(pair.root), "validate", "--format", "json")
    for named in ("models/alpha.yaml", "models/iris.yaml"):
        one = run_cli("validate", "--format", "json", named, cwd=pair.root)
        assert one.code == full.code == 1
        assert json.loads(one.out)["diagnostics"] == json.loads(full.out)["diagnostics"]


WAIVERS = """\
apiVersion: modelgate.dev/v1alpha1
kind: Waivers
waivers:
  - rule: MG-OPS-011
    spec: alpha
    justification: expired since the base was checked
    approver: security@example.com
    expires: "2020-01-31"
  - rule: MG-OPS-011
    spec: gone
    justification: its spec is deleted by the change
    approver: security@example.com
    expires: "{soon}"
"""


def test_waivers_of_unchanged_specs_are_still_judged(pair: Scaffold) -> None:
    (pair.root / "policies" / "waivers.yaml").write_text(WAIVERS.format(soon=SOON))
    git(pair.root, "add", "-A")
    git(pair.root, "commit", "-q", "-m", "waivers")
    pair.iris(**{"owner: ml-platform@example.com": "owner: ml@example.com"})
    full = run_cli("--root", str(pair.root), "validate", "--format", "json")
    partial = run_cli(
        "--root", str(pair.root), "validate", "--format", "json", "--changed-since", "HEAD"
    )
    assert partial.code == full.code == 1
    assert findings(json.loads(partial.out)) == findings(json.loads(full.out))
    assert {d[3] for d in findings(json.loads(full.out))} == {"MG801", "MG806"}


def test_each_application_regenerates_only_when_its_folder_changes() -> None:
    """With thousands of Applications in one repository, Argo CD would otherwise generate
    every Application's manifests again on every commit (its cache is keyed by commit)."""
    for path in sorted((PROJECT / "rendered" / "argocd").glob("*.yaml")):
        template = yaml.safe_load(path.read_text(encoding="utf-8"))["spec"]["template"]
        annotations = template["metadata"]["annotations"]
        assert annotations["argocd.argoproj.io/manifest-generate-paths"] == ".", path
        assert template["spec"]["source"]["path"] == "{{.path.path}}"
