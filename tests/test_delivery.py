"""The merge reaches the real cluster: `modelgate rollout` and `modelgate revert` against the
tests' kube-apiserver and a real Argo CD (application-controller, repo-server and
applicationset-controller built from its Go module, tests/argocd_env.py) syncing a bare git
repository, with the tests playing the Deployment controller (tests/kube_controllers.py).

The deployer runs with its own identity and exactly the rights rendered/ENV/_rbac/ grants: the
Role in the environment's namespace and the one that lets it sync the environment's
Applications by name. What serves is read back from the cluster: the Application's status, the
Deployment, and the record ConfigMap the rollout writes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import argocd_env, kube_env
from .conftest import PROJECT, Scaffold, git
from .gitops_env import GitOps, connect, ok, repository
from .kube_controllers import FAILED, READY, playing
from .test_deploy_kubernetes import BAD, GOOD, IMAGE, web_spec

pytestmark = [pytest.mark.kube, pytest.mark.argocd]


def serving(*digests: str) -> Callable[[dict[str, Any]], str | None]:
    def decide(resource: dict[str, Any]) -> str:
        image = resource["spec"]["template"]["spec"]["containers"][0]["image"]
        return READY if image.rpartition(":")[2] in digests else FAILED

    return decide


_MODELS: list[str] = []


@pytest.fixture
def gitops(
    kube: kube_env.KubeEnv,
    argocd: argocd_env.ArgoCD,
    scaffold: Scaffold,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: Any,
) -> Iterator[GitOps]:
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:30].strip("-")
    _MODELS.append(f"web{len(_MODELS)}")
    with repository(kube, argocd, scaffold.root, tmp_path, monkeypatch, slug, _MODELS[-1]) as made:
        yield made


def first_merge(gitops: GitOps) -> tuple[str, str]:
    base = gitops.head()
    good = gitops.commit("web 1.0.0", web_spec(GOOD))
    connect(gitops)
    return base, good


# --- a good merge, a failed one, two in a row ---------------------------------------------------


def test_a_good_merge_is_synced_at_its_commit_awaited_and_recorded_in_the_cluster(
    gitops: GitOps,
) -> None:
    base, good = first_merge(gitops)
    with playing(gitops.kube, gitops.namespace("staging"), serving(GOOD)):
        done = gitops.rollout(good, base)
    assert done.code == 0, done.err + done.out
    assert f"{gitops.model}: serving in staging at {good[:12]}" in done.out
    application = gitops.argocd.application(f"{gitops.model}-staging")
    assert application["status"]["operationState"]["syncResult"]["revision"] == good
    assert application["status"]["operationState"]["operation"]["initiatedBy"]["username"] == (
        "modelgate"
    )
    assert application["status"]["health"]["status"] == "Healthy"
    assert gitops.image("staging") == f"{IMAGE}{GOOD}"
    current = gitops.record("staging")["current"]
    assert current["result"] == "serving" and current["commit"] == good
    assert current["delivery"] == "argocd"
    assert current["model_digest"] == f"sha256:{GOOD}"
    assert current["manifests"].startswith("sha256:")
    assert current["endpoint"] == f"http://{gitops.model}.{gitops.namespace('staging')}.svc:80"
    assert current["smoke"] == "readiness only (no smoke requests)"


def test_a_failed_merge_is_reverted_by_a_commit_and_the_last_good_version_serves(
    gitops: GitOps,
) -> None:
    base, good = first_merge(gitops)
    with playing(gitops.kube, gitops.namespace("staging"), serving(GOOD)):
        ok(gitops.rollout(good, base))
        bad = gitops.commit("web 1.0.1: a broken image", web_spec(BAD))
        failed = gitops.rollout(bad, good)
        assert failed.code == 1, failed.out
        assert "MG501" in failed.err and "Degraded" in failed.err, failed.err
        assert "modelgate revert --env staging" in failed.err
        assert gitops.record("staging")["current"]["result"] == "failed"

        reverted = gitops.modelgate("revert", "--env", "staging", "--commit", bad)
    assert reverted.code == 0, reverted.err + reverted.out
    revert_commit = git(gitops.origin, "rev-parse", "main").strip()
    assert revert_commit not in (good, bad)
    assert git(gitops.origin, "rev-parse", "main~1").strip() == bad  # on top, never forced
    assert gitops.at_origin(f"models/{gitops.model}.yaml") == gitops.named(web_spec(GOOD))
    assert gitops.at_origin(f"rendered/staging/{gitops.model}/deployment.yaml").count(GOOD) == 1
    assert f"{gitops.model}: serving in staging at {revert_commit[:12]}" in reverted.out
    assert gitops.image("staging") == f"{IMAGE}{GOOD}"
    history = gitops.record("staging")["history"]
    assert [(e["result"], e["commit"]) for e in history] == [
        ("serving", revert_commit),
        ("failed", bad),
        ("serving", good),
    ]
    assert history[0]["reverts"] == bad
    # any later run reads what serves from the cluster
    status = gitops.modelgate("status", "--env", "staging")
    assert status.code == 0, status.err
    assert re.search(rf"(?m)^{gitops.model} +serving +{revert_commit[:12]} ", status.out), (
        status.out
    )
    shown = gitops.modelgate("history", gitops.model, "--env", "staging")
    results = [line.split()[1] for line in shown.out.splitlines()[1:]]
    assert results == ["serving", "failed", "serving"], shown.out


def test_two_merges_in_a_row_each_serve_at_their_own_commit(gitops: GitOps) -> None:
    base, first = first_merge(gitops)
    third = "3" * 64
    with playing(gitops.kube, gitops.namespace("staging"), serving(GOOD, third)):
        ok(gitops.rollout(first, base))
        second = gitops.commit("web on another image", web_spec(third))
        done = gitops.rollout(second, first)
    assert done.code == 0, done.err + done.out
    assert gitops.image("staging") == f"{IMAGE}{third}"
    assert [e["commit"] for e in gitops.record("staging")["history"]] == [second, first]


def test_a_commit_that_changes_no_model_rolls_out_nothing(gitops: GitOps) -> None:
    _, good = first_merge(gitops)
    (gitops.work / "README.md").write_text("notes\n", encoding="utf-8")
    other = gitops.commit("notes")
    done = gitops.rollout(other, good)
    assert done.code == 0 and "no model changed" in done.out


# --- production: synced only by its rollout -----------------------------------------------------


def test_production_never_syncs_by_itself_only_its_rollout_does(gitops: GitOps) -> None:
    base = gitops.head()
    spec = web_spec(GOOD).replace("environments: [staging]", "environments: [staging, production]")
    good = gitops.commit("web 1.0.0", spec)
    connect(gitops, "production")
    application = gitops.argocd.wait(
        f"{gitops.model}-production",
        lambda app: bool(app.get("status", {}).get("sync")),
        60,
        "compared",
    )
    assert "automated" not in application["spec"].get("syncPolicy", {})
    time.sleep(3)  # what an automated sync would have used
    assert "operationState" not in gitops.argocd.application(f"{gitops.model}-production").get(
        "status", {}
    )
    with playing(gitops.kube, gitops.namespace("production"), serving(GOOD)):
        done = gitops.rollout(good, base, "production")
    assert done.code == 0, done.err + done.out
    assert gitops.record("production")["current"]["commit"] == good


# --- push delivery --------------------------------------------------------------------------------


def test_an_environment_delivered_by_push_is_applied_and_reverted_the_same_way(
    gitops: GitOps,
) -> None:
    gitops.environments(staging="{delivery: push}", production="{delivery: argocd}")
    base, good = first_merge(gitops)
    assert not (gitops.work / "rendered" / "argocd" / "staging.yaml").exists()
    with playing(gitops.kube, gitops.namespace("staging"), serving(GOOD)):
        done = gitops.rollout(good, base)
        assert done.code == 0, done.err + done.out
        assert gitops.record("staging")["current"]["delivery"] == "push"
        bad = gitops.commit("web 1.0.1", web_spec(BAD))
        failed = gitops.rollout(bad, good)
        assert failed.code == 1, failed.err + failed.out
        reverted = gitops.modelgate("revert", "--env", "staging", "--commit", bad)
    assert reverted.code == 0, reverted.err + reverted.out
    assert gitops.image("staging") == f"{IMAGE}{GOOD}"


# --- faults ---------------------------------------------------------------------------------------


def test_an_application_argo_cd_does_not_have_is_a_clear_error(gitops: GitOps) -> None:
    base = gitops.head()
    good = gitops.commit("web 1.0.0", web_spec(GOOD))
    rbac = sorted((gitops.work / "rendered" / "staging" / "_rbac").glob("*.yaml"))
    gitops.admin_apply(*rbac)  # but not the ApplicationSet
    started = time.monotonic()
    done = gitops.rollout(good, base)
    assert done.code == 1
    assert f"Argo CD has no Application {gitops.model}-staging" in done.err
    assert "ApplicationSet (rendered/argocd/) applied" in done.err
    assert time.monotonic() - started < 180  # the Application is awaited 120 s
    assert gitops.record("staging")["current"]["result"] == "failed"


def test_a_team_without_its_project_is_a_clear_error(gitops: GitOps) -> None:
    """The ApplicationSet makes no Application of a project that does not exist: a team's
    first model waits for a cluster admin to apply the team's project, and the rollout says
    so in the ApplicationSet's own words."""
    base = gitops.head()
    good = gitops.commit("web 1.0.0", web_spec(GOOD))
    rbac = sorted((gitops.work / "rendered" / "staging" / "_rbac").glob("*.yaml"))
    project = gitops.work / "rendered" / "staging" / "_rbac" / "argocd-appproject-ml.yaml"
    assert project in rbac
    # one Argo CD serves every test: an earlier test's connect applied the project
    gitops.kube.kubectl(
        "delete", "appproject", "modelgate-ml-staging", "-n", gitops.argocd.namespace,
        "--ignore-not-found",
    )  # fmt: skip
    gitops.admin_apply(*(path for path in rbac if path != project))
    gitops.admin_apply(gitops.work / "rendered" / "argocd" / "staging.yaml")
    done = gitops.rollout(good, base)
    assert done.code == 1
    assert (
        "ApplicationSet modelgate-staging says: application references project "
        "modelgate-ml-staging which does not exist"
    ) in done.err
    assert "rendered/ENV/_rbac/argocd-appproject-TEAM.yaml" in done.err
    assert gitops.argocd.application(f"{gitops.model}-staging") == {}


