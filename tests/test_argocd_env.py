"""The Argo CD of tests/argocd_env.py syncs for real: an Application synced by its `operation`
field lands each commit's objects in the API server and reports Synced at that commit, an
ApplicationSet's git directories generator makes one Application per folder, and its git files
generator (as modelgate renders it) one per folder that holds the file, in the project of the
team the file names, without applying the file."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

import pytest
import yaml

from . import argocd_env, kube_env
from .conftest import git

pytestmark = [pytest.mark.kube, pytest.mark.argocd]

IN_CLUSTER = "https://kubernetes.default.svc"


def config_map(name: str, greeting: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name},
            "data": {"greeting": greeting},
        }
    )


def bare_repository(tmp_path: Path, files: dict[str, str]) -> tuple[Path, Path]:
    """A bare repository (what Argo CD reads) and a clone that commits `files` to its main."""
    bare, work = tmp_path / "origin.git", tmp_path / "work"
    bare.mkdir()
    work.mkdir()
    git(bare, "init", "-q", "--bare", "-b", "main")
    git(work, "init", "-q", "-b", "main")
    git(work, "remote", "add", "origin", str(bare))
    commit(work, files, "first")
    return bare, work


def commit(work: Path, files: dict[str, str], message: str) -> str:
    """Write, commit and push `files`; the commit's sha."""
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text, encoding="utf-8")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", message)
    git(work, "push", "-q", "origin", "main")
    return git(work, "rev-parse", "HEAD").strip()


def application(argocd: argocd_env.ArgoCD, name: str, url: str, path: str) -> dict:
    """An Application of `path` at main, into the namespace of its name; automated sync off."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": argocd.namespace},
        "spec": {
            "project": "default",
            "source": {"repoURL": url, "targetRevision": "main", "path": path},
            "destination": {"server": IN_CLUSTER, "namespace": name},
            "syncPolicy": {"syncOptions": ["CreateNamespace=true"]},
        },
    }


def greeting(kube: kube_env.KubeEnv, namespace: str, name: str) -> str | None:
    status, answer = kube.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    return answer["data"]["greeting"] if status == 200 else None


def test_an_application_syncs_each_commit_by_its_operation(
    argocd: argocd_env.ArgoCD, tmp_path: Path
) -> None:
    bare, work = bare_repository(tmp_path, {"app/greeting.yaml": config_map("greeting", "v1")})
    first = git(work, "rev-parse", "HEAD").strip()
    status, answer = argocd.kube.apply(application(argocd, "demo", argocd.repo_url(bare), "app"))
    assert status in (200, 201), answer

    started = time.monotonic()
    argocd.sync("demo", first)
    synced = argocd.wait_synced("demo", first)
    first_seconds = time.monotonic() - started
    assert synced["status"]["operationState"]["operation"]["initiatedBy"]["username"] == (
        "modelgate"
    )
    assert greeting(argocd.kube, "demo", "greeting") == "v1"

    second = commit(work, {"app/greeting.yaml": config_map("greeting", "v2")}, "second")
    started = time.monotonic()
    argocd.sync("demo", second)
    synced = argocd.wait_synced("demo", second)
    second_seconds = time.monotonic() - started
    assert greeting(argocd.kube, "demo", "greeting") == "v2"
    assert synced["status"]["sync"]["revision"] == second != first
    print(f"first sync {first_seconds:.2f} s, second {second_seconds:.2f} s")


def test_an_application_set_makes_an_application_per_folder(
    argocd: argocd_env.ArgoCD, tmp_path: Path
) -> None:
    folders = ("alpha", "beta")
    bare, _ = bare_repository(
        tmp_path, {f"apps/{name}/greeting.yaml": config_map("greeting", name) for name in folders}
    )
    url = argocd.repo_url(bare)
    template = application(argocd, "folders-{{.path.basename}}", url, "{{.path.path}}")
    application_set = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": "folders", "namespace": argocd.namespace},
        "spec": {
            "goTemplate": True,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [
                {"git": {"repoURL": url, "revision": "main", "directories": [{"path": "apps/*"}]}}
            ],
            "template": {"metadata": template["metadata"], "spec": template["spec"]},
        },
    }
    status, answer = argocd.kube.apply(application_set)
    assert status in (200, 201), answer

    for name in folders:
        made = argocd.wait(f"folders-{name}", lambda found: True, what="made")
        assert made["spec"]["source"] == {
            "repoURL": url,
            "targetRevision": "main",
            "path": f"apps/{name}",
        }
        assert [owner["name"] for owner in made["metadata"]["ownerReferences"]] == ["folders"]
    status, listed = argocd.kube.request("GET", argocd_env.APPLICATIONS)
    owned = [
        item["metadata"]["name"]
        for item in listed["items"]
        if any(o["name"] == "folders" for o in item["metadata"].get("ownerReferences", []))
    ]
    assert sorted(owned) == [f"folders-{name}" for name in folders]


def team_project(argocd: argocd_env.ArgoCD, team: str, url: str) -> dict:
    """A project as modelgate renders one per team: its repository, its namespace, ConfigMaps."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": f"files-{team}", "namespace": argocd.namespace},
        "spec": {
            "sourceRepos": [url],
            "destinations": [{"server": IN_CLUSTER, "namespace": f"files-{team}"}],
            "clusterResourceWhitelist": [
                {"group": "", "kind": "Namespace", "name": f"files-{team}"}
            ],
            "namespaceResourceWhitelist": [{"group": "", "kind": "ConfigMap"}],
        },
    }


