"""Policy rules: every built-in rule's own examples, extension by data, waivers, masking."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from validator.check import policy, schema
from validator.check.policy.examples import example_document, parse_path

from .conftest import PROJECT, Scaffold, run_cli

BUILTIN, PROBLEMS = policy.load_policy(PROJECT)
CASES = [(rule.id, "pass", index) for rule in BUILTIN.rules for index in range(len(rule.passing))]
CASES += [(rule.id, "fail", index) for rule in BUILTIN.rules for index in range(len(rule.failing))]


def test_builtin_policy_loads_cleanly() -> None:
    assert PROBLEMS == []
    assert len(BUILTIN.rules) >= 15


def test_reference_spec_is_valid_and_passes_every_rule() -> None:
    document = example_document({})
    assert schema.check(document) == []
    assert policy.evaluate([document], BUILTIN, PROJECT) == []


def findings_for(rule_id: str, patch: dict, twice: bool = False) -> tuple[list, list]:
    """Evaluate the rule on the example beside a second spec: the reference one, or, for
    cross-file rules (`twice`), a copy of the example to collide with."""
    rule = BUILTIN.rule(rule_id)
    assert rule is not None
    documents = [
        example_document(patch if twice else {}, "zeroth"),
        example_document(patch, "first"),
    ]
    for document in documents:
        assert schema.check(document) == [], f"{rule_id} example is not a valid spec"
    return policy.evaluate_rule(rule, documents, BUILTIN, PROJECT), documents


@pytest.mark.parametrize(
    ("rule_id", "kind", "index"), CASES, ids=[f"{r}-{k}{i}" for r, k, i in CASES]
)
def test_rule_examples(rule_id: str, kind: str, index: int) -> None:
    rule = BUILTIN.rule(rule_id)
    assert rule is not None
    if kind == "pass":
        twice = rule.check == "unique_endpoints"
        found, _ = findings_for(rule_id, rule.passing[index].patch, twice=twice)
        assert found == []
        return
    example = rule.failing[index]
    found, documents = findings_for(rule_id, example.patch, twice=rule.check == "unique_endpoints")
    document = documents[-1]
    expected = document.locate(parse_path(example.at))
    assert [(d.path, d.line, d.col, d.rule) for d in found] == [
        (document.path, *expected, rule_id)
    ], [d.message for d in found]
    assert found[0].hint == rule.remediation


def validate(scaffold: Scaffold, *args: str) -> tuple[int, list[dict]]:
    result = run_cli("--root", str(scaffold.root), "validate", "--format", "json", *args)
    assert result.code in (0, 1), result.err
    return result.code, json.loads(result.out)["diagnostics"]


ACME = """\
apiVersion: modelgate.dev/v1alpha1
kind: PolicySet
metadata: {name: acme}
extends: [modelgate]
parameters:
  maxReplicasCap: 2
overrides:
  MG-SEC-004: {severity: warning, severityByEnvironment: {production: error}}
rules:
  - id: ACME-001
    title: models must be described
    severity: warning
    rationale: Product managers read the catalog.
    remediation: write metadata.description
    require: {properties: {metadata: {required: [description]}}}
    examples:
      pass: [{metadata: {description: A model.}}]
      fail: [{at: metadata, patch: {metadata: {description: null}}}]