def test_a_role_applied_before_it_granted_watch_still_rolls_out(
    gitops: GitOps, tmp_path: Path
) -> None:
    """The rollout watches the Application; where the cluster admin has not applied the newer
    Role yet, the watch is refused and each look at the Application is a `get`."""
    base, good = first_merge(gitops)
    role = gitops.work / "rendered" / "staging" / "_rbac" / "argocd-role.yaml"
    older = role.read_text(encoding="utf-8").replace('      - "watch"\n', "")
    assert older != role.read_text(encoding="utf-8")
    (tmp_path / "older-role.yaml").write_text(older, encoding="utf-8")
    gitops.admin_apply(tmp_path / "older-role.yaml")
    applied = gitops.kube.kubectl(
        "get", "role", "modelgate-deployer-staging", "-n", gitops.argocd.namespace, "-o", "json"
    )
    assert all("watch" not in rule["verbs"] for rule in json.loads(applied.stdout)["rules"])
    with playing(gitops.kube, gitops.namespace("staging"), serving(GOOD)):
        done = gitops.rollout(good, base)
    ok(done)
    assert f"{gitops.model}: serving in staging at {good[:12]}" in done.out


def test_a_revert_that_does_not_apply_cleanly_changes_nothing(gitops: GitOps) -> None:
    base, good = first_merge(gitops)
    with playing(gitops.kube, gitops.namespace("staging"), serving(GOOD)):
        assert gitops.rollout(good, base)
        bad = gitops.commit("web 1.0.1", web_spec(BAD))
        failed = gitops.rollout(bad, good)
        assert failed.code == 1, failed.err + failed.out
    later = gitops.commit("web 1.0.2", web_spec(BAD).replace('"1.0.0"', '"1.0.2"'))
    done = gitops.modelgate("revert", "--env", "staging", "--commit", bad)
    assert done.code == 1
    assert "MG520" in done.err and later[:7] in done.err and "nothing was changed" in done.err
    assert git(gitops.origin, "rev-parse", "main").strip() == later


