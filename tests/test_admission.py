"""One verdict, two places: rendered/ENV/_admission/ (the output rules compiled to
ValidatingAdmissionPolicies) installed on the real API server refuses exactly the objects the
Python evaluation of the same rules refuses, with a message naming the same rule.

Objects: every output rule's passing and failing examples (merge patches on the reference
output) and every object of rendered/. Each is created with a server-side dry run into its
environment's namespace; the rule ids the server names are compared with those the Python
evaluation finds, over the compiled rules, in both directions.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import shlex
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from validator.check import policy
from validator.check.policy import cel, output, rendered, waivers
from validator.check.policy.examples import example_objects
from validator.diagnostics import Diagnostic, Severity
from validator.render import admission

from . import kube_env
from .conftest import PROJECT, run_cli
from .test_kube_apiserver import ensure_namespace
from .test_output_policy import clean_copy

BUILTIN, _ = policy.load_policy(PROJECT)
COMPILED = admission.compile_policy(BUILTIN)
COMPILED_IDS = {compiled.rule.id for compiled in COMPILED.rules}
ENVIRONMENTS = ("staging", "production")
RULE_ID = re.compile(r"\bMG-[A-Z]+-\d+\b")
CONTEXT = rendered.OutputContext(parameters=BUILTIN.parameters)
ENFORCED_WITHIN = 60.0  # seconds: a policy the server has just been given takes effect


def python_verdict(obj: rendered.OutputObject) -> set[str]:
    """The compiled rules whose Python evaluation refuses the object."""
    return {
        compiled.rule.id
        for compiled in COMPILED.rules
        if any(found is obj for found, _, _ in output.rule_findings(compiled.rule, [obj], CONTEXT))
    }


def dry_run_create(kube: kube_env.KubeEnv, data: dict[str, Any]) -> tuple[int, dict]:
    resource = kube.resource(data["apiVersion"], data["kind"])
    assert resource is not None, f"{data['apiVersion']} {data['kind']} is not served"
    namespace = data["metadata"]["namespace"]
    query = urllib.parse.urlencode({"dryRun": "All", "fieldValidation": "Strict"})
    return kube.request(
        "POST", f"{resource.prefix}/namespaces/{namespace}/{resource.plural}?{query}", data
    )


def server_verdict(kube: kube_env.KubeEnv, data: dict[str, Any]) -> set[str]:
    """The rule ids the server's refusal names in the object's own namespace, under the
    rendered bindings (none: it admitted the object). The server names the first policy
    that denies; a refusal that names no rule (a schema error) fails the test."""
    status, answer = dry_run_create(kube, data)
    if status == 201:
        return set()
    named = set(RULE_ID.findall(answer.get("message", "")))
    assert named, f"refused for another reason ({status}): {answer.get('message')}"
    return named


def every_rule_verdict(kube: kube_env.KubeEnv, data: dict[str, Any]) -> set[str] | None:
    """The rule ids of every compiled policy that refuses the object: each policy bound
    with Warn to the PARITY namespace, where the server warns of all of them. None: the
    server's own validation refuses the object before any policy sees it."""
    data = {**data, "metadata": {**data["metadata"], "namespace": PARITY}}
    resource = kube.resource(data["apiVersion"], data["kind"])
    assert resource is not None
    query = urllib.parse.urlencode({"dryRun": "All", "fieldValidation": "Strict"})
    call = urllib.request.Request(
        f"{kube.server}{resource.prefix}/namespaces/{PARITY}/{resource.plural}?{query}",
        data=json.dumps(data).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(call, context=kube._tls(None), timeout=60) as answer:
            warnings = answer.headers.get_all("Warning") or []
    except urllib.error.HTTPError as refusal:
        answer = refusal.read().decode()
        assert refusal.code == 422 and not RULE_ID.findall(answer), answer
        return None
    return {rule for warning in warnings for rule in RULE_ID.findall(warning)}


PARITY = "modelgate-parity"


def parity_binding(policy_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": f"{policy_name}-parity"},
        "spec": {
            "policyName": policy_name,
            "validationActions": ["Warn"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": PARITY}}
            },
        },
    }


def agrees(kube: kube_env.KubeEnv, obj: rendered.OutputObject) -> str:
    """ "" when both places give the object the same verdict, else what differs: every
    compiled rule Python finds broken is named by the server and no other, and the
    rendered bindings refuse it in its namespace exactly when one is, naming one of them."""
    expected = python_verdict(obj)
    every = every_rule_verdict(kube, obj.data)
    if every is None:  # invalid for Kubernetes itself: refused at the door all the same
        return "" if expected else f"{obj.path}: the server refuses what python admits"
    denied = server_verdict(kube, obj.data)
    if every != expected or bool(denied) != bool(expected) or not denied <= expected:
        return f"{obj.path}: python {sorted(expected)}, server {sorted(every)}, denied {denied}"
    return ""


def admission_objects() -> Iterator[dict[str, Any]]:
    for environment in ENVIRONMENTS:
        for path in sorted((PROJECT / "rendered" / environment / admission.ADMISSION).iterdir()):
            yield yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def enforcing(kube: kube_env.KubeEnv) -> kube_env.KubeEnv:
    """The API server with every environment's _admission/ applied (as a cluster admin
    does), each policy seen refusing its rule's first failing example."""
    for namespace in (*(f"models-{e}" for e in ENVIRONMENTS), PARITY):
        ensure_namespace(kube, namespace)
    for data in admission_objects():
        status, answer = kube.apply(data)
        assert status in (200, 201), (data["metadata"]["name"], answer.get("message"))
        if data["kind"] == "ValidatingAdmissionPolicy":
            status, answer = kube.apply(parity_binding(data["metadata"]["name"]))
            assert status in (200, 201), answer
    for compiled in COMPILED.rules:
        refused = next(
            obj
            for example in compiled.rule.failing
            for obj in on_cluster(example_objects(example.patch))
            if compiled.rule.id in python_verdict(obj)
            and every_rule_verdict(kube, obj.data) is not None
        )
        deadline = time.monotonic() + ENFORCED_WITHIN
        while compiled.rule.id not in (every_rule_verdict(kube, refused.data) or ()):
            assert time.monotonic() < deadline, f"{compiled.rule.id} never took effect"
            time.sleep(0.2)
    return kube


def on_cluster(objects: list[rendered.OutputObject]) -> list[rendered.OutputObject]:
    """The objects an environment's namespace receives (not compose files, not Argo CD's)."""
    return [
        obj
        for obj in objects
        if obj.kind != rendered.COMPOSE and obj.kind not in admission.ARGOCD_KINDS
    ]


def served(kube: kube_env.KubeEnv, objects: list[rendered.OutputObject]) -> list:
    return [obj for obj in objects if kube.resource(obj.data["apiVersion"], obj.kind)]


EXAMPLES = [
    (rule.id, kind, index)
    for rule in BUILTIN.output_rules
    if rule.id in COMPILED_IDS
    for kind, examples in (("pass", rule.passing), ("fail", rule.failing))
    for index in range(len(examples))
]


@pytest.mark.kube
@pytest.mark.parametrize(("rule_id", "kind", "index"), EXAMPLES)
def test_the_server_refuses_what_python_refuses_in_the_rules_examples(
    enforcing: kube_env.KubeEnv, rule_id: str, kind: str, index: int
) -> None:
    rule = BUILTIN.rule(rule_id)
    assert rule is not None
    example = (rule.passing if kind == "pass" else rule.failing)[index]
    objects = on_cluster(example_objects(example.patch))
    checked = served(enforcing, objects)
    assert [obj for obj in checked if obj.kind == "InferenceService"], "KServe's CRD is installed"
    assert not [problem for obj in checked if (problem := agrees(enforcing, obj))]
    if kind == "pass":  # a failing one may fail on a compose file only, which no cluster gets
        assert not any(rule_id in python_verdict(obj) for obj in checked)


def rendered_objects() -> list[rendered.OutputObject]:
    found = []
    for environment in ENVIRONMENTS:
        for path in sorted((PROJECT / "rendered" / environment).glob("*/*.yaml")):
            if path.parent.name.startswith("_"):
                continue
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            found.append(rendered.OutputObject(str(path.relative_to(PROJECT)), data))
    return found


@pytest.mark.kube
def test_the_server_agrees_with_python_on_every_rendered_object(
    enforcing: kube_env.KubeEnv,
) -> None:
    objects = served(enforcing, on_cluster(rendered_objects()))
    assert len(objects) > 20
    assert not [problem for obj in objects if (problem := agrees(enforcing, obj))]
    print(f"rendered: {len(objects)} objects x {len(COMPILED.rules)} compiled rules")


def test_every_output_rule_is_compiled_or_has_a_reason() -> None:
    ids = {rule.id for rule in BUILTIN.output_rules}
    assert COMPILED_IDS | set(COMPILED.not_compiled) == ids
    assert not COMPILED_IDS & set(COMPILED.not_compiled)
    assert {"MG-SEC-101", "MG-SEC-110", "MG-SEC-111", "MG-SEC-141", "MG-SEC-153"} <= COMPILED_IDS
    documented = (PROJECT / "docs" / "admission.md").read_text(encoding="utf-8")
    for rule_id, reason in COMPILED.not_compiled.items():
        assert f"| {rule_id} |" in documented and reason in documented, rule_id


def test_every_policy_message_names_its_rule() -> None:
    for data in admission_objects():
        if data["kind"] == "ValidatingAdmissionPolicy":
            rule_id = data["metadata"]["labels"]["modelgate.dev/rule"]
            assert all(v["message"].startswith(rule_id + " ") for v in data["spec"]["validations"])


def test_an_unknown_keyword_or_a_recursive_reference_is_not_compiled() -> None:
    rule = copy.deepcopy(BUILTIN.rule("MG-OPS-131"))
    assert rule is not None
    rule.require = {"properties": {"spec": {"dependentRequired": {"a": ["b"]}}}}
    with pytest.raises(cel.Untranslatable, match="dependentRequired"):
        cel.compile_rule(rule, ())
    rule.require = {
        "$ref": "#/definitions/a",
        "definitions": {"a": {"items": {"$ref": "#/definitions/a"}}},
    }
    with pytest.raises(cel.Untranslatable, match="recursive"):
        cel.compile_rule(rule, ())


def waiver(expires: dt.date) -> waivers.Waiver:
    return waivers.Waiver(
        rule="MG-SEC-112",
        spec="iris-kserve",
        justification="the model server reads its own token",
        approver="security@example.com",
        expires=expires.isoformat(),
        path="policies/waivers.yaml",
        line=2,
        col=5,
    )


def waived_binding(found: list[waivers.Waiver]) -> dict[str, Any]:
    """MG-SEC-112's staging binding as render makes it with `found` in policies/waivers.yaml."""
    compiled = next(c for c in COMPILED.rules if c.rule.id == "MG-SEC-112")
    approvers = BUILTIN.parameters["waiverApprovers"]
    today = dt.date.today()
    valid = [w for w in found if waivers.valid(w, approvers, today, 90)]
    excluded = {"InferenceService": ["iris-kserve"]} if valid else None
    name = admission.policy_name(compiled.rule)
    view = admission.binding_view(
        compiled, name, "staging", ["models-staging"], Severity.ERROR, excluded
    )
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": view["name"]},
        "spec": view["spec"],
    }


