"""Model files judged by what they hold and by what loads them: every route of the standard
library that runs code, in every container, under any file name, is refused by the
allow-list (MG-SEC-160); the real libraries' own files pass it; the scan is never silenced
by a waiver; a remote pickle reaches production only as the bytes modelgate fetched and
scanned; the pod's verify step fails closed; the catalog writes only under --out."""

from __future__ import annotations

import collections
import hashlib
import http.server
import io
import json
import os
import pickle
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy
import pytest

from validator.check import pickles, policy
from validator.deploy import environments
from validator.render import verify

from . import pickle_payloads as payloads
from .conftest import IRIS_ARTIFACT, IRIS_SHA256, PROJECT, Scaffold, located, run_cli

BUILTIN, _ = policy.load_policy(PROJECT)
ALLOWED = set(BUILTIN.parameters["pickleGlobals"])
IRIS = (PROJECT / IRIS_ARTIFACT).read_bytes()
ARTIFACT_LINE = f"artifact: {IRIS_ARTIFACT}"


def containers(opcodes: bytes) -> dict[str, tuple[str, bytes]]:
    """label -> (file name, bytes): the payload as a bare pickle, inside the iris model (as
    joblib wrote it), in a torch archive and in a gzip'd joblib file; none named .pkl."""
    return {
        "bare": ("model.json", payloads.pickle_of(opcodes)),
        "in-iris-joblib": ("model.sav", payloads.inserted(IRIS, opcodes)),
        "torch-archive": ("model.bin", payloads.torch_archive(payloads.pickle_of(opcodes))),
        "gzip-joblib": ("weights", payloads.gzipped(payloads.inserted(IRIS, opcodes))),
        "zip-in-gzip": ("model", payloads.gzipped(payloads.torch_archive(opcodes + b"."))),
    }


ROUTES = sorted(payloads.routes(Path("/nonexistent")))
CONTAINERS = sorted(containers(b"N0"))


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("route", ROUTES)
def test_every_route_that_runs_code_is_off_the_allow_list(
    route: str, container: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    opcodes, name = payloads.routes(marker)[route]
    file_name, data = containers(opcodes)[container]
    path = tmp_path / file_name
    path.write_bytes(data)
    verdict = pickles.scan_file(path)
    assert verdict.pickle and name in verdict.imports, verdict
    assert name not in ALLOWED
    assert not marker.exists()


def test_picklescan_is_a_second_opinion_not_the_verdict(tmp_path: Path) -> None:
    """posixpath.system is only 'suspicious' to picklescan: the allow-list refuses it; os.system
    is 'dangerous' to it, which refuses the file whatever the allow-list says (MG241)."""
    quiet, loud = tmp_path / "quiet.joblib", tmp_path / "loud.joblib"
    quiet.write_bytes(payloads.inserted(IRIS, payloads.routes(tmp_path)["posixpath.system"][0]))
    loud.write_bytes(payloads.inserted(IRIS, payloads.routes(tmp_path)["os.system"][0]))
    assert pickles.scan_file(quiet).dangerous == ()
    assert "posixpath.system" in pickles.scan_file(quiet).imports
    assert pickles.scan_file(loud).dangerous == ("os.system",)


def _estimators() -> Iterator[tuple[str, object]]:
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_iris
    from sklearn.decomposition import PCA
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder, StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeRegressor

    x, y = load_iris(return_X_y=True)
    yield "logistic", LogisticRegression(max_iter=300).fit(x, y)
    yield "forest", RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y)
    yield "hist-boosting", HistGradientBoostingClassifier(max_iter=3).fit(x, y)
    yield "boosting", GradientBoostingClassifier(n_estimators=3).fit(x, y)
    yield "knn", KNeighborsClassifier().fit(x, y)
    yield "ball-tree", KNeighborsClassifier(algorithm="ball_tree").fit(x, y)
    yield "pipeline", make_pipeline(StandardScaler(), SVC()).fit(x, y)
    yield "kmeans", KMeans(n_clusters=3, n_init=1, random_state=0).fit(x)
    yield "one-hot", OneHotEncoder().fit(x[:, :1].round())
    yield "bins", KBinsDiscretizer(n_bins=3).fit(x)
    yield "tree", DecisionTreeRegressor(max_depth=3).fit(x, y)
    yield "pca", PCA(2).fit(x)
    yield (
        "numpy",
        {
            "weights": numpy.arange(6.0).reshape(2, 3),
            "rng": numpy.random.default_rng(0),
            "state": numpy.random.RandomState(0),
            "order": collections.OrderedDict(a=numpy.float32(1)),
        },
    )


