"""`modelgate plan`: each kind of delta (tests/plan_corpus/cases.yaml) on a copy of the
project's repository committed as REF, the formats (JSON against its schema), the change
rules' refusals, budgets, waivers and weakened rules, the price table, and bad REFs."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml

from validator import plan
from validator.plan.model import Plan

from . import kube_env
from .conftest import PROJECT, git, run_cli

CASES = yaml.safe_load((Path(__file__).parent / "plan_corpus" / "cases.yaml").read_text())
PLAN_SCHEMA = json.loads((PROJECT / "validator/schemas/plan.v1alpha1.json").read_text())
PARTS = ("models", "templates", "policies", "docs/models", "crds", "rendered")


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's specs, templates, policies and rendered/, committed on main."""
    root = tmp_path_factory.mktemp("plan") / "repo"
    for part in PARTS:
        shutil.copytree(PROJECT / part, root / part, ignore=shutil.ignore_patterns("waivers.yaml"))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "REF")
    return root


@pytest.fixture
def repo(repository: Path) -> Iterator[Path]:
    """The repository, put back as REF has it after each test."""
    yield repository
    git(repository, "checkout", "-q", "--", ".")
    git(repository, "clean", "-qfd")


def _apply(root: Path, case: dict) -> None:
    for source, target in (case.get("copy") or {}).items():
        shutil.copyfile(root / source, root / target)
    for path, edits in (case.get("edit") or {}).items():
        text = (root / path).read_text()
        for old, new in edits:
            assert old in text, f"{old!r} is not in {path}"
            text = text.replace(old, new, 1)
        (root / path).write_text(text)
    for path in case.get("delete") or []:
        (root / path).unlink()


def _changed(result: Plan) -> set[str]:
    return {
        f"{e.name} {e.environment} {c.section}.{c.field}"
        for e in result.endpoints
        for c in e.changes
    }