def token_mounted(name: str) -> dict[str, Any]:
    data = copy.deepcopy(rendered_file("staging", "iris-kserve", "inferenceservice.yaml"))
    data["metadata"]["name"] = name
    data["spec"]["predictor"].pop("automountServiceAccountToken")
    return data


def rendered_file(environment: str, spec: str, name: str) -> dict[str, Any]:
    path = PROJECT / "rendered" / environment / spec / name
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.mark.kube
def test_a_waived_object_passes_both_and_an_expired_waiver_exempts_nothing(
    enforcing: kube_env.KubeEnv,
) -> None:
    today = dt.date.today()
    kept, expired = waiver(today + dt.timedelta(days=30)), waiver(today - dt.timedelta(days=1))
    finding = Diagnostic(
        "rendered/staging/iris-kserve/inferenceservice.yaml", 1, 1, "MG-SEC-112",
        Severity.ERROR, "automountServiceAccountToken", "",
    )  # fmt: skip
    names = {finding.path: "iris-kserve"}
    approvers = BUILTIN.parameters["waiverApprovers"]
    try:
        for found, waived in (([kept], True), ([expired], False)):
            judged = waivers.apply([finding], names, found, approvers, today, 90)
            assert bool(judged[0].waiver) is waived
            status, answer = enforcing.apply(waived_binding(found))
            assert status == 200, answer
            verdict = {"MG-SEC-112"} if not waived else set()
            deadline = time.monotonic() + ENFORCED_WITHIN
            while server_verdict(enforcing, token_mounted("iris-kserve")) != verdict:
                assert time.monotonic() < deadline, "the binding's exclusions never took effect"
                time.sleep(0.2)
            # another object of the kind is not waived
            assert "MG-SEC-112" in server_verdict(enforcing, token_mounted("other"))
    finally:
        status, answer = enforcing.apply(waived_binding([]))
        assert status == 200, answer