def _written(model: object, folder: Path) -> Iterator[Path]:
    """The model as joblib and pickle write it: plain, compressed, every protocol from 2."""
    for compress in (0, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("xz", 3)):
        path = folder / f"joblib-{compress[0] if compress else 'plain'}.joblib"
        joblib.dump(model, path, compress=compress)
        yield path
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        path = folder / f"pickle-{protocol}.pkl"
        path.write_bytes(pickle.dumps(model, protocol=protocol))
        yield path


def _clean(path: Path) -> list[str]:
    """What is wrong with the verdict on a library's own file ([] when it passes)."""
    verdict = pickles.scan_file(path)
    problems = [f"{path.name}: {verdict.unreadable}"] if verdict.unreadable else []
    problems += [f"{path.name}: dangerous {name}" for name in verdict.dangerous]
    problems += [f"{path.name}: {name}" for name in verdict.imports if name not in ALLOWED]
    return problems if verdict.pickle else [f"{path.name}: not found to be a pickle"]


def test_scikit_learn_and_numpy_files_pass_the_allow_list(tmp_path: Path) -> None:
    problems = []
    for name, model in _estimators():
        folder = tmp_path / name
        folder.mkdir()
        problems += [f"{name} {problem}" for p in _written(model, folder) for problem in _clean(p)]
    assert problems == []


# Written by the engine environment that loads these models (locks/engine-mlserver-boosting.txt),
# with the versions MLServer's XGBoost and LightGBM runtimes run
BOOSTED = """
import pickle, sys
from pathlib import Path

import joblib, lightgbm, xgboost
from sklearn.datasets import load_iris

x, y = load_iris(return_X_y=True)
models = {
    "xgboost": xgboost.XGBClassifier(n_estimators=2).fit(x, y),
    "lightgbm": lightgbm.LGBMClassifier(n_estimators=2, verbose=-1).fit(x, y),
}
for name, model in models.items():
    folder = Path(sys.argv[1]) / name
    folder.mkdir()
    for compress in (0, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("xz", 3)):
        joblib.dump(model, folder / f"joblib-{compress[0] if compress else 'plain'}.joblib",
                    compress=compress)
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        (folder / f"pickle-{protocol}.pkl").write_bytes(pickle.dumps(model, protocol=protocol))
"""


def test_xgboost_and_lightgbm_files_pass_the_allow_list(tmp_path: Path) -> None:
    python = environments.ensure("mlserver-boosting") / "bin" / "python"
    subprocess.run([python, "-c", BOOSTED, tmp_path], check=True, capture_output=True)
    written = sorted(tmp_path.glob("*/*"))
    assert {path.parent.name for path in written} == {"xgboost", "lightgbm"}
    assert len(written) == 2 * (5 + pickle.HIGHEST_PROTOCOL - 1)
    assert [problem for path in written for problem in _clean(path)] == []


def test_torch_files_pass_the_allow_list(tmp_path: Path) -> None:
    torch = pytest.importorskip(
        "torch",
        reason="torch is in no lock: PyPI's Linux wheel brings about 2.5 GB of CUDA libraries "
        "(install torch in the venv to run this test)",
    )
    state = collections.OrderedDict(weight=torch.ones(2, 3), bias=torch.zeros(2))
    for legacy in (False, True):
        path = tmp_path / f"state-{legacy}.pt"
        torch.save(state, path, _use_new_zipfile_serialization=not legacy)
        assert _clean(path) == []


