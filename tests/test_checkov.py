"""Checkov, an independent scanner, agrees with what modelgate renders: every failed check on
rendered/ is an exception listed with its reason in policies/checkov/exceptions.yaml, and every
exception there still matches a failure. Checkov runs for real, offline, from its own lock."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from . import checkov_scan
from .checkov_scan import Entry, Failure, Scan, Verdict

WORKLOAD = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: models-{environment}
  annotations: {annotations}
spec:
  replicas: 2
  selector:
    matchLabels: {{app.kubernetes.io/name: {name}}}
  template:
    metadata:
      labels: {{app.kubernetes.io/name: {name}}}
    spec:
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 10001
        seccompProfile: {{type: RuntimeDefault}}
      containers:
        - name: server
          image: {image}
          imagePullPolicy: IfNotPresent
          env: {env}
          ports: [{{name: http, containerPort: 8000, protocol: TCP}}]
          resources:
            requests: {{cpu: "1", memory: 1Gi}}
            limits: {{cpu: "2", memory: 2Gi}}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            privileged: false
            capabilities: {{drop: [ALL]}}
          livenessProbe: {{httpGet: {{path: /health, port: http}}}}
          readinessProbe: {{httpGet: {{path: /health, port: http}}}}
"""
# Every pod of a namespace is selected by a NetworkPolicy, as modelgate renders (CKV2_K8S_6).
NETWORK_POLICY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: default-deny, namespace: models-{environment}}}
spec:
  podSelector: {{}}
  policyTypes: [Ingress, Egress]
