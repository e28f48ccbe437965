"""Triton Inference Server (the `tritonserver` binary inside PyTriton) on one model, on loopback.

    python triton_server.py MODEL_DIR WORKDIR --http-port P --grpc-port G

MODEL_DIR is what modelgate renders into rendered/local/NAME/ (templates/triton/): the
model's config.pbtxt, which Triton itself reads and judges (names, data types, dimensions,
batch size), and model-server.json (the model's name and its artifact, relative to it).
PyTriton bundles only Triton's Python backend, so the config names `backend: "python"` where
a cluster's names an ONNX Runtime platform, and the model is run by onnxruntime in a model.py
(triton_onnx_model.py beside this file). The rest of the config is the cluster's.

A Triton model repository is laid out in WORKDIR (links to the files, no copies), then this
process becomes tritonserver (exec): stopping it stops the server. Every port it opens is
bound to 127.0.0.1; metrics are off.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import sysconfig
from pathlib import Path

import pytriton

MODEL_FILE = "model.py"
PYTHON_MODEL = Path(__file__).with_name("triton_onnx_model.py")
LOOPBACK = "127.0.0.1"


def distribution() -> tuple[Path, Path]:
    """PyTriton's Triton tree and the folder of the libraries its binaries need."""
    package = Path(pytriton.__file__).resolve().parent
    return package / "tritonserver", package.parent / "nvidia_pytriton.libs"


def lay_out(model_dir: Path, workdir: Path) -> tuple[Path, Path]:
    """(model repository, backend directory) in `workdir`."""
    settings = json.loads((model_dir / "model-server.json").read_text(encoding="utf-8"))
    name = settings["name"]
    artifact = (model_dir / settings["uri"]).resolve()
    version = workdir / "models" / name / "1"
    version.mkdir(parents=True)
    (version.parent / "config.pbtxt").symlink_to(model_dir.resolve() / "config.pbtxt")
    (version / MODEL_FILE).symlink_to(PYTHON_MODEL)
    (version / "model.onnx").symlink_to(artifact)
    server, _ = distribution()
    python = workdir / "backends" / "python"
    python.mkdir(parents=True)
    for part in (server / "backends" / "python").iterdir():
        if part.is_file():
            (python / part.name).symlink_to(part)
    stub = server / "python_backend_stubs" / f"{sys.version_info[0]}.{sys.version_info[1]}"
    (python / "triton_python_backend_stub").symlink_to(stub / "triton_python_backend_stub")
    return workdir / "models", workdir / "backends"


def environment() -> dict[str, str]:
    """The server's environment: PyTriton's libraries and this Python's, and this
    environment's packages for the Python backend's stub (numpy, onnxruntime)."""
    _, libraries = distribution()
    paths = [str(libraries), sysconfig.get_config_var("LIBDIR") or ""]
    existing = os.environ.get("LD_LIBRARY_PATH")
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join([p for p in paths if p] + ([existing] if existing else []))
    env["PYTHONPATH"] = sysconfig.get_paths()["purelib"]
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--http-port", required=True)
    parser.add_argument("--grpc-port", required=True)
    options = parser.parse_args(argv)
    repository, backends = lay_out(options.model_dir, options.workdir)
    server, _ = distribution()
    binary = str(server / "bin" / "tritonserver")
    arguments = [
        binary,
        f"--model-repository={repository}",
        f"--backend-directory={backends}",
        f"--cache-directory={server / 'caches'}",
        "--disable-auto-complete-config",  # the rendered config is the whole config
        "--exit-on-error=true",
        "--strict-readiness=true",
        f"--http-address={LOOPBACK}",
        f"--http-port={options.http_port}",
        f"--grpc-address={LOOPBACK}",
        f"--grpc-port={options.grpc_port}",
        "--allow-metrics=false",
        "--allow-sagemaker=false",
        "--allow-vertex-ai=false",
        "--log-verbose=0",
    ]
    os.execve(binary, arguments, environment())
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
