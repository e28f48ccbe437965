"""Output rules: what `modelgate render` makes is judged by the policy before it is written, so
a template or templates/values.yaml edit cannot put into a cluster what the policy forbids.

Tests that change templates or values do it in a copy of the project, which passes every
output rule as committed, so that each test sees only the findings it provokes."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from validator import render
from validator.check import policy, workspace
from validator.check.policy import output, rendered
from validator.check.policy.examples import example_objects, output_path, parse_path, reference
from validator.engines import health_paths
from validator.render import crds

from .conftest import PROJECT, Scaffold, crd_dirs, run_cli

BUILTIN, PROBLEMS = policy.load_policy(PROJECT)
CASES = [
    (rule.id, kind, index)
    for rule in BUILTIN.output_rules
    for kind, examples in (("pass", rule.passing), ("fail", rule.failing))
    for index in range(len(examples))
]
DIGEST = "@sha256:" + "5e" * 32


def test_the_built_in_set_has_output_rules_and_loads_cleanly() -> None:
    assert PROBLEMS == []
    assert len(BUILTIN.output_rules) >= 12
    assert not {rule.id for rule in BUILTIN.rules} & BUILTIN.output_rule_ids()


def test_the_reference_output_passes_every_output_rule() -> None:
    context = rendered.OutputContext(BUILTIN.parameters, reference(), {})
    found = output.evaluate(example_objects({}), BUILTIN, context, ["staging"])
    assert [(f.rule.id, f.object.path, f.message) for f in found] == []


@pytest.mark.parametrize(
    ("rule_id", "kind", "index"), CASES, ids=[f"{r}-{k}{i}" for r, k, i in CASES]
)
def test_output_rule_examples(rule_id: str, kind: str, index: int) -> None:
    rule = BUILTIN.rule(rule_id)
    assert rule is not None and rule.output
    context = rendered.OutputContext(BUILTIN.parameters, reference(), {})
    example = (rule.passing if kind == "pass" else rule.failing)[index]
    found = list(output.rule_findings(rule, example_objects(example.patch), context))
    if kind == "pass":
        assert found == []
        return
    name, *path = parse_path(example.at)
    assert [(obj.path, where) for obj, where, _ in found] == [(output_path(name), path)], [
        message for _, _, message in found
    ]


def test_health_paths_come_from_values_the_record_or_the_protocol() -> None:
    def spec(engine: str, protocol: str, model: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"engine": {"name": engine, "protocol": protocol}, "model": model or {}}

    assert health_paths(spec("vllm", "openai"), "m", {})[1] == "/health"
    assert health_paths(spec("triton", "v2"), "m", {})[0] == "/v2/health/live"
    image = {"image": "registry.example.com/churn" + DIGEST}
    assert health_paths(spec("docker", "v1", image), "churn", {}) == ("/", "/v1/models/churn")
    overridden = {"engines": {"kserve": {"ready": "/r"}}}
    assert health_paths(spec("kserve", "v2"), "m", overridden) == ("/v2/health/live", "/r")


# --- the render stage -------------------------------------------------------------------------


def clean_copy(tmp_path: Path) -> Path:
    """The project's specs, templates, policies and rendered/ (waivers aside)."""
    root = tmp_path / "repo"
    for part in ("models", "templates", "policies", "rendered", "docs/models"):
        shutil.copytree(PROJECT / part, root / part, ignore=shutil.ignore_patterns("waivers.yaml"))
    return root


UNPIN = ("image: {{ v.image | tojson }}", 'image: {{ v.image.split("@")[0] | tojson }}')


def edit_template(root: Path, name: str, *replacements: tuple[str, str]) -> str:
    """Apply text replacements to templates/NAME; the edited text."""
    template = root / "templates" / name
    text = template.read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    template.write_text(text)
    return text


def edit_values(root: Path, change: Any) -> None:
    path = root / "templates/values.yaml"
    values = yaml.safe_load(path.read_text())
    change(values)
    path.write_text(yaml.safe_dump(values, sort_keys=False))