def test_a_revert_the_branch_refuses_goes_to_a_branch_of_its_own(gitops: GitOps) -> None:
    base, good = first_merge(gitops)
    with playing(gitops.kube, gitops.namespace("staging"), serving(GOOD)):
        assert gitops.rollout(good, base)
        bad = gitops.commit("web 1.0.1", web_spec(BAD))
        assert gitops.rollout(bad, good).code == 1
    hook = gitops.origin / "hooks" / "pre-receive"  # main is protected: no direct pushes
    hook.write_text(
        '#!/bin/sh\nwhile read old new ref; do [ "$ref" = refs/heads/main ] && exit 1; done\n'
        "exit 0\n",
        encoding="utf-8",
    )
    hook.chmod(0o755)
    done = gitops.modelgate("revert", "--env", "staging", "--commit", bad)
    assert done.code == 1
    assert "MG521" in done.err and "open a pull request" in done.err
    branches = git(gitops.origin, "branch", "--list", f"modelgate/revert-{gitops.model}-staging-*")
    assert branches.strip()
    assert git(gitops.origin, "rev-parse", "main").strip() == bad


def test_an_interrupt_while_waiting_leaves_the_cluster_as_argo_cd_has_it(gitops: GitOps) -> None:
    base, good = first_merge(gitops)
    # no controller reports: the Deployment never becomes ready, the rollout waits
    process = subprocess.Popen(
        [sys.executable, "-m", "validator.cli", "rollout", "--env", "staging", "--commit", good,
         "--changed-since", base],
        cwd=gitops.work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    gitops.argocd.wait(
        f"{gitops.model}-staging",
        lambda app: app.get("status", {}).get("operationState", {}).get("phase") == "Succeeded",
        120,
        "synced",
    )
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert "rollout interrupted while waiting" in err
    assert f"Argo CD goes on with Application {gitops.model}-staging" in err
    done = gitops.kube.kubectl(
        "get", "configmap", f"modelgate-record-{gitops.model}", "-n", gitops.namespace("staging")
    )
    assert "NotFound" in done.stderr  # nothing recorded: the rollout did not finish


# --- the merge workflow's own steps ---------------------------------------------------------------

WORKFLOW = PROJECT / ".github" / "workflows" / "deploy.yml"


def workflow_steps(job: str) -> list[dict[str, Any]]:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return [step for step in workflow["jobs"][job]["steps"] if "run" in step]


def run_job(gitops: GitOps, job: str, variables: dict[str, str], runner: Path) -> list[int]:
    """deploy.yml's `run:` steps of a job, in order, as the runner would: bash with the
    workflow's variables, the step's own env, and GITHUB_ENV applied between steps. Its
    `uses:` steps are the checkout (the test's clone at the commit) and setup-python (this
    interpreter); `make venv` is this project's venv, linked into the clone."""
    github_env = runner / "github_env"
    github_env.write_text("", encoding="utf-8")
    codes = []
    for step in workflow_steps(job):
        if step["run"].strip() == "make venv":
            continue
        env = {**os.environ, **variables, "GITHUB_ENV": str(github_env)}
        env.update(line.split("=", 1) for line in github_env.read_text().splitlines() if line)
        for key, value in (step.get("env") or {}).items():
            env[key] = SECRETS.get(value, value)
        done = subprocess.run(
            ["bash", "-e", "-c", step["run"]], cwd=gitops.work, env=env,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        codes.append(done.returncode)
        if done.returncode != 0:
            break
    return codes


SECRETS: dict[str, str] = {}


def test_the_merge_workflow_steps_roll_out_revert_and_publish_what_serves(
    gitops: GitOps, tmp_path: Path
) -> None:
    venv = gitops.work / ".venv"
    venv.symlink_to(PROJECT / ".venv")
    (gitops.work / ".gitignore").write_text(".venv\n", encoding="utf-8")
    base, good = first_merge(gitops)
    runner = tmp_path / "runner"
    runner.mkdir()
    SECRETS["${{ secrets.KUBECONFIG }}"] = gitops.deployer_kubeconfig.read_text()
    SECRETS["${{ github.token }}"] = ""
    variables = {"LAST_GOOD": base, "COMMIT": good, "RUNNER_TEMP": str(runner)}
    with playing(gitops.kube, gitops.namespace("staging"), serving(GOOD)):
        assert run_job(gitops, "staging", variables, runner) == [0, 0, 0, 0, 0]
        bad = gitops.commit("web 1.0.1", web_spec(BAD))
        git(gitops.work, "checkout", "-q", bad)
        variables.update(LAST_GOOD=good, COMMIT=bad)
        assert run_job(gitops, "staging", variables, runner)[-1] == 1
        # the revert job: its last step fails the run on purpose after the revert
        codes = run_job(gitops, "staging-revert", variables, runner)
    assert codes == [0, 1]
    assert gitops.at_origin(f"models/{gitops.model}.yaml") == gitops.named(web_spec(GOOD))
    assert gitops.record("staging")["current"]["result"] == "serving"
    # the catalog job reads what serves from the cluster
    SECRETS["${{ secrets.STAGING_KUBECONFIG }}"] = gitops.deployer_kubeconfig.read_text()
    SECRETS["${{ secrets.PRODUCTION_KUBECONFIG }}"] = gitops.deployer_kubeconfig.read_text()
    assert run_job(gitops, "catalog", variables, runner) == [0, 0]
    page = (gitops.work / "site" / "catalog.md").read_text(encoding="utf-8")
    row = next(line for line in page.splitlines() if line.startswith(f"| {gitops.model} |"))
    revert_commit = git(gitops.origin, "rev-parse", "main").strip()
    assert f"staging: serving 1.0.0 at {revert_commit[:12]}" in row
    assert "smoke readiness only" in row


def test_a_workload_that_never_becomes_ready_times_out_with_argo_cds_account(
    gitops: GitOps,
) -> None:
    base = gitops.head()
    good = gitops.commit("web 1.0.0", web_spec(GOOD, smoke=4))
    connect(gitops)
    done = gitops.rollout(good, base)  # no controller reports on the Deployment
    assert done.code == 1
    assert "not Synced and Healthy within 4 s" in done.err
    assert "health Progressing" in done.err, done.err
    assert gitops.record("staging")["current"]["result"] == "failed"


def test_a_sync_argo_cd_cannot_complete_is_reported_in_its_words(gitops: GitOps) -> None:
    gitops.environments(staging="{delivery: argocd}", production="{delivery: argocd}")
    base = gitops.head()
    good = gitops.commit("web 1.0.0", web_spec(GOOD))
    connect(gitops)
    # a manifest edited by hand past `render --check`: a port the API server refuses
    manifest = gitops.work / "rendered" / "staging" / gitops.model / "service.yaml"
    text = manifest.read_text(encoding="utf-8")
    assert "      port: 80\n" in text
    manifest.write_text(text.replace("      port: 80\n", "      port: 0\n", 1))  # not a port
    git(gitops.work, "commit", "-q", "-am", "a broken Service")
    git(gitops.work, "push", "-q", "origin", "HEAD:main")
    broken = gitops.head()
    with playing(gitops.kube, gitops.namespace("staging"), serving(GOOD)):
        done = gitops.rollout(broken, base)
    assert done.code == 1, done.out
    assert "Argo CD's sync failed" in done.err or "Argo CD's sync error" in done.err, done.err
    assert good != broken


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"operationState": {"phase": "Failed", "message": "one or more objects failed",
                             "syncResult": {"revision": "a" * 40}}},
         "Argo CD's sync failed: one or more objects failed"),
        ({"operationState": {"phase": "Succeeded", "syncResult": {"revision": "b" * 40}}},
         f"Argo CD synced {'b' * 12}, not {'a' * 12}: a later commit changed this model"),
        ({"operationState": {"phase": "Succeeded", "syncResult": {"revision": "a" * 40}},
          "health": {"status": "Degraded", "message": "Deployment web exceeded its progress "
                                                      "deadline"}},
         "the Application is Degraded: Deployment web exceeded its progress deadline"),
        ({"operationState": {"phase": "Running", "syncResult": {"revision": "a" * 40}}}, ""),
    ],
)  # fmt: skip
def test_what_argo_cd_reports_ends_the_wait_with_its_reason(
    status: dict[str, Any], expected: str
) -> None:
    from validator.deploy import argocd

    state = argocd.State.of({"status": status})
    problem = argocd._final_problem("web-staging", state, "a" * 40, lambda other: False)
    assert problem.startswith(expected) if expected else problem == ""


def test_a_later_commit_that_left_the_model_alone_is_the_same_rollout() -> None:
    from validator.deploy import argocd

    state = argocd.State.of(
        {"status": {"operationState": {"phase": "Succeeded", "syncResult": {"revision": "b" * 40}},
                    "sync": {"status": "Synced", "revision": "b" * 40},
                    "health": {"status": "Healthy"}}}
    )  # fmt: skip
    assert argocd._final_problem("web-staging", state, "a" * 40, lambda other: True) == ""
    assert argocd._done(state, "a" * 40, lambda other: True)
    assert not argocd._done(state, "a" * 40, lambda other: False)