def test_a_torch_archive_as_torch_save_writes_it_passes(tmp_path: Path) -> None:
    """Without torch installed: a state dict as torch.save pickles it (data.pkl in a zip, a
    tensor rebuilt from a storage that a persistent id names)."""
    data = (
        b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x06\x00\x00\x00weightq\x02"
        b"ctorch._utils\n_rebuild_tensor_v2\nq\x03((X\x07\x00\x00\x00storageq\x04"
        b"ctorch\nFloatStorage\nq\x05X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07K\x06tq\x08"
        b"QK\x00K\x02K\x03\x86q\tK\x03K\x01\x86q\n\x89h\x00)Rq\x0btq\x0cRq\rs."
    )
    path = tmp_path / "model.pt"
    path.write_bytes(payloads.torch_archive(data))
    verdict = pickles.scan_file(path)
    assert verdict.imports == (
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2",
        "torch.FloatStorage",
    )
    assert _clean(path) == []


def test_the_example_artifacts_are_judged_by_their_bytes() -> None:
    """The iris joblib file is a pickle of allowed names only; GGUF, ONNX, xgboost's JSON,
    LightGBM's text model and the scripts beside them hold no pickle."""
    files = sorted(p for p in (PROJECT / "models" / "artifacts").rglob("*") if p.is_file())
    verdicts = {str(p.relative_to(PROJECT)): pickles.scan_file(p) for p in files}
    assert [name for name, verdict in verdicts.items() if verdict.pickle] == [str(IRIS_ARTIFACT)]
    assert _clean(PROJECT / IRIS_ARTIFACT) == []
    assert all(not v.imports and not v.unreadable for v in verdicts.values() if not v.pickle)


def test_a_truncated_pickle_is_judged_by_what_runs_before_it_fails(tmp_path: Path) -> None:
    """A loader runs the opcodes it reads before bytes it cannot: they count."""
    path = tmp_path / "model.onnx"
    path.write_bytes(payloads.routes(tmp_path)["posixpath.system"][0] + b"\x00garbage")
    assert "posixpath.system" in pickles.scan_file(path).imports


# --- through the command line, in a repository ---------------------------------------------


def _evil_iris(scaffold: Scaffold, route: str, where: str, marker: Path, **extra: str) -> Path:
    data = payloads.inserted(IRIS, payloads.routes(marker)[route][0])
    (scaffold.root / where).parent.mkdir(parents=True, exist_ok=True)
    (scaffold.root / where).write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    return scaffold.iris(
        "evil", **{ARTIFACT_LINE: f"artifact: {where}", IRIS_SHA256: digest, **extra}
    )


def _diagnostics(scaffold: Scaffold, *args: str) -> tuple[int, list[dict]]:
    result = run_cli("--root", str(scaffold.root), "validate", "--format", "json", *args)
    assert result.code in (0, 1), result.err
    return result.code, json.loads(result.out)["diagnostics"]


def test_the_iris_attack_is_refused_at_the_artifact_and_never_deployed(
    scaffold: Scaffold, tmp_path: Path
) -> None:
    scaffold.with_policies()
    marker = tmp_path / "ran"
    spec = _evil_iris(scaffold, "posixpath.system", "models/artifacts/evil/model.joblib", marker)
    code, found = _diagnostics(scaffold, "--env", "production")
    line, col = located(spec.read_text(), "artifact: models/artifacts/evil", "models/")
    assert code == 1
    assert [(d["path"], d["line"], d["col"], d["rule"]) for d in found] == [
        ("models/evil.yaml", line, col, "MG-SEC-160")
    ]
    assert "imports posixpath.system when it loads" in found[0]["message"]
    checked = run_cli("--root", str(scaffold.root), "render", "--check")
    assert checked.code == 1 and "MG-SEC-160" in checked.out + checked.err
    deploy = run_cli("--root", str(scaffold.root), "deploy", str(spec), "--target", "local")
    assert deploy.code == 1 and "MG-SEC-160" in deploy.out + deploy.err
    assert not marker.exists()