def tree(root: Path) -> dict[str, bytes]:
    base = root / "rendered"
    return {
        str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()
    }


def rendered_text(root: Path, relative: str) -> str:
    """What rendering makes of one file now, without the output policy and without writing."""
    validation = workspace.validate(workspace.discover(root, []), root, policies=False)
    files = render.render_all(validation.valid_documents(), root).files
    return next(item.content for item in files if str(item.path) == relative)


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


# The one policy finding of the examples: a warning that churn-pipeline (a transformer on a
# feature store) is first smoke-tested after merge
CHURN_UNTESTED = (
    "models/churn-pipeline.yaml:55:3: MG-OPS-050 warning: neither the local nor the docker "
    "target runs it (engine kserve, model s3://growth-models/churn/3.1.0/model.joblib): its "
    "smoke tests would first run after merge"
)


@pytest.fixture
def clean(tmp_path: Path) -> Path:
    return clean_copy(tmp_path)


def test_a_clean_copy_passes_render_check(clean: Path) -> None:
    done = run_cli("--root", str(clean), "render", "--check")
    assert done.code == 0, done.err
    assert [line for line in done.err.splitlines() if "MG-" in line] == [CHURN_UNTESTED]


ATTACK = {
    "      automountServiceAccountToken: false\n": (
        "      automountServiceAccountToken: false\n      hostPID: true\n      hostNetwork: true\n"
    ),
    "          securityContext:{{ v.container_security | toyaml(12) }}\n": (
        "          securityContext: {privileged: true, runAsUser: 0}\n"
    ),
    '        - {name: "tmp", emptyDir: {sizeLimit: {{ v.scratch_size | tojson }}}}\n': (
        '        - {name: "tmp", emptyDir: {sizeLimit: {{ v.scratch_size | tojson }}}}\n'
        '        - {name: "node", hostPath: {path: "/"}}\n'
    ),
}


def attack(root: Path) -> str:
    """The issue's pull request: a privileged, host-sharing Deployment template, and values
    pointing at an attacker's registry and repository. The edited template's text."""
    text = edit_template(root, "_k8s/deployment.yaml.j2", *ATTACK.items())
    edit_values(
        root,
        lambda values: values.update(
            imageMirror="attacker.example.net/mirror",
            repoURL="https://attacker.example.net/takeover.git",
        ),
    )
    return text


def test_the_template_edit_attack_is_refused_by_render_and_render_check(clean: Path) -> None:
    before = tree(clean)
    template = attack(clean)
    deployment = "rendered/staging/chat-assistant/deployment.yaml"
    text = rendered_text(clean, deployment)
    for args in (["render"], ["render", "--check"]):
        done = run_cli("--root", str(clean), *args)
        assert done.code == 1, done.err
        assert tree(clean) == before  # nothing written
        err = done.err
        assert (
            f"{deployment}:{line_of(text, 'hostPID: true')}:16: MG-SEC-110 pod templates must meet "
            "the restricted Pod Security Standard (spec.template.spec.hostPID is True); rendered "
            "by templates/vllm/deployment.yaml.j2 (hostPID written at "
            f"templates/_k8s/deployment.yaml.j2:{line_of(template, 'hostPID: true')})"
        ) in err
        assert f"{deployment}:{line_of(text, 'hostNetwork: true')}:20: MG-SEC-110" in err
        assert "spec.template.spec.volumes[1] is 'hostPath'" in err
        assert f"{deployment}:{line_of(text, 'privileged: true')}:" in err
        assert "securityContext.privileged is True" in err
        assert "securityContext.runAsUser is 0" in err
        assert "securityContext.capabilities is missing" in err
        image = line_of(text, "image: ")
        assert (
            f"{deployment}:{image}:18: MG-SEC-102 rendered images must come from an allowed " in err
        )
        assert "rendered/argocd/staging.yaml:" in err and "MG-SEC-130" in err
        assert "https://attacker.example.net/takeover.git" in err
        # the Triton template extends the same Deployment: its output is refused too
        assert "rendered/production/fraud-onnx/deployment.yaml:" in err
    assert "nothing written" in done.err or "--check" in args