"""


def test_a_new_rule_file_is_picked_up_without_code_changes(scaffold: Scaffold) -> None:
    scaffold.with_policies()
    spec = scaffold.iris(
        **{
            "  description: Logistic regression on the iris data set; "
            "the reference model for modelgate.\n": ""
        }
    )
    assert validate(scaffold, str(spec)) == (0, [])
    (scaffold.root / "policies" / "acme.yaml").write_text(ACME)
    code, found = validate(scaffold, str(spec))
    assert code == 1  # the tightened cap turns maxReplicas 3 into an error
    assert {(d["rule"], d["severity"]) for d in found} == {
        ("ACME-001", "warning"),
        ("MG-OPS-010", "error"),
    }
    listed = run_cli("--root", str(scaffold.root), "policies", "list")
    assert "ACME-001" in listed.out and "production=error" in listed.out
    explained = run_cli("--root", str(scaffold.root), "policies", "explain", "ACME-001")
    assert explained.code == 0 and "Product managers read the catalog." in explained.out


def test_severity_follows_the_environment(scaffold: Scaffold) -> None:
    scaffold.with_policies()
    (scaffold.root / "policies" / "acme.yaml").write_text(ACME)
    spec = scaffold.iris(
        **{
            "    sha256: 8698570b26d3905996e7e4cc7fb011d9f4e7d66cad16bdd14e47891e9f7c44be\n": "",
            "format: sklearn": "format: xgboost",
            "maxReplicas: 3": "maxReplicas: 2",
        }
    )
    code, found = validate(scaffold, str(spec), "--env", "staging")
    assert code == 0 and [(d["rule"], d["severity"]) for d in found] == [("MG-SEC-004", "warning")]
    code, found = validate(scaffold, str(spec))  # staging and production: the strictest wins
    assert code == 1 and [(d["rule"], d["severity"]) for d in found] == [("MG-SEC-004", "error")]


def test_broken_policy_files_are_located(scaffold: Scaffold) -> None:
    scaffold.with_policies()
    scaffold.iris()
    bad = ACME.replace("extends: [modelgate]", "extends: [nosuchset]")
    (scaffold.root / "policies" / "acme.yaml").write_text(bad)
    code, found = validate(scaffold)
    assert code == 1 and [(d["path"], d["line"], d["col"], d["rule"]) for d in found] == [
        ("policies/acme.yaml", 4, 11, "MG701")
    ]
    missing_examples = ACME.split("    examples:")[0]
    (scaffold.root / "policies" / "acme.yaml").write_text(missing_examples)
    code, found = validate(scaffold)
    assert code == 1 and found[0]["path"] == "policies/acme.yaml" and found[0]["rule"] == "MG201"
    assert "'examples' is a required property" in found[0]["message"]


SOON = (dt.date.today() + dt.timedelta(days=30)).isoformat()
WAIVER = """\
apiVersion: modelgate.dev/v1alpha1
kind: Waivers
waivers:
  - rule: {rule}
    spec: iris
    justification: Migration to two replicas is scheduled with the platform team.
    approver: {approver}
    expires: "{expires}"