def test_the_corpus_has_a_case_for_every_kind_of_delta() -> None:
    kinds = {
        line.split()[2].split(".")[0] for case in CASES.values() for line in case.get("expect", [])
    }
    assert kinds == {"model", "engine", "capacity", "exposure", "cost"}
    actions = {line.split()[2] for case in CASES.values() for line in case.get("objects", [])}
    assert actions == {"created", "changed", "deleted"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_delta_is_planned(repo: Path, name: str) -> None:
    case = CASES[name]
    _apply(repo, case)
    planned = plan.run(repo, "main", approvers=case.get("approvedBy", []))
    assert not planned.unplanned, planned.diagnostics
    assert not planned.failed(), planned.diagnostics
    result = planned.plan
    assert set(case.get("expect", [])) <= _changed(result), sorted(_changed(result))
    objects = {
        f"{e.name} {e.environment} {o.action} {o.kind}" for e in result.endpoints for o in e.objects
    }
    assert set(case.get("objects", [])) <= objects, sorted(objects)
    statuses = {f"{e.name} {e.environment} {e.status}" for e in result.endpoints}
    assert set(case.get("status", [])) <= statuses, sorted(statuses)
    security = {f"{e.name} {e.environment}" for e in result.endpoints if e.security_relevant}
    assert set(case.get("security", [])) <= security
    if "security" not in case:
        assert not security, security
    document = json.loads(plan_json(result))
    jsonschema.validate(document, PLAN_SCHEMA)


def plan_json(result: Plan) -> str:
    from validator.report.plan import format_plan

    return format_plan("json", result)


def test_an_unchanged_repository_plans_nothing(repo: Path) -> None:
    result = plan.run(repo, "main", ["models/iris.yaml"]).plan
    assert [e.status for e in result.endpoints] == ["unchanged", "unchanged"]
    assert result.changed == []


def test_the_cli_in_every_format(repo: Path) -> None:
    _apply(repo, CASES["replicas"])
    text = run_cli("--root", str(repo), "plan", "--changed-since", "main")
    assert text.code == 0, text.err
    assert "chat-assistant in production: changed" in text.out
    assert "capacity  maxReplicas: 6 -> 7" in text.out
    markdown = run_cli(
        "--root",
        str(repo),
        "plan",
        "--changed-since",
        "main",
        "--format",
        "markdown",
        "models/chat-assistant.yaml",
        "models/iris.yaml",
    )
    assert markdown.code == 0, markdown.err
    assert "### chat-assistant · production: changed" in markdown.out
    assert "<details><summary>iris · production: unchanged</summary>" in markdown.out
    assert "| capacity | maxReplicas | 6 | 7 |" in markdown.out
    found = run_cli("--root", str(repo), "plan", "--changed-since", "main", "--format", "json")
    document = json.loads(found.out)
    jsonschema.validate(document, PLAN_SCHEMA)
    assert document["summary"]["changed"] == 2


def test_a_visibility_change_without_a_security_reviewer_is_refused(repo: Path) -> None:
    _apply(repo, CASES["visibility"])
    assert "approvedBy" in CASES["visibility"]
    found = run_cli(
        "--root", str(repo), "plan", "--changed-since", "main", "--approved-by", "someone-else"
    )
    assert found.code == 1
    text = (repo / "models/chat-assistant.yaml").read_text()
    line = text[: text.index("visibility: internal")].count("\n") + 1
    assert f"models/chat-assistant.yaml:{line}:17: MG-SEC-190 " in found.out, found.out
    assert found.out.count("MG-SEC-190") == 1  # one finding for the spec's line
    approved = run_cli(
        "--root", str(repo), "plan", "--changed-since", "main", "--approved-by", "security-reviewer"
    )
    assert approved.code == 0, approved.out


def test_too_many_gpus_added_to_production_are_refused(repo: Path) -> None:
    _apply(repo, {"edit": {"models/chat-assistant.yaml": [["maxReplicas: 6", "maxReplicas: 15"]]}})
    planned = plan.run(repo, "main")
    [finding] = [d for d in planned.diagnostics if d.rule == "MG-OPS-140"]
    assert finding.path == "models/chat-assistant.yaml" and finding.line > 0
    assert "adds 9 GPU(s) to production" in finding.message
    assert planned.failed()


def test_a_team_over_its_budget_is_refused(repo: Path) -> None:
    (repo / "policies/acme.yaml").write_text(
        "apiVersion: modelgate.dev/v1alpha1\nkind: PolicySet\nmetadata: {name: acme}\n"
        "extends: [modelgate]\nparameters:\n  budgets: {genai-platform: {production: 20}}\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "budget")
    try:
        _apply(repo, CASES["replicas"])  # 16.78 -> 19.58 USD/h for the chat assistant
        assert not plan.run(repo, "HEAD").failed()
        _apply(
            repo, {"edit": {"models/chat-assistant.yaml": [["maxReplicas: 7", "maxReplicas: 8"]]}}
        )
        planned = plan.run(repo, "HEAD")
        [finding] = [d for d in planned.diagnostics if d.rule == "MG-OPS-141"]
        assert "over its budget of 20 USD" in finding.message
        assert "production" in finding.message
    finally:
        git(repo, "checkout", "-q", "--", ".")
        git(repo, "reset", "-q", "--hard", "HEAD~1")


def test_waivers_added_removed_and_expiring(repo: Path) -> None:
    today = dt.date(2026, 12, 7)
    waivers = repo / "policies/waivers.yaml"

    def write(*entries: tuple[str, str]) -> None:
        lines = ["apiVersion: modelgate.dev/v1alpha1", "kind: Waivers", "waivers:"]
        for rule, expires in entries:
            lines += [
                f"  - rule: {rule}",
                "    spec: iris",
                "    justification: the test of what a plan says of waivers",
                "    approver: security@example.com",
                f'    expires: "{expires}"',
            ]
        waivers.write_text("\n".join(lines) + "\n")

    write(("MG-OPS-011", "2026-12-15"), ("MG-OPS-020", "2027-02-01"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "waivers")
    try:
        write(("MG-OPS-011", "2026-12-15"), ("MG-SEC-001", "2027-01-30"))
        result = plan.run(repo, "HEAD", ["models/iris.yaml"], today=today).plan
        found = {(w.action, w.rule) for w in result.endpoints[0].waivers}
        assert found == {
            ("expiring", "MG-OPS-011"),
            ("added", "MG-SEC-001"),
            ("removed", "MG-OPS-020"),
        }
    finally:
        git(repo, "checkout", "-q", "--", ".")
        git(repo, "reset", "-q", "--hard", "HEAD~1")


def test_rules_the_change_weakens(repo: Path) -> None:
    (repo / "policies/acme.yaml").write_text(
        "apiVersion: modelgate.dev/v1alpha1\nkind: PolicySet\nmetadata: {name: acme}\n"
        'extends: [modelgate]\noverrides:\n  MG-OPS-011: {severity: "off"}\n'
    )
    result = plan.run(repo, "main", ["models/iris.yaml"]).plan
    assert [(w.name, w.change) for w in result.weakened] == [("MG-OPS-011", "off")]
    text = run_cli("--root", str(repo), "plan", "models/iris.yaml", "--changed-since", "main")
    assert "policy weakened: MG-OPS-011 off at policies/acme.yaml:" in text.out


def test_a_broken_price_table_is_refused_at_its_line(repo: Path) -> None:
    _apply(
        repo, {"edit": {"templates/values.yaml": [["    cpuHour: 0.05\n", "    cpuHour: -1\n"]]}}
    )
    found = run_cli("--root", str(repo), "plan", "--changed-since", "main")
    text = (repo / "templates/values.yaml").read_text()
    line = text[: text.index("cpuHour: -1")].count("\n") + 1
    assert found.code == 1
    assert f"templates/values.yaml:{line}:14: MG901 prices.production.cpuHour must be" in found.err


def test_a_change_that_does_not_render_gets_no_plan(repo: Path) -> None:
    _apply(repo, {"edit": {"models/iris.yaml": [["maxReplicas: 3", "maxReplicas: many"]]}})
    found = run_cli("--root", str(repo), "plan", "--changed-since", "main")
    assert found.code == 1 and "models/iris.yaml:" in found.err and "no plan" in found.err
    assert "Traceback" not in found.err


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--changed-since", "no-such-branch"], "no commit named 'no-such-branch'"),
        (["--changed-since=-oops"], "cannot start with '-'"),
        ([], "plan what?"),
    ],
)
def test_bad_refs_are_usage_errors(repo: Path, args: list[str], said: str) -> None:
    found = run_cli("--root", str(repo), "plan", *args)
    assert found.code == 2, found
    assert said in found.err and "Traceback" not in found.err


def test_the_change_rules_examples(repo: Path) -> None:
    """Each change rule's examples (policies/modelgate.yaml), run as its own plan."""
    from validator.check import policy

    loaded, problems = policy.load_policy(repo)
    assert problems == [] and len(loaded.change_rules) == 3
    for rule in loaded.change_rules:
        for example, fails in [
            *((e, False) for e in rule.passing),
            *((e, True) for e in rule.failing),
        ]:
            assert _example_refused(repo, rule.id, example.patch) == fails, (rule.id, example)
            git(repo, "checkout", "-q", "--", ".")
            git(repo, "clean", "-qfd")


def _example_refused(repo: Path, rule: str, patch: dict) -> bool:
    """The example's `after` merged into its spec as the change (its `before` is REF's),
    its parameters in a policy set of its own."""
    from validator.check.policy.examples import merge_patch

    name = "chat-assistant"
    spec = repo / f"models/{name}.yaml"
    data = yaml.safe_load(spec.read_text())
    assert patch.get("before") == {}
    changed = merge_patch(data, patch["after"])
    spec.write_text(yaml.safe_dump(changed, sort_keys=False))
    if patch.get("parameters"):
        (repo / "policies/example.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "modelgate.dev/v1alpha1",
                    "kind": "PolicySet",
                    "metadata": {"name": "example"},
                    "extends": ["modelgate"],
                    "parameters": patch["parameters"],
                }
            )
        )
    planned = plan.run(repo, "main", [f"models/{name}.yaml"], patch.get("approvedBy", []))
    assert not planned.unplanned, planned.diagnostics
    return any(d.rule == rule for d in planned.diagnostics)