def test_attacker_values_alone_are_refused(clean: Path) -> None:
    edit_values(clean, lambda values: values.update(imageMirror="attacker.example.net/mirror"))
    done = run_cli("--root", str(clean), "render")
    assert done.code == 1
    assert "MG-SEC-102" in done.err and "attacker.example.net/mirror/vllm" in done.err
    assert "image written at templates/_k8s/deployment.yaml.j2:" in done.err


# the example specs that render a Deployment running an engine image
DEPLOYMENTS = ("chat-assistant", "fraud-onnx", "fraud-onnx-small", "tiny-llama")
UNPINNED = {
    f"rendered/{env}/{name}/deployment.yaml"
    for env in ("staging", "production")
    for name in DEPLOYMENTS
}


def unpinned(output: str) -> set[str]:
    return {d["path"] for d in json.loads(output)["diagnostics"] if d["rule"] == "MG-SEC-101"}


def test_a_template_that_drops_the_digest_is_refused(clean: Path) -> None:
    template = edit_template(clean, "_k8s/deployment.yaml.j2", UNPIN)
    done = run_cli("--root", str(clean), "render", "--check")
    assert done.code == 1
    text = rendered_text(clean, "rendered/staging/chat-assistant/deployment.yaml")
    where = f"templates/_k8s/deployment.yaml.j2:{line_of(template, 'image: ')}"
    assert (
        f"rendered/staging/chat-assistant/deployment.yaml:{line_of(text, 'image: ')}:18: "
        "MG-SEC-101 rendered images must be pinned by digest (spec.template.spec.containers[0]."
        "image is 'registry.example.com/mirror/vllm/vllm-openai:v0.6.3'); rendered by "
        f"templates/vllm/deployment.yaml.j2 (image written at {where})"
    ) in done.err
    done = run_cli("--root", str(clean), "render", "--check", "--format", "json")
    assert unpinned(done.out) == UNPINNED


def waivers(*specs: str) -> str:
    expires = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    return "apiVersion: modelgate.dev/v1alpha1\nkind: Waivers\nwaivers:\n" + "".join(
        f"  - rule: MG-SEC-101\n    spec: {spec}\n"
        "    justification: the mirror publishes digests next week\n"
        f'    approver: security@example.com\n    expires: "{expires}"\n'
        for spec in specs
    )


def test_a_waiver_silences_an_output_finding_of_its_spec(clean: Path) -> None:
    edit_template(clean, "_k8s/deployment.yaml.j2", UNPIN)
    (clean / "policies/waivers.yaml").write_text(waivers("chat-assistant"))
    done = run_cli("--root", str(clean), "render", "--format", "json")
    assert done.code == 1  # fraud-onnx has no waiver
    found = [d for d in json.loads(done.out)["diagnostics"] if d["rule"] == "MG-SEC-101"]
    assert {d["path"] for d in found if d["waiver"]} == {
        path for path in UNPINNED if "chat-assistant" in path
    }
    (clean / "policies/waivers.yaml").write_text(waivers(*DEPLOYMENTS))
    done = run_cli("--root", str(clean), "render", "--format", "json")
    assert done.code == 0, done.out + done.err
    assert run_cli("--root", str(clean), "render", "--check").code == 0
    # validation does not judge the output: its waivers are not stale there
    validated = run_cli("--root", str(clean), "validate")
    assert validated.code == 0 and "MG802" not in validated.out, validated.out


def test_a_waiver_that_matches_no_output_finding_is_stale(clean: Path) -> None:
    (clean / "policies/waivers.yaml").write_text(waivers("iris"))
    done = run_cli("--root", str(clean), "render", "--check")
    assert done.code == 0  # a warning
    assert "MG802" in done.err and "waiver for MG-SEC-101 on iris matches no finding" in done.err


OVERRIDES = """\
apiVersion: modelgate.dev/v1alpha1
kind: PolicySet
metadata: {name: acme}
extends: [modelgate]
overrides:
  MG-SEC-101: {severity: warning, severityByEnvironment: {production: error}}
"""