"""


def waive(
    scaffold: Scaffold,
    rule: str = "MG-OPS-011",
    approver: str = "security@example.com",
    expires: str = SOON,
) -> None:
    text = WAIVER.format(rule=rule, approver=approver, expires=expires)
    (scaffold.root / "policies" / "waivers.yaml").write_text(text)


@pytest.fixture
def one_replica(scaffold: Scaffold) -> Scaffold:
    scaffold.with_policies()
    scaffold.iris(**{"minReplicas: 2": "minReplicas: 1"})
    return scaffold


def test_valid_waiver_accepts_the_finding(one_replica: Scaffold) -> None:
    assert validate(one_replica)[0] == 1
    waive(one_replica)
    code, found = validate(one_replica)
    assert code == 0
    [finding] = found
    assert finding["rule"] == "MG-OPS-011" and finding["waiver"].startswith(f"waived until {SOON}")
    text = run_cli("--root", str(one_replica.root), "validate")
    assert text.code == 0 and f"waived until {SOON} by security@example.com" in text.out


def test_a_waived_spec_is_rendered_and_its_files_are_not_pruned(one_replica: Scaffold) -> None:
    """The waiver is what lets the spec ship: render must not treat it as broken (it used
    to skip the spec and prune its files, which Argo CD would have deleted)."""
    waive(one_replica)
    rendered = one_replica.root / "rendered/production/iris/model.yaml"
    result = run_cli("--root", str(one_replica.root), "render")
    assert result.code == 0, result.err
    assert "minReplicas: 1" in rendered.read_text()
    again = run_cli("--root", str(one_replica.root), "render")
    assert again.code == 0 and "0 file(s) changed, 0 removed" in again.out
    assert rendered.exists()


def test_expired_waiver_is_an_error_and_waives_nothing(one_replica: Scaffold) -> None:
    waive(one_replica, expires="2020-01-31")
    code, found = validate(one_replica)
    assert code == 1
    assert {(d["rule"], d["path"], d["line"], d["col"]) for d in found} == {
        ("MG-OPS-011", "models/iris.yaml", 26, 18),
        ("MG801", "policies/waivers.yaml", 4, 5),
    }
    assert all(not d["waiver"] for d in found)


def test_a_waiver_beyond_the_longest_allowed_is_an_error_at_its_expiry(
    one_replica: Scaffold,
) -> None:
    waive(one_replica, expires="9999-12-31")
    code, found = validate(one_replica)
    assert code == 1
    assert {(d["rule"], d["path"], d["line"], d["col"]) for d in found} == {
        ("MG-OPS-011", "models/iris.yaml", 26, 18),
        ("MG804", "policies/waivers.yaml", 8, 14),
    }
    assert all(not d["waiver"] for d in found)
    assert "more than 90 days" in next(d for d in found if d["rule"] == "MG804")["message"]


def test_a_waiver_at_the_longest_allowed_expiry_holds(one_replica: Scaffold) -> None:
    waive(one_replica, expires=(dt.date.today() + dt.timedelta(days=90)).isoformat())
    code, found = validate(one_replica)
    assert code == 0 and [(d["rule"], bool(d["waiver"])) for d in found] == [("MG-OPS-011", True)]


def test_a_policy_set_may_shorten_the_longest_waiver(one_replica: Scaffold) -> None:
    strict = ACME.split("overrides:")[0].replace("maxReplicasCap: 2", "maxWaiverDays: 7")
    (one_replica.root / "policies" / "acme.yaml").write_text(strict.split("rules:")[0])
    waive(one_replica)
    code, found = validate(one_replica)
    assert code == 1 and {d["rule"] for d in found} == {"MG-OPS-011", "MG804"}


def test_a_waiver_limit_that_is_not_a_day_count_is_refused(one_replica: Scaffold) -> None:
    broken = ACME.split("overrides:")[0].replace("maxReplicasCap: 2", "maxWaiverDays: ninety")
    (one_replica.root / "policies" / "acme.yaml").write_text(broken)
    code, found = validate(one_replica)
    assert code == 1 and [(d["path"], d["line"], d["col"], d["rule"]) for d in found] == [
        ("policies/acme.yaml", 6, 18, "MG701")
    ]


def test_stale_waiver_warns_and_fails_only_when_strict(one_replica: Scaffold) -> None:
    waive(one_replica, rule="MG-SEC-001")
    code, found = validate(one_replica)
    assert {d["rule"] for d in found} == {"MG-OPS-011", "MG802"}
    one_replica.iris()  # fix the finding: the waiver for MG-SEC-001 was never needed
    code, found = validate(one_replica)
    assert code == 0 and [(d["rule"], d["severity"]) for d in found] == [("MG802", "warning")]
    assert validate(one_replica, "--strict")[0] == 1


def located_findings(found: list[dict]) -> list[tuple[str, int, int, str]]:
    return [(d["path"], d["line"], d["col"], d["rule"]) for d in found]


def test_a_waiver_of_a_rule_no_policy_set_defines_is_an_error_at_its_rule(
    one_replica: Scaffold,
) -> None:
    waive(one_replica, rule="MG-0PS-011")  # a zero for the letter O
    code, found = validate(one_replica)
    assert code == 1 and sorted(located_findings(found)) == [
        ("models/iris.yaml", 26, 18, "MG-OPS-011"),
        ("policies/waivers.yaml", 4, 11, "MG805"),
    ]
    [waiver] = [d for d in found if d["rule"] == "MG805"]
    assert waiver["severity"] == "error" and waiver["hint"] == "did you mean 'MG-OPS-011'?"
    assert "MG-0PS-011, which no policy set defines" in waiver["message"]
    assert not any(d["waiver"] for d in found)


def test_a_waiver_of_a_check_no_waiver_accepts_is_an_error_at_its_rule(
    one_replica: Scaffold,
) -> None:
    """An artifact's digest (MG119) is not a policy: no approver can make changed bytes the
    reviewed ones."""
    waive(one_replica, rule="MG119")
    code, found = validate(one_replica)
    assert code == 1 and ("policies/waivers.yaml", 4, 11, "MG807") in located_findings(found)
    [waiver] = [d for d in found if d["rule"] == "MG807"]
    assert waiver["message"] == (
        "waiver names MG119 (artifact differs from its digest), a check no waiver can accept"
    )
    assert "MG802" not in {d["rule"] for d in found}


def test_a_waiver_for_a_spec_that_does_not_exist_is_an_error_at_its_spec(
    one_replica: Scaffold,
) -> None:
    text = WAIVER.format(rule="MG-OPS-011", approver="security@example.com", expires=SOON)
    (one_replica.root / "policies" / "waivers.yaml").write_text(
        text.replace("spec: iris", "spec: irsi")
    )
    code, found = validate(one_replica)
    assert code == 1 and sorted(located_findings(found)) == [
        ("models/iris.yaml", 26, 18, "MG-OPS-011"),
        ("policies/waivers.yaml", 5, 11, "MG806"),
    ]
    [waiver] = [d for d in found if d["rule"] == "MG806"]
    assert waiver["hint"] == "did you mean 'iris'?"
    assert waiver["message"] == "waiver for MG-OPS-011 names spec irsi, which does not exist"


def test_waiver_from_an_unlisted_approver_is_refused(one_replica: Scaffold) -> None:
    waive(one_replica, approver="intern@example.com")
    code, found = validate(one_replica)
    assert code == 1 and {d["rule"] for d in found} == {"MG-OPS-011", "MG803"}
    assert (
        "who may not approve waivers" in next(d for d in found if d["rule"] == "MG803")["message"]
    )


def test_secrets_are_masked_in_every_output(scaffold: Scaffold) -> None:
    scaffold.with_policies()
    key = "AKIA" + "Z7Q4M2X9P1L8K3J6"
    scaffold.iris(**{"description: Logistic": f"description: {key} Logistic"})
    # a schema message quotes the offending value; that spec gets no policy findings
    scaffold.iris("quoted", **{"[staging, production]": f"[staging, production, {key}]"})
    for fmt in ("text", "json"):
        result = run_cli("--root", str(scaffold.root), "validate", "--format", fmt)
        assert result.code == 1 and "MG-SEC-030" in result.out and "MG201" in result.out
        assert key not in result.out and "AKIA****" in result.out


def test_policy_files_in_the_project_are_valid(tmp_path: Path) -> None:
    assert policy.load_policy(PROJECT)[1] == []


def test_escaped_secrets_are_found_too(scaffold: Scaffold) -> None:
    scaffold.with_policies()
    scaffold.iris(**{"description: Logistic": 'description: "key \\x41KIAIOSFODNN7EXAMPLE" #'})
    result = run_cli("--root", str(scaffold.root), "validate")
    assert (
        result.code == 1 and "MG-SEC-030 metadata.description holds an AWS access key" in result.out
    )


def test_an_artifact_symlink_out_of_the_repository_is_refused(scaffold: Scaffold) -> None:
    scaffold.with_policies()
    outside = scaffold.root.parent / "elsewhere.joblib"
    outside.write_bytes(b"not reviewed")
    link = scaffold.root / "models" / "artifacts" / "iris" / "linked.joblib"
    link.symlink_to(outside)
    spec = scaffold.iris(**{"iris/model.joblib": "iris/linked.joblib"})
    result = run_cli("--root", str(scaffold.root), "validate", str(spec))
    line = (
        spec.read_text().splitlines().index("    artifact: models/artifacts/iris/linked.joblib") + 1
    )
    assert result.code == 1
    assert (
        f"models/iris.yaml:{line}:15: MG-SEC-006 artifact path 'models/artifacts/iris/"
        "linked.joblib' is a symlink that leaves the repository"
    ) in result.out


IN_A_BUCKET = {
    "artifact: models/artifacts/iris/model.joblib": "artifact: s3://models/iris/model.joblib",
    # a pickle from a store is never scanned: production takes none (MG-SEC-009)
    "environments: [staging, production]": "environments: [staging]",
}
AN_IMAGE = {  # a model image serves itself: the docker engine
    "artifact: models/artifacts/iris/model.joblib": "image: registry.example.com/ml/iris@sha256:"
    + "c" * 64,
    "    sha256: 8698570b26d3905996e7e4cc7fb011d9f4e7d66cad16bdd14e47891e9f7c44be\n": "",
    "name: mlserver\n    version: 1.7.1": "name: docker",
}


def endpoint(field: str, value: str | int, visibility: str = "internal") -> dict[str, str]:
    return {"visibility: internal": f"visibility: {visibility}\n    {field}: {value}"}


def endpoint_findings(scaffold: Scaffold) -> tuple[int, list[tuple[str, int, int, str]]]:
    code, found = validate(scaffold)
    return code, [
        (d["path"], d["line"], d["col"], d["message"]) for d in found if d["rule"] == "MG-OPS-040"
    ]


def line_of(spec: Path, text: str) -> int:
    return spec.read_text().splitlines().index(text) + 1


def test_specs_that_run_only_in_clusters_may_share_a_port(scaffold: Scaffold) -> None:
    scaffold.with_policies()
    scaffold.iris("alpha", **IN_A_BUCKET, **endpoint("port", 8080))
    scaffold.iris("beta", **IN_A_BUCKET, **endpoint("port", 8080))
    scaffold.iris("gamma", **endpoint("port", 8080))  # the only one on this machine
    assert endpoint_findings(scaffold) == (0, [])


def test_the_same_port_on_this_machine_is_a_finding_at_the_second_spec(scaffold: Scaffold) -> None:
    scaffold.with_policies()
    scaffold.iris("alpha", **endpoint("port", 8080))  # the local target serves it
    beta = scaffold.iris("beta", **AN_IMAGE, **endpoint("port", 8080))  # the docker target
    code, found = endpoint_findings(scaffold)
    assert code == 1
    assert found == [
        (
            "models/beta.yaml",
            line_of(beta, "    port: 8080"),
            11,
            "endpoint port 8080 is already used by models/alpha.yaml; both run on this "
            "machine, whose ports the local and docker targets share",
        )
    ]


def test_hosts_stay_unique_wherever_the_specs_run(scaffold: Scaffold) -> None:
    scaffold.with_policies()
    host = endpoint("host", "iris.models.example.com", "public")  # a host is a public route
    scaffold.iris("alpha", **AN_IMAGE, **host)
    beta = scaffold.iris("beta", **AN_IMAGE, **host)
    code, found = endpoint_findings(scaffold)
    assert code == 1
    assert [where[:3] for where in found] == [
        ("models/beta.yaml", line_of(beta, "    host: iris.models.example.com"), 11)
    ]