def test_an_application_set_makes_an_application_per_file_in_its_teams_project(
    argocd: argocd_env.ArgoCD, tmp_path: Path
) -> None:
    """The generator modelgate renders (rendered/argocd/ENV.yaml): a file in each folder names
    the team, the Application lands in that team's project and its source leaves the file out
    (a sync that applied it would fail: it is no manifest). A folder whose team has no project
    gets no Application; one under the excluded path gets none either."""
    teams = {"alpha": "red", "beta": "blue", "gamma": "green", "_rbac": "red"}
    files = {f"apps/{name}/greeting.yaml": config_map("greeting", name) for name in teams}
    files |= {f"apps/{name}/application.json": json.dumps({"team": t}) for name, t in teams.items()}
    bare, work = bare_repository(tmp_path, files)
    head = git(work, "rev-parse", "HEAD").strip()
    url = argocd.repo_url(bare)
    for team in ("red", "blue"):  # green has none
        status, answer = argocd.kube.apply(team_project(argocd, team, url))
        assert status in (200, 201), answer
    template = application(argocd, "files-{{.path.basename}}", url, "{{.path.path}}")
    template["spec"]["project"] = "files-{{.team}}"
    template["spec"]["source"]["directory"] = {"exclude": "application.json"}
    template["spec"]["destination"]["namespace"] = "files-{{.team}}"
    application_set = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": "files", "namespace": argocd.namespace},
        "spec": {
            "goTemplate": True,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [
                {
                    "git": {
                        "repoURL": url,
                        "revision": "main",
                        "files": [
                            {"path": "apps/*/application.json"},
                            {"path": "apps/_rbac/application.json", "exclude": True},
                        ],
                    }
                }
            ],
            "template": {"metadata": template["metadata"], "spec": template["spec"]},
        },
    }
    status, answer = argocd.kube.apply(application_set)
    assert status in (200, 201), answer

    for name, team in (("alpha", "red"), ("beta", "blue")):
        made = argocd.wait(f"files-{name}", lambda found: True, what="made")
        assert made["spec"]["project"] == f"files-{team}"
        assert made["spec"]["source"]["path"] == f"apps/{name}"
        argocd.sync(f"files-{name}", head)
        synced = argocd.wait_synced(f"files-{name}", head)
        applied = [r["kind"] for r in synced["status"]["operationState"]["syncResult"]["resources"]]
        assert applied == ["Namespace", "ConfigMap"]  # the Namespace: CreateNamespace=true
        assert greeting(argocd.kube, f"files-{team}", "greeting") == name
    path = f"/apis/argoproj.io/v1alpha1/namespaces/{argocd.namespace}/applicationsets/files"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the controller says why gamma has no Application
        status, found = argocd.kube.request("GET", path)
        said = " ".join(c.get("message", "") for c in found.get("status", {}).get("conditions", []))
        if "files-green which does not exist" in said:
            break
        time.sleep(0.5)
    assert "application references project files-green which does not exist" in said
    status, listed = argocd.kube.request("GET", argocd_env.APPLICATIONS)
    owned = [
        item["metadata"]["name"]
        for item in listed["items"]
        if any(o["name"] == "files" for o in item["metadata"].get("ownerReferences", []))
    ]
    assert sorted(owned) == ["files-alpha", "files-beta"]


def listening(pid: int) -> set[str]:
    """The addresses a process accepts connections on (IPv4 and IPv6), as HOST:PORT."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                packed = bytes.fromhex(address)
                # /proc prints each 32-bit word of the address in host (little-endian) order
                words = b"".join(packed[i : i + 4][::-1] for i in range(0, len(packed), 4))
                found.add(f"{socket.inet_ntop(family, words)}:{int(port, 16)}")
    return found


def test_everything_listens_on_loopback_but_the_controllers_metrics(
    argocd: argocd_env.ArgoCD,
) -> None:
    """redis, the repo-server and the applicationset-controller listen on 127.0.0.1 only; the
    application-controller's metrics server binds every address, with no flag to change it
    (the one exception), and its port is the one the harness chose."""
    processes = dict(zip(("redis-server", *argocd_env.PROGRAMS), argocd.processes, strict=True))
    for name, process in processes.items():
        addresses = listening(process.pid)
        assert addresses, name
        if name == "argocd-application-controller":
            wildcard = {a for a in addresses if not a.startswith("127.0.0.1:")}
            assert {a.rsplit(":", 1)[0] for a in wildcard} <= {"0.0.0.0", "::"}, addresses
            assert len({a.rsplit(":", 1)[1] for a in wildcard}) == 1, addresses
        else:
            assert all(a.startswith("127.0.0.1:") for a in addresses), (name, addresses)