def test_severity_overrides_apply_to_output_rules(clean: Path) -> None:
    edit_template(clean, "_k8s/deployment.yaml.j2", UNPIN)
    (clean / "policies/acme.yaml").write_text(OVERRIDES)
    done = run_cli("--root", str(clean), "render", "--check", "--format", "json")
    assert done.code == 1
    found = {
        (d["path"], d["severity"])
        for d in json.loads(done.out)["diagnostics"]
        if d["rule"] == "MG-SEC-101"
    }
    assert found == {
        (path, "error" if path.split("/")[1] == "production" else "warning") for path in UNPINNED
    }
    (clean / "policies/acme.yaml").write_text(
        OVERRIDES.replace(", severityByEnvironment: {production: error}", "")
    )
    done = run_cli("--root", str(clean), "render")
    assert done.code == 0, done.err
    assert "warning" in done.err and "MG-SEC-101" in done.err
    weakened = run_cli("--root", str(clean), "validate")
    assert "MG-SEC-101 error -> warning" in weakened.out


def test_output_findings_in_json_and_sarif_carry_file_and_line(clean: Path) -> None:
    attack(clean)
    done = run_cli("--root", str(clean), "render", "--check", "--format", "json")
    assert done.code == 1
    found = [d for d in json.loads(done.out)["diagnostics"] if d["rule"] == "MG-SEC-110"]
    assert found and all(d["path"].startswith("rendered/") and d["line"] > 0 for d in found)
    done = run_cli("--root", str(clean), "render", "--format", "sarif")
    assert done.code == 1
    results = json.loads(done.out)["runs"][0]["results"]
    located = [
        r["locations"][0]["physicalLocation"] for r in results if r["ruleId"] == "MG-SEC-110"
    ]
    assert located and all(
        place["artifactLocation"]["uri"].startswith("rendered/")
        and place["region"]["startLine"] > 0
        for place in located
    )