"""
DIGEST = "registry.example.com/m/engine@sha256:" + "ab" * 32
TAGGED = "registry.example.com/m/engine:1.0"
SECRET_ENV = "[{name: API_KEY, valueFrom: {secretKeyRef: {name: api, key: key}}}]"
SKIP_ANNOTATION = '{"checkov.io/skip1": "CKV_K8S_43=set in the manifest"}'


def _workload(name: str, environment: str = "production", **values: str) -> str:
    fields = {"image": DIGEST, "env": "[]", "annotations": "{}", **values}
    return WORKLOAD.format(name=name, environment=environment, **fields)


@pytest.fixture(scope="module")
def checkov_python() -> Path:
    try:
        return checkov_scan.ensure_environment()
    except checkov_scan.Unavailable as reason:
        pytest.skip(f"Checkov is not available: {reason}")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rendered/-like tree: `clean` passes every check; `debt` (a tag, a Secret in the
    environment) fails CKV_K8S_15, CKV_K8S_35 and CKV_K8S_43 in two environments; `hidden`
    skips CKV_K8S_43 with an annotation; `broken` is not YAML."""
    root = tmp_path_factory.mktemp("checkov") / "rendered"
    files = {
        "production/clean/deployment.yaml": _workload("clean"),
        "production/debt/deployment.yaml": _workload("debt", image=TAGGED, env=SECRET_ENV),
        "staging/debt/deployment.yaml": _workload("debt", "staging", image=TAGGED, env=SECRET_ENV),
        "production/hidden/deployment.yaml": _workload(
            "hidden", image=TAGGED, annotations=SKIP_ANNOTATION
        ),
        # a first document Checkov would fail, then one that is not YAML: Checkov says nothing
        "production/broken/deployment.yaml": _workload("broken", image=TAGGED) + "---\n: : :\n",
    }
    for environment in ("production", "staging"):
        policy = NETWORK_POLICY.format(environment=environment)
        files[f"{environment}/networkpolicy.yaml"] = policy
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def tree_scan(checkov_python: Path, tree: Path) -> Scan:
    """The tree scanned by the real Checkov, from a caller whose environment asks to skip the
    very checks that fail and to scan another framework: the scan must not listen."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CKV_SKIP_CHECK", "CKV_K8S_15,CKV_K8S_35,CKV_K8S_43")
        patch.setenv("CKV_FRAMEWORK", "terraform")
        return checkov_scan.scan(checkov_python, tree, "rendered")


def _entries(tmp_path: Path, text: str) -> list[Entry]:
    path = tmp_path / "exceptions.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return checkov_scan.load_exceptions(path, "exceptions.yaml")


def _failed(scan: Scan) -> set[tuple[str, str]]:
    return {(failure.check, failure.resource) for failure in scan.failures}


# --- The repository's own manifests ----------------------------------------------------------


@pytest.mark.usefixtures("checkov_python")  # installed, or the test skips with the reason
def test_rendered_fails_no_checkov_check_beyond_the_listed_exceptions() -> None:
    verdict = checkov_scan.check()  # what `make scan` prints
    assert checkov_scan.workload_files() <= verdict.scan.scanned_files
    assert verdict.scan.passed > 100 and verdict.scan.version.startswith("3.3.")
    assert verdict.clean, f"{verdict.summary()}\n\n{verdict.report()}"


def test_every_exception_says_why() -> None:
    for entry in checkov_scan.load_exceptions():
        assert len(entry.reason.split()) >= 8, f"{entry.where}: {entry.check}: a reason, please"


# --- What the scan reports, on a tree made for it ---------------------------------------------


def test_checkov_finds_the_debts_whatever_the_callers_environment_says(tree_scan: Scan) -> None:
    assert _failed(tree_scan) == {
        (check, f"Deployment.models-{environment}.debt")
        for check in ("CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_43")
        for environment in ("production", "staging")
    } | {("CKV_K8S_15", "Deployment.models-production.hidden")}
    assert {f.file for f in tree_scan.failures} >= {"rendered/production/debt/deployment.yaml"}
    assert tree_scan.passed > 50


def test_an_unlisted_failure_is_reported_with_the_entry_to_add(
    tree_scan: Scan, tree: Path, tmp_path: Path
) -> None:
    verdict = checkov_scan.compare(tree_scan, [], checkov_scan.workload_files(tree))
    assert not verdict.clean
    report = verdict.report()
    assert (
        "CKV_K8S_43 Deployment.models-staging.debt (rendered/staging/debt/deployment.yaml:1)"
        in (report)
    )
    # The suggested entries, pasted with a reason filled in, except exactly these failures.
    snippet = report.split("(fill in each reason):\n", 1)[1].split("\n\n", 1)[0]
    pasted = "exceptions:\n" + snippet.replace('reason: ""', "reason: TO FIX one day")
    entries = _entries(tmp_path, pasted)
    assert not checkov_scan.compare(tree_scan, entries).unexcepted
    assert not checkov_scan.compare(tree_scan, entries).stale


def test_a_suggested_entry_without_its_reason_is_refused(tree_scan: Scan, tmp_path: Path) -> None:
    report = checkov_scan.compare(tree_scan, []).report()
    snippet = report.split("(fill in each reason):\n", 1)[1].split("\n\n", 1)[0]
    with pytest.raises(
        checkov_scan.ExceptionsFileError, match=r"exceptions.yaml:\d+:\d+: `reason:`"
    ):
        _entries(tmp_path, "exceptions:\n" + snippet)


def test_an_exception_narrowed_to_resources_covers_only_those(
    tree_scan: Scan, tmp_path: Path
) -> None:
    entries = _entries(
        tmp_path,
        """\
        exceptions:
          - check: CKV_K8S_43
            reason: the staging copy only
            resources: [Deployment.models-staging.*]
          - check: CKV_K8S_35
            reason: every copy of debt, by file
            files: ["rendered/*/debt/deployment.yaml"]
          - check: CKV_K8S_15
            reason: everywhere
        """,
    )
    verdict = checkov_scan.compare(tree_scan, entries)
    assert [(f.check, f.resource) for f in verdict.unexcepted] == [
        ("CKV_K8S_43", "Deployment.models-production.debt")
    ]
    assert not verdict.stale


def test_stale_exceptions_fail_with_the_lines_to_remove(tree_scan: Scan, tmp_path: Path) -> None:
    entries = _entries(
        tmp_path,
        """\
        exceptions:
          - check: CKV_K8S_15
            reason: covers every CKV_K8S_15 failure
          - check: CKV_K8S_43
            reason: debt in both environments, and a model long gone
            resources:
              - Deployment.*.debt
              - Deployment.*.retired-model
          - check: CKV_K8S_35
            reason: debt's Secret
          - check: CKV_K8S_20
            reason: nothing fails it
          - check: CKV_K8S_15
            reason: a second entry for what the first already covers
            files: [rendered/production/debt/deployment.yaml]
        """,
    )
    verdict = checkov_scan.compare(tree_scan, entries)
    assert not verdict.unexcepted
    assert verdict.stale == [
        "exceptions.yaml:8:9: the resources pattern 'Deployment.*.retired-model' of CKV_K8S_43",
        "exceptions.yaml:11:5: the entry for CKV_K8S_20",
        "exceptions.yaml:13:5: the entry for CKV_K8S_15 files: "
        "['rendered/production/debt/deployment.yaml']",
    ]
    assert "Stale exceptions" in verdict.report() and not verdict.clean


def test_a_check_skipped_inside_a_manifest_fails_the_scan(tree_scan: Scan) -> None:
    assert [(f.check, f.resource) for f in tree_scan.skipped] == [
        ("CKV_K8S_43", "Deployment.models-production.hidden")
    ]
    verdict = checkov_scan.compare(tree_scan, [])
    assert "checkov.io/skip" in verdict.report()


def test_a_file_checkov_skipped_unparsed_fails_the_scan(tree_scan: Scan, tree: Path) -> None:
    broken = "rendered/production/broken/deployment.yaml"
    workloads = checkov_scan.workload_files(tree)
    assert broken in workloads and broken not in tree_scan.scanned_files
    assert tree_scan.parsing_errors == []  # Checkov itself does not say
    verdict = checkov_scan.compare(tree_scan, [], workloads)
    assert verdict.unscanned == [broken]
    assert f"cannot parse without a word):\n  {broken}" in verdict.report()


def test_a_configuration_file_in_the_scanned_tree_is_refused(tmp_path: Path) -> None:
    (tmp_path / "production").mkdir()
    (tmp_path / "production" / "deployment.yaml").write_text(_workload("x"), encoding="utf-8")
    (tmp_path / ".checkov.yaml").write_text("skip-check: [CKV_K8S_43]\n", encoding="utf-8")
    with pytest.raises(checkov_scan.ScanError, match=r"\.checkov\.yaml would configure Checkov"):
        checkov_scan.scan(Path("checkov-is-not-even-run"), tmp_path, "rendered")


# --- Offline ---------------------------------------------------------------------------------


def test_the_network_guard_catches_checkov_going_online(checkov_python: Path) -> None:
    """Without CKV_SKIP_PACKAGE_UPDATE_CHECK Checkov asks PyPI for a newer version when it
    starts: the guard refuses and records it, which is what makes `no attempt` in every scan
    above mean something."""
    online = checkov_scan.run_checkov(checkov_python, ["--version"], settings={})
    assert online.returncode == 0
    assert online.stdout.strip().startswith("3.3.")
    assert any("pypi.org" in attempt for attempt in online.network_attempts)


# --- The exceptions file's shape ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("exceptions:\n  - check: CKV_K8S_43\n", r"exceptions.yaml:2:5: `reason:` must say why"),
        ("exceptions:\n  - check: CKV_K8S_43\n    reason: '  '\n", r":3:13: `reason:`"),
        ("exceptions:\n  - check: K8S_43\n    reason: why\n", r":2:12: `check:` must be"),
        (
            "exceptions:\n  - {check: CKV_K8S_43, reason: why, until: 2026}\n",
            r"unknown key 'until'",
        ),
        (
            "exceptions:\n  - {check: CKV_K8S_43, reason: why, resources: []}\n",
            r"`resources:` must",
        ),
        ("exceptions:\n  - {check: CKV_K8S_43, reason: why, files: x.yaml}\n", r"`files:` must"),
        ("exceptions: {check: CKV_K8S_43}\n", r"exceptions.yaml:1:1: `exceptions:` must be a list"),
        ("- check: CKV_K8S_43\n", r"exceptions.yaml:1:1: the file holds one key"),
        ("# nothing\n", r"exceptions.yaml:1:1: the file holds one key"),
        ("exceptions: []\nexceptions: []\n", r"exceptions.yaml:2:1: duplicate key 'exceptions'"),
    ],
)
def test_a_malformed_exceptions_file_is_refused_with_positions(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(checkov_scan.ExceptionsFileError, match=expected):
        _entries(tmp_path, text)


def test_an_entry_records_where_it_and_its_patterns_are(tmp_path: Path) -> None:
    (entry,) = _entries(
        tmp_path,
        "exceptions:\n  - check: CKV_K8S_43\n    reason: why\n    files:\n      - a/*\n",
    )
    assert entry.where == "exceptions.yaml:2:5"
    assert entry.pattern_places == {("files", "a/*"): "exceptions.yaml:5:9"}
    assert entry.covers(Failure("CKV_K8S_43", "Deployment.x.y", "a/b.yaml", 1, "t"))
    assert not entry.covers(Failure("CKV_K8S_43", "Deployment.x.y", "b/b.yaml", 1, "t"))


# --- Its environment --------------------------------------------------------------------------


def test_the_environment_is_cached_by_the_locks_hash(checkov_python: Path, tmp_path: Path) -> None:
    lock = checkov_scan.LOCK.read_bytes()
    assert checkov_python.parent.parent == checkov_scan.environment_dir()
    marker = (checkov_python.parent.parent / ".complete").read_text().strip()
    assert marker == hashlib.sha256(lock).hexdigest()
    changed = tmp_path / "checkov.txt"
    changed.write_bytes(lock + b"# one byte more\n")
    assert checkov_scan.environment_dir(changed) != checkov_scan.environment_dir()


def test_the_verdict_summary_counts_what_was_excepted() -> None:
    failure = Failure("CKV_K8S_43", "Deployment.a.b", "rendered/a/b.yaml", 2, "Image digest")
    scan = Scan("3.3.30", 7, [failure], [], [], {"rendered/a/b.yaml"})
    verdict = Verdict(scan, [failure], [], [], [])
    assert verdict.clean and verdict.report() == ""
    assert verdict.summary() == (
        "Checkov 3.3.30 (kubernetes) on rendered/: 7 passed, 1 failed (1 excepted in "
        "policies/checkov/exceptions.yaml), 0 skipped, 0 parsing errors"
    )