def _reader_kubeconfig(kube: kube_env.KubeEnv, namespace: str, path: Path) -> Path:
    """A kubeconfig for a service account that may only read in `namespace`."""
    reader = [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "plan-reader", "namespace": namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "plan-reader", "namespace": namespace},
         "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "plan-reader", "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": "plan-reader"},
         "subjects": [{"kind": "ServiceAccount", "name": "plan-reader",
                       "namespace": namespace}]},
    ]  # fmt: skip
    for document in reader:
        status, answer = kube.apply(document)
        assert status in (200, 201), answer
    status, answer = kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/plan-reader/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )
    assert status == 201, answer
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": kube.server,
                                                   "certificate-authority": str(kube.ca)}}],
        "users": [{"name": "reader", "user": {"token": answer["status"]["token"]}}],
        "contexts": [{"name": "reader", "context": {"cluster": "test", "user": "reader"}}],
        "current-context": "reader",
    }  # fmt: skip
    path.write_text(json.dumps(config))
    return path


def test_live_compares_the_change_with_the_cluster_with_read_access_only(
    repo: Path, kube: kube_env.KubeEnv, tmp_path: Path
) -> None:
    """REF's objects of the chat assistant served in staging; the change raises its max
    replicas: --live names the fields the cluster would change, as a reader that may not
    write anything."""
    namespace = "models-staging"
    status, answer = kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    )
    assert status in (200, 201), answer
    folder = repo / "rendered/staging/chat-assistant"
    for path in sorted(folder.glob("*.yaml")):
        status, answer = kube.apply(yaml.safe_load(path.read_text()))
        assert status in (200, 201), (path.name, answer)
    kubeconfig = _reader_kubeconfig(kube, namespace, tmp_path / "reader.json")
    can = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", "auth", "can-i", "patch", "deployments",
         "-n", namespace],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert can.stdout.strip() == "no"
    _apply(repo, CASES["replicas"])
    found = run_cli("--root", str(repo), "plan", "models/chat-assistant.yaml",
                    "--changed-since", "main", "--live", f"staging={kubeconfig}")  # fmt: skip
    assert found.code == 0, found.err
    said = "live staging: 0 object(s) not in the cluster, 2 differ, 4 as rendered"
    assert said in found.out, found.out
    assert "~ HorizontalPodAutoscaler/chat-assistant: spec.maxReplicas: 6 -> 7" in found.out
    # the pods roll: their template carries the spec's new hash
    assert (
        "~ Deployment/chat-assistant: spec.template.metadata.labels.modelgate.dev/spec-hash: "
        in found.out
    )
    document = json.loads(
        run_cli("--root", str(repo), "plan", "models/chat-assistant.yaml", "--changed-since",
                "main", "--live", f"staging={kubeconfig}", "--format", "json").out
    )  # fmt: skip
    jsonschema.validate(document, PLAN_SCHEMA)
    assert document["live"][0]["differing"] == 2