WAIVER = """\
apiVersion: modelgate.dev/v1alpha1
kind: Waivers
waivers:
  - rule: {rule}
    spec: evil
    justification: the model needs this name and it was reviewed
    approver: {approver}
    expires: "{expires}"
{extra}"""


def _waive(scaffold: Scaffold, rule: str, extra: str = "") -> None:
    import datetime as dt

    approver = BUILTIN.parameters["waiverApprovers"][0]
    expires = (dt.date.today() + dt.timedelta(days=10)).isoformat()
    text = WAIVER.format(rule=rule, approver=approver, expires=expires, extra=extra)
    (scaffold.root / "policies" / "waivers.yaml").write_text(text)


def _plant(scaffold: Scaffold, opcodes: bytes) -> str:
    """The iris model with `opcodes` inserted, served by the spec `evil`; its path."""
    where = "models/artifacts/evil/model.joblib"
    data = payloads.inserted(IRIS, opcodes)
    (scaffold.root / where).parent.mkdir(parents=True, exist_ok=True)
    (scaffold.root / where).write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    scaffold.iris("evil", **{ARTIFACT_LINE: f"artifact: {where}", IRIS_SHA256: digest})
    return where


def _open(found: list[dict]) -> list[tuple[str, str]]:
    return sorted((d["rule"], d["message"].split(" when ")[0]) for d in found if not d["waiver"])


def test_a_waiver_names_a_global_and_never_silences_the_scan(
    scaffold: Scaffold, tmp_path: Path
) -> None:
    scaffold.with_policies()
    counter = payloads.call("collections", "Counter") + b"0"
    where = _plant(scaffold, counter + payloads.call("posixpath", "system", "x"))
    _waive(scaffold, "MG-SEC-160", "    globals: [collections.Counter]\n")
    _, found = _diagnostics(scaffold)
    assert _open(found) == [("MG-SEC-160", f"{where} imports posixpath.system")]
    waived = [d["message"] for d in found if d["waiver"]]
    assert len(waived) == 1 and "imports collections.Counter when" in waived[0]
    _waive(scaffold, "MG-SEC-160", "    globals: [collections.Counter, posixpath.system]\n")
    assert _open(_diagnostics(scaffold)[1]) == []
    # a waiver of the rule that names no global waives nothing, and says so
    _waive(scaffold, "MG-SEC-160")
    _, found = _diagnostics(scaffold)
    assert "MG803" in [d["rule"] for d in found] and not [d for d in found if d["waiver"]]
    # picklescan's verdict is no policy rule: naming os.system leaves MG241
    _plant(scaffold, payloads.call("os", "system", "x"))
    _waive(scaffold, "MG-SEC-160", "    globals: [os.system]\n")
    assert ("MG241", f"{where} runs code") in _open(_diagnostics(scaffold)[1])


def test_a_pickle_under_another_name_on_a_pickle_runtime_is_pickle_based(
    scaffold: Scaffold, tmp_path: Path
) -> None:
    """Attack 2: a clean pickle named model.json, format custom, MLServer's scikit-learn
    runtime (joblib.load): with pickleArtifacts forbidden it is refused; so is a remote one."""
    scaffold.with_policies()
    where = "models/artifacts/custom/model.json"
    (scaffold.root / where).parent.mkdir(parents=True)
    (scaffold.root / where).write_bytes(IRIS)
    custom = {
        ARTIFACT_LINE: f"artifact: {where}",
        "    format: sklearn": "    format: custom",
        "    protocol: v2": "    protocol: v2\n    runtime: mlserver_sklearn.SKLearnModel",
    }
    scaffold.iris("evil", **custom)
    assert _diagnostics(scaffold)[1] == []
    (scaffold.root / "policies" / "strict.yaml").write_text(
        "apiVersion: modelgate.dev/v1alpha1\nkind: PolicySet\nmetadata: {name: strict}\n"
        "extends: [modelgate]\nparameters:\n  pickleArtifacts: {'*': forbidden}\n"
    )
    _, found = _diagnostics(scaffold)
    assert [(d["rule"], d["message"]) for d in found] == [
        (
            "MG-SEC-009",
            f"{where} is a pickle-based artifact and is not allowed in staging, production "
            "(policy parameter pickleArtifacts)",
        )
    ]
    # by its runtime alone: a remote file whose bytes nobody read
    (scaffold.root / "policies" / "strict.yaml").unlink()
    remote = {**custom, ARTIFACT_LINE: "artifact: s3://models/iris/model.json"}
    scaffold.iris("evil", **remote)
    _, found = _diagnostics(scaffold, "--env", "production")
    assert [d["rule"] for d in found if d["severity"] == "error"] == ["MG-SEC-009"]