def test_inference_services_are_hardened_like_deployments() -> None:
    folder = PROJECT / "rendered/staging/churn-kserve"
    service = yaml.safe_load((folder / "inferenceservice.yaml").read_text())
    predictor = service["spec"]["predictor"]
    assert predictor["automountServiceAccountToken"] is False
    container = predictor["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    pods = {"serving.kserve.io/inferenceservice": "churn-kserve"}
    policy_ = yaml.safe_load((folder / "networkpolicy.yaml").read_text())
    assert policy_["spec"]["podSelector"]["matchLabels"] == pods
    assert policy_["spec"]["ingress"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
    budget = yaml.safe_load((folder / "pdb.yaml").read_text())
    assert budget["spec"]["selector"]["matchLabels"] == pods


KSERVE_RUNTIME = {
    "  engine:\n    name: mlserver\n    version: 1.7.1\n": (
        "  engine:\n    name: kserve\n    deploymentMode: Serverless\n"
    ),
}


def test_a_runtime_served_inference_service_gets_probes_the_crd_allows(scaffold: Scaffold) -> None:
    schemas = crds.load_dirs(crd_dirs())
    scaffold.iris(**KSERVE_RUNTIME)
    validation = workspace.validate(workspace.discover(scaffold.root, []), scaffold.root)
    assert not validation.failed(), validation.diagnostics
    rendering = render.render_all(validation.valid_documents(), scaffold.root, schemas)
    assert not rendering.failed(), rendering.diagnostics  # the CRD accepts the output
    files = {str(item.path): yaml.safe_load(item.content) for item in rendering.files}
    model = files["rendered/staging/iris/inferenceservice.yaml"]["spec"]["predictor"]["model"]
    assert model["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
    assert model["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    ports = files["rendered/staging/iris/networkpolicy.yaml"]["spec"]["ingress"][0]["ports"]
    assert [port["port"] for port in ports] == [8080, 8012]  # Knative's queue-proxy too
    assert "rendered/staging/iris/pdb.yaml" in files


MODELMESH = {
    "  engine:\n    name: mlserver\n    version: 1.7.1\n": (
        "  engine:\n    name: kserve\n    deploymentMode: ModelMesh\n"
    ),
    "  scaling:\n    minReplicas: 2\n    maxReplicas: 3\n": "",
}


def test_a_modelmesh_inference_service_is_an_object_without_pods(scaffold: Scaffold) -> None:
    """ModelMesh loads the model into the pods of a shared runtime: its InferenceService has no
    pod of its own, so the pod rules and the NetworkPolicy and PodDisruptionBudget checks
    ask nothing of it, while the same object in another mode is judged as a workload."""
    scaffold.iris(**MODELMESH)
    validation = workspace.validate(workspace.discover(scaffold.root, []), scaffold.root)
    assert not validation.failed(), validation.diagnostics
    rendering = render.render_all(validation.valid_documents(), scaffold.root)
    assert not rendering.failed(), [str(d) for d in rendering.diagnostics]
    files = {str(item.path): yaml.safe_load(item.content) for item in rendering.files}
    data = files["rendered/staging/iris/inferenceservice.yaml"]
    assert "rendered/staging/iris/networkpolicy.yaml" not in files
    shared = rendered.OutputObject("rendered/staging/iris/inferenceservice.yaml", data)
    assert shared.shares_pods and shared.pod_specs == []
    data["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = "RawDeployment"
    own = rendered.OutputObject("rendered/staging/iris/inferenceservice.yaml", data)
    assert not own.shares_pods and [path for path, _ in own.pod_specs] == [["spec", "predictor"]]
    rules = policy.load_policy(PROJECT)[0]
    context = rendered.OutputContext(parameters=rules.parameters)
    found = {finding.rule.id for finding in output.evaluate([own], rules, context, ["staging"])}
    assert {"MG-SEC-120", "MG-OPS-120"} <= found  # no NetworkPolicy, no PodDisruptionBudget
    assert output.evaluate([shared], rules, context, ["staging"]) == []


def test_the_committed_output_breaks_no_rule_but_the_two_pending_ones() -> None:
    """The examples as committed: only engine images without digests and NetworkPolicies
    without egress are flagged, until those changes land."""
    done = run_cli("render", "--check", "--format", "json")
    found = {d["rule"] for d in json.loads(done.out)["diagnostics"] if d["rule"].startswith("MG-")}
    assert found <= {"MG-SEC-101", "MG-SEC-120", "MG-OPS-050"}, done.out


def test_the_kubernetes_target_applies_nothing_render_would_refuse(
    clean: Path, tmp_path: Path
) -> None:
    """`deploy --target kubernetes` renders and applies one spec itself: the output rules
    judge it there too, before kubectl is ever run."""
    attack(clean)
    tools = tmp_path / "bin"
    tools.mkdir()
    called = tmp_path / "kubectl-called"
    kubectl = tools / "kubectl"
    kubectl.write_text(f"#!/bin/sh\ntouch {called}\nexit 1\n")
    kubectl.chmod(0o755)
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MODELGATE_DEBUG", None)
    done = subprocess.run(
        [sys.executable, "-m", "validator.cli", "--root", str(clean), "deploy",
         "models/chat-assistant.yaml", "--target", "kubernetes", "--env", "staging"],
        cwd=clean, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "rendered/staging/chat-assistant/deployment.yaml:" in done.stdout + done.stderr
    assert "MG-SEC-110" in done.stdout + done.stderr
    assert not called.exists()


def test_policies_list_and_explain_show_output_rules() -> None:
    listed = run_cli("policies", "list")
    assert listed.code == 0
    assert re.search(
        r"^MG-SEC-110 +error +env:all +output:podSpec +pod templates", listed.out, re.M
    )
    explained = run_cli("policies", "explain", "MG-SEC-130")
    assert explained.code == 0
    assert "judges: the rendered output, each object of kind ApplicationSet" in explained.out
    assert "Passes (changes to the reference output" in explained.out
    assert "the finding points at applicationset.spec.generators[0].git.repoURL" in explained.out
