"""The official schemas the report tests check modelgate's SARIF and JUnit output against, each
taken from a package registry, pinned by hash and cached under CACHE/schemas/. A cached file is
used only while its sha256 is the pinned one.

- SARIF: OASIS's `sarif-schema-2.1.0.json` (errata01, JSON Schema draft-04), 112,768 bytes,
  sha256 c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e. The Go module
  github.com/owenrumney/go-sarif/v3 v3.3.1 (pinned in tests/schemas/go.mod, its hash in
  tests/schemas/go.sum) holds it byte for byte as the Go raw string `schema` of
  pkg/report/v210/sarif/schema.go.
- JUnit: the XSD pytest validates its own JUnit reports against,
  `testing/example_scripts/junit-10.xsd` of pytest's 9.2.0 source distribution on PyPI (sdist
  sha256 97c4f3b1f3c7414aa36465e09b8220f1d03627993bd51b1282e193753c80557b; the XSD 6,555
  bytes, sha256 a1a816f58d1bf95ebabf371994df0b9246dee66ea9572fbec4f9296f1b2c0ff6): pytest's
  copy of the Jenkins xunit plugin's junit-10.xsd (MIT, Gregory Boissinot), the format Jenkins
  reads JUnit reports in. It differs from the plugin's file (at its commit 031e285e) in two
  places: `time` takes at most three fraction digits, and a testsuite may carry `version`.
  Windy Road's Apache Ant schema (JUnit-Schema's JUnit.xsd), stricter about required
  attributes, is in no package of a registry the tests may use.

Where the registry cannot be reached (or Go, for the SARIF schema, is missing) the tests skip
and say why; a download whose hash is not the pinned one fails them.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from validator.deploy.lock import held

from . import kube_env
from .kube_env import CACHE, Broken, Unavailable

SCHEMA_MODULES = Path(__file__).resolve().parent / "schemas"  # go.mod and go.sum
SCHEMAS = CACHE / "schemas"

SARIF_MODULE = "github.com/owenrumney/go-sarif/v3"
SARIF_SOURCE = "pkg/report/v210/sarif/schema.go"
SARIF_GO_STRING = re.compile(rb"package sarif\n\nconst schema = `([^`]*)`\n")
SARIF_SHA256 = "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e"

PYTEST_SDIST = "pytest-9.2.0.tar.gz"
PYTEST_SDIST_SHA256 = "97c4f3b1f3c7414aa36465e09b8220f1d03627993bd51b1282e193753c80557b"
JUNIT_MEMBER = "pytest-9.2.0/testing/example_scripts/junit-10.xsd"
JUNIT_SHA256 = "a1a816f58d1bf95ebabf371994df0b9246dee66ea9572fbec4f9296f1b2c0ff6"


def sarif_schema() -> Path:
    """OASIS's SARIF 2.1.0 JSON schema, from the go-sarif module go.sum pins."""
    return _cached("sarif-schema-2.1.0.json", SARIF_SHA256, _sarif_from_module)


def junit_xsd() -> Path:
    """The Jenkins xunit plugin's junit-10.xsd as pytest's source distribution ships it."""
    return _cached("junit-10.xsd", JUNIT_SHA256, _junit_from_pytest_sdist)


def _cached(name: str, sha256: str, make: Callable[[], bytes]) -> Path:
    target = SCHEMAS / sha256[:12] / name
    if _has_digest(target, sha256):
        return target
    SCHEMAS.mkdir(parents=True, exist_ok=True)
    with held(SCHEMAS / ".lock"):  # another test run may be fetching the same
        if not _has_digest(target, sha256):
            content = make()
            digest = hashlib.sha256(content).hexdigest()
            if digest != sha256:
                raise Broken(f"{name} from its package has sha256 {digest}, not {sha256}")
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = target.with_suffix(".writing")
            staging.write_bytes(content)
            os.replace(staging, target)
    return target


def _has_digest(path: Path, sha256: str) -> bool:
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256


def _sarif_from_module() -> bytes:
    gomod = (SCHEMA_MODULES / "go.mod").read_text()
    gosum = (SCHEMA_MODULES / "go.sum").read_text()
    version = kube_env.required_version(gomod, SARIF_MODULE)
    folder = kube_env.downloaded(kube_env._go(), SARIF_MODULE, version, gosum, SCHEMA_MODULES)
    match = SARIF_GO_STRING.fullmatch((folder / SARIF_SOURCE).read_bytes())
    if match is None:
        raise Broken(f"{SARIF_MODULE}@{version} {SARIF_SOURCE} is no longer one Go string")
    return match.group(1)


def _junit_from_pytest_sdist() -> bytes:
    with tempfile.TemporaryDirectory(prefix="modelgate-pytest-sdist-") as scratch:
        sdist = _pip_download_sdist(Path(scratch))
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        if digest != PYTEST_SDIST_SHA256:
            raise Broken(f"{PYTEST_SDIST} has sha256 {digest}, not {PYTEST_SDIST_SHA256}")
        with tarfile.open(sdist) as archive:
            try:
                member = archive.extractfile(JUNIT_MEMBER)
            except KeyError:
                member = None
            if member is None:
                raise Broken(f"{PYTEST_SDIST} has no file {JUNIT_MEMBER}")
            return member.read()


def _pip_download_sdist(folder: Path) -> Path:
    """pytest's sdist, downloaded by pip (which also fetches its build backend, to read the
    sdist's metadata: about 20 s, once)."""
    name, version = PYTEST_SDIST.removesuffix(".tar.gz").split("-")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--retries", "0", "--timeout", "30", "--no-deps", "--no-binary", ":all:",
         "--dest", str(folder), f"{name}=={version}"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    sdist = folder / PYTEST_SDIST
    if done.returncode != 0 or not sdist.is_file():
        why = "; ".join((done.stderr.strip() or done.stdout.strip()).splitlines())[-500:]
        raise Unavailable(f"pip could not download {name}=={version}'s sdist from PyPI: {why}")
    return sdist