@pytest.mark.kube
def test_a_malformed_object_is_refused_by_both_before_any_rule(
    enforcing: kube_env.KubeEnv,
) -> None:
    """render refuses it (MG403, the Kubernetes schema) and so does the server, by its
    schema: no rule is asked, in either place."""
    from validator.render import kube_schemas

    broken = copy.deepcopy(example_objects({})[0].data)
    broken["spec"]["template"]["spec"]["containers"] = "not a list"
    problem, _ = kube_schemas.check(broken, kube_schemas.Schemas())
    assert problem and "containers" in problem
    status, answer = dry_run_create(enforcing, broken)
    assert status in (400, 422) and not RULE_ID.findall(answer.get("message", "")), answer


@pytest.mark.kube
def test_a_kind_whose_crd_is_not_installed_never_reaches_admission(
    enforcing: kube_env.KubeEnv,
) -> None:
    data = {
        "apiVersion": "models.example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "models-staging"},
    }
    assert enforcing.resource(data["apiVersion"], data["kind"]) is None
    status, answer = enforcing.request(
        "POST", "/apis/models.example.com/v1/namespaces/models-staging/widgets?dryRun=All", data
    )
    assert status == 404, answer


EXPIRY_WORKFLOW = PROJECT / ".github" / "workflows" / "admission-expiry.yml"