def test_the_repository_passes_the_production_rules_the_deploy_workflow_runs() -> None:
    """churn-pipeline's pickle from s3:// (never scanned) goes to staging only: judged by
    production's rules, as the workflow's production job judges every spec, it deploys no
    pickle there."""
    result = run_cli("validate", "--env", "production", "--format", "json")
    assert result.code == 0, result.out
    # and chat-assistant's GPU fit, not computed until its hub headers are recorded (MG265)
    assert [d["rule"] for d in json.loads(result.out)["diagnostics"]] == ["MG265", "MG-OPS-050"]


# --- a pickle from an https:// host ----------------------------------------------------------


@pytest.fixture
def https_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A loopback HTTPS server of the files in a folder, its certificate trusted through
    SSL_CERT_FILE (which the command's child process inherits)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl makes the test server's certificate; it is not installed")
    served = tmp_path / "served"
    served.mkdir()
    key, certificate = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True,
    )  # fmt: skip
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(served))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
    monkeypatch.setenv("MODELGATE_CACHE_DIR", str(tmp_path / "cache"))
    try:
        yield f"https://localhost:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _errors(found: list[dict]) -> list[str]:
    return [d["rule"] for d in found if d["severity"] == "error"]


def _error_messages(found: list[dict]) -> list[str]:
    return [d["message"] for d in found if d["severity"] == "error"]


def _remote(scaffold: Scaffold, url: str, digest: str) -> None:
    """The iris spec on KServe (whose pod checks the sha256) with its model at `url`."""
    scaffold.iris(
        "evil",
        **{
            ARTIFACT_LINE: f"artifact: {url}",
            IRIS_SHA256: digest,
            "    name: mlserver\n    version: 1.7.1": "    name: kserve",
        },
    )


def test_a_remote_pickle_reaches_production_only_as_the_bytes_scanned(
    scaffold: Scaffold, https_host: tuple[str, Path], tmp_path: Path
) -> None:
    scaffold.with_policies()
    base, served = https_host
    (served / "iris.joblib").write_bytes(IRIS)
    evil = payloads.inserted(IRIS, payloads.routes(tmp_path / "ran")["posixpath.system"][0])
    (served / "evil.joblib").write_bytes(evil)
    # the bytes fetched are the ones pinned and scanned: production takes them
    _remote(scaffold, f"{base}/iris.joblib", IRIS_SHA256)
    code, found = _diagnostics(scaffold, "--env", "production")
    assert (code, _errors(found)) == (0, []), found
    # what the remote file imports is judged like a file in the repository
    _remote(scaffold, f"{base}/evil.joblib", hashlib.sha256(evil).hexdigest())
    _, found = _diagnostics(scaffold, "--env", "production")
    assert _errors(found) == ["MG-SEC-160"]
    assert f"{base}/evil.joblib imports posixpath.system" in _error_messages(found)[0]
    # a digest the author chose that the bytes do not have: never scanned, refused
    _remote(scaffold, f"{base}/iris.joblib", "ab" * 32)
    _, found = _diagnostics(scaffold, "--env", "production")
    assert _errors(found) == ["MG-SEC-009"]
    assert "the bytes fetched have sha256 " + IRIS_SHA256 in _error_messages(found)[0]
    # the bytes of a digest fetched before are kept (checked again before each use); a host
    # that is not there gives no others
    _remote(scaffold, "https://127.0.0.1:9/iris.joblib", IRIS_SHA256)
    assert _errors(_diagnostics(scaffold, "--env", "production")[1]) == []
    _remote(scaffold, "https://127.0.0.1:9/iris.joblib", "cd" * 32)
    _, found = _diagnostics(scaffold, "--env", "production")
    assert _errors(found) == ["MG-SEC-009"]
    assert "fetching it failed: it cannot be fetched" in _error_messages(found)[0]
    assert not (tmp_path / "ran").exists()