def test_live_says_when_the_cluster_cannot_be_read(repo: Path, tmp_path: Path) -> None:
    found = run_cli("--root", str(repo), "plan", "models/iris.yaml", "--changed-since", "main",
                    "--live", f"staging={tmp_path / 'missing'}")  # fmt: skip
    assert found.code == 0
    assert "live staging: cannot read the cluster:" in found.out


def test_a_spec_named_that_exists_nowhere_is_a_usage_error(repo: Path) -> None:
    found = run_cli("--root", str(repo), "plan", "models/nope.yaml")
    assert found.code == 2
    assert "no spec models/nope.yaml here or at HEAD" in found.err


def test_every_format_masks_secrets_and_escapes_controls() -> None:
    """Whatever a field holds reaches the terminal, the comment or the JSON through the one
    reporter: a token masked, an escape sequence and a workflow command made visible."""
    import io

    from validator.plan.model import EndpointPlan, FieldChange
    from validator.report.output import Output
    from validator.report.plan import format_plan

    token = "ghp_" + "A1b2C3d4" * 5
    endpoint = EndpointPlan("iris", "staging", "models/iris.yaml", "changed", "ml")
    endpoint.changes = [
        FieldChange("model", "version", "1.0.0", f"{token}\x1b[31m"),
        FieldChange("exposure", "hosts", [], ["\n::error::forged"], security=True),
    ]
    result = Plan("main", "a" * 40, "USD", [endpoint])
    for fmt in ("text", "markdown", "json"):
        out = io.StringIO()
        Output(out, io.StringIO()).block(format_plan(fmt, result))
        shown = out.getvalue()
        assert token[4:20] not in shown, fmt
        assert "\x1b" not in shown and "\n::error::" not in shown, fmt