def expiry_check_step() -> list[str]:
    workflow = yaml.safe_load(EXPIRY_WORKFLOW.read_text(encoding="utf-8"))
    assert "schedule" in workflow[True]  # YAML 1.1 reads the key `on` as true
    steps = workflow["jobs"]["render"]["steps"]
    step = next(step for step in steps if step.get("id") == "render")
    return shlex.split(step["run"])


def write_waiver(root: Path, expires: dt.date) -> None:
    text = (
        "apiVersion: modelgate.dev/v1alpha1\nkind: Waivers\nwaivers:\n"
        "  - rule: MG-SEC-112\n"
        "    spec: iris-kserve\n"
        "    justification: the model server reads its own token\n"
        "    approver: security@example.com\n"
        f'    expires: "{expires.isoformat()}"\n'
    )
    (root / "policies" / "waivers.yaml").write_text(text, encoding="utf-8")


def test_the_daily_render_fails_the_day_a_waiver_expires(tmp_path: Path) -> None:
    """rendered/ made while the waiver held excludes the spec's objects from the binding;
    once it has expired, the scheduled workflow's check step fails and names that binding."""
    root = clean_copy(tmp_path)
    today = dt.date.today()
    write_waiver(root, today + dt.timedelta(days=1))
    assert run_cli("--root", str(root), "render").code == 0
    binding = root / "rendered/staging/_admission/modelgate-mg-sec-112-binding.yaml"
    assert "iris-kserve" in binding.read_text(encoding="utf-8")
    command = expiry_check_step()
    assert command[:3] == [".venv/bin/modelgate", "render", "--check"]
    assert run_cli("--root", str(root), *command[1:]).code == 0
    write_waiver(root, today - dt.timedelta(days=1))  # the day after it ran out
    done = run_cli("--root", str(root), *command[1:])
    assert done.code == 1
    assert "modelgate-mg-sec-112-binding.yaml" in done.err + done.out
    # render writes nothing while the expired waiver is there (MG801); without it, the
    # binding exempts nothing
    assert run_cli("--root", str(root), "render").code == 1
    (root / "policies" / "waivers.yaml").unlink()
    assert run_cli("--root", str(root), "render").code == 0
    assert "iris-kserve" not in binding.read_text(encoding="utf-8")