# --- the pod's verify step -------------------------------------------------------------------


def _verify(args: list[str], as_nobody: bool) -> subprocess.CompletedProcess[str]:
    """The real verify-model script, run as the pod runs it (python3 -I -c); as root, under
    another user, for whom a folder without permissions is unreadable."""
    python = sys.executable
    if as_nobody:  # a Python outside root's home, which the other user can run
        python = next(p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if Path(p).exists())
    command = [python, *verify.command()[1:], *args]
    if as_nobody:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_the_verify_step_fails_closed_on_what_it_cannot_read() -> None:
    from validator.check import artifacts

    as_nobody = os.geteuid() == 0
    system_python = any(Path(p).exists() for p in ("/usr/bin/python3", "/usr/local/bin/python3"))
    if as_nobody and (shutil.which("setpriv") is None or not system_python):
        pytest.skip("as root, setpriv runs the script as a user who cannot read a folder")
    base = Path(tempfile.mkdtemp(prefix="verify-", dir="/tmp"))
    try:
        base.chmod(0o755)
        folder = base / "model"
        (folder / "hidden").mkdir(parents=True)
        (folder / "weights.bin").write_bytes(b"weights")
        (folder / "hidden" / "code.pkl").write_bytes(b"anything")
        digest = artifacts.tree_sha256(folder)
        assert _verify(["treeSha256", digest, str(folder)], as_nobody).returncode == 0
        # what os.walk alone would give for a folder it cannot list: the digest without it
        partial = base / "partial"
        partial.mkdir()
        shutil.copy(folder / "weights.bin", partial / "weights.bin")
        without = artifacts.tree_sha256(partial)
        (folder / "hidden").chmod(0)
        refused = _verify(["treeSha256", without, str(folder)], as_nobody)
        assert refused.returncode == 1, refused
        assert "hidden cannot be read" in refused.stderr
        assert "Traceback" not in refused.stderr
        (folder / "hidden").chmod(0o755)
        (folder / "weights.bin").chmod(0)
        digest = artifacts.tree_sha256(folder)
        refused = _verify(["treeSha256", digest, str(folder)], as_nobody)
        assert refused.returncode == 1 and "weights.bin cannot be read" in refused.stderr
        refused = _verify(["sha256", "0" * 64, str(folder / "weights.bin")], as_nobody)
        assert refused.returncode == 1 and "cannot be read" in refused.stderr
    finally:
        for path in base.rglob("*"):
            path.chmod(0o755)
        shutil.rmtree(base)


# --- the catalog -----------------------------------------------------------------------------


def test_the_catalog_writes_only_under_its_folder(scaffold: Scaffold, tmp_path: Path) -> None:
    scaffold.iris()
    outside = tmp_path / "outside"
    climbing = "../../../outside/pwned"
    scaffold.write_spec("climbing", (PROJECT / "models" / "iris.yaml").read_text().replace(
        "name: iris", f"name: {climbing!r}"
    ))  # fmt: skip
    result = run_cli("--root", str(scaffold.root), "catalog", "--out", "site")
    assert "internal error" not in result.out + result.err
    assert not outside.exists()
    assert all(
        p.resolve().is_relative_to((scaffold.root / "site").resolve())
        for p in (scaffold.root / "site").rglob("*")
    )
    assert (scaffold.root / "site" / "cards" / "iris.html").is_file()


def test_verdicts_carry_what_was_imported(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(IRIS)
    verdict = pickles.scan_file(path)
    assert pickles.Verdict.from_json(verdict.to_json()) == verdict
    assert io.BytesIO(verdict.to_json()).read(1) == b"{"