def test_policies_list_names_the_change_rules() -> None:
    found = run_cli("policies", "list")
    [line] = [line for line in found.out.splitlines() if line.startswith("MG-SEC-190 ")]
    assert "change (modelgate plan)" in line
    assert ", 3 change rules" in found.out
    described = json.loads(run_cli("policies", "list", "--format", "json").out)
    assert {r["id"] for r in described if r["judges"] == "change"} == {
        "MG-OPS-140", "MG-SEC-190", "MG-OPS-141"
    }  # fmt: skip


def test_many_specs_read_refs_folders_whole_with_the_same_plan(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from validator.plan import sides

    _apply(repo, CASES["price"])  # every spec planned
    few = plan.run(repo, "main").plan
    monkeypatch.setattr(sides, "WHOLE_FOLDERS_FROM", 0)
    many = plan.run(repo, "main").plan
    assert len(many.endpoints) == len(few.endpoints) > 10
    assert [(e.name, e.environment, e.status, e.changes, e.objects) for e in many.endpoints] == [
        (e.name, e.environment, e.status, e.changes, e.objects) for e in few.endpoints
    ]


def test_the_fit_section_shows_what_the_fit_stage_computes() -> None:
    """validator/plan/fit.py is the one place the GPU fit plugs in; the formats say it in a
    reviewer's words, and that it does not fit when it does not."""
    from validator.plan import fit
    from validator.report.plan import fit_line

    assert fit.FIT_MODULE == "validator.check.fit"
    figures = {
        "weights_bytes": 15 * 2**30, "kv_cache_bytes": 4 * 2**30, "reserve_bytes": 2**30,
        "needed_bytes": 20 * 2**30, "available_bytes": 18 * 2**30, "product": "NVIDIA-L4",
        "gpus": 1, "headroom": -0.11, "largest_context": 2048,
        "smallest_product": "NVIDIA-A100-SXM4-40GB",
    }  # fmt: skip
    said = fit_line(figures)
    assert said.startswith("needs 20.0 GiB (weights 15.0, KV cache 4.0, reserve 1.0) of 18.0 GiB")
    assert "on 1 x NVIDIA-L4: does NOT fit; largest context that fits: 2048" in said
    assert "smallest product that fits: NVIDIA-A100-SXM4-40GB" in said
    assert "fits, 10% headroom" in fit_line({**figures, "headroom": 0.1})


def test_the_cost_is_one_line_and_unknown_where_ref_has_no_price_table(repo: Path) -> None:
    values = repo / "templates" / "values.yaml"
    priced = values.read_text()
    start = priced.index("\nprices:")
    end = priced.find("\n\n", start + 1)
    values.write_text(priced[:start] + priced[end:])
    git(repo, "commit", "-qam", "no prices at REF")
    try:
        values.write_text(priced)
        shown = run_cli("--root", str(repo), "plan", "--changed-since", "HEAD", "models/iris.yaml")
        assert shown.code == 0, shown.err
        cost_lines = [line for line in shown.out.splitlines() if line.strip().startswith("cost")]
        assert cost_lines and all(" - -> " in line for line in cost_lines), shown.out
        assert "perHour" not in shown.out  # the cost's own line says it, once
    finally:
        git(repo, "reset", "-q", "--hard", "HEAD~1")
