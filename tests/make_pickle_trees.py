"""Write the pickle attacks of tests/corpus/trees/ (pickle-*.yaml): model files that run code
when they load, each planted in a scaffold repository with a spec that serves it, and the
command lines that must refuse it at the spec's artifact line. Deterministic: run it again,
get the same.

    .venv/bin/python tests/make_pickle_trees.py
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pickle_payloads as payloads
import yaml

HERE = Path(__file__).resolve().parent
TREES = HERE / "corpus" / "trees"
IRIS = (HERE.parent / "models" / "artifacts" / "iris" / "model.joblib").read_bytes()
IRIS_SHA256 = "8698570b26d3905996e7e4cc7fb011d9f4e7d66cad16bdd14e47891e9f7c44be"
MARKER = Path("/tmp/modelgate-pickle-ran")  # never written: nothing loads these files
AT = "models/evil.yaml:14:15"  # spec.model.artifact of the iris spec
CUSTOM = {  # a pickle named like something else, served by MLServer's scikit-learn runtime
    "    format: sklearn": "    format: custom",
    "    protocol: v2": "    protocol: v2\n    runtime: mlserver_sklearn.SKLearnModel",
}
FORBIDDEN = (
    "apiVersion: modelgate.dev/v1alpha1\nkind: PolicySet\nmetadata: {name: acme}\n"
    "extends: [modelgate]\nparameters:\n  pickleArtifacts: {'*': forbidden}\n"
)


def route(name: str) -> bytes:
    return payloads.routes(MARKER)[name][0]


def tree(description: str, where: str, data: bytes, refused: str, **extra: Any) -> dict:
    """`data` planted at `where`, served by the spec `evil` (the iris spec naming it by its
    sha256), which validate and render --check refuse with `refused` at its artifact."""
    replacements = {
        "artifact: models/artifacts/iris/model.joblib": f"artifact: {where}",
        IRIS_SHA256: f"@sha256:{where}",
        **extra.pop("replacements", {}),
    }
    finding = f"{AT}: {refused}"
    return {
        "description": description,
        "binary": {where: base64.encodebytes(data).decode()},
        "specs": {"evil": replacements},
        **extra,
        "runs": [
            {"command": ["validate", "--env", "production"], "exit": 1, "finding": finding},
            {"command": ["render", "--check"], "exit": 1, "finding": finding},
        ],
    }


def trees() -> dict[str, dict]:
    iris_with = {name: payloads.inserted(IRIS, route(name)) for name in payloads.routes(MARKER)}
    return {
        "pickle-posixpath-in-iris-joblib": tree(
            "a few bytes inserted into the iris joblib file call the shell through "
            "posixpath.system, which a deny-list rates only suspicious",
            "models/artifacts/evil/model.joblib",
            iris_with["posixpath.system"],
            "MG-SEC-160 models/artifacts/evil/model.joblib imports posixpath.system",
        ),
        "pickle-multiprocessing-util": tree(
            "multiprocessing.util.spawnv_passfds runs a program",
            "models/artifacts/evil/model.joblib",
            iris_with["multiprocessing.util.spawnv_passfds"],
            "MG-SEC-160 models/artifacts/evil/model.joblib imports "
            "multiprocessing.util.spawnv_passfds",
        ),
        "pickle-code-interactive-interpreter": tree(
            "code.InteractiveInterpreter runs Python source",
            "models/artifacts/evil/model.joblib",
            iris_with["code.InteractiveInterpreter.runsource"],
            "MG-SEC-160 models/artifacts/evil/model.joblib imports "
            "code.InteractiveInterpreter.runsource",
        ),
        "pickle-builtins-import-vars": tree(
            "builtins.__import__ and vars reach os.system without naming it",
            "models/artifacts/evil/model.joblib",
            iris_with["builtins.vars"],
            "MG-SEC-160 models/artifacts/evil/model.joblib imports builtins.vars",
        ),
        "pickle-in-torch-archive": tree(
            "the posixpath payload as the data.pkl of a torch.save archive",
            "models/artifacts/evil/model.bin",
            payloads.torch_archive(payloads.pickle_of(route("posixpath.system"))),
            "MG-SEC-160 models/artifacts/evil/model.bin imports posixpath.system",
        ),
        "pickle-in-gzipped-joblib": tree(
            "the posixpath payload in a joblib file compressed with gzip",
            "models/artifacts/evil/model.joblib",
            payloads.gzipped(iris_with["posixpath.system"]),
            "MG-SEC-160 models/artifacts/evil/model.joblib imports posixpath.system",
        ),
        "pickle-named-model-json": tree(
            "a pickle named model.json, format custom, served by MLServer's scikit-learn "
            "runtime (joblib.load), where no pickle may go",
            "models/artifacts/evil/model.json",
            iris_with["posixpath.system"],
            "MG-SEC-009 models/artifacts/evil/model.json is a pickle-based artifact",
            replacements=CUSTOM,
            files={"policies/acme.yaml": FORBIDDEN},
        ),
        "pickle-named-model-sav": tree(
            "a pickle named model.sav, format custom, served by MLServer's scikit-learn runtime",
            "models/artifacts/evil/model.sav",
            iris_with["posixpath.system"],
            "MG-SEC-160 models/artifacts/evil/model.sav imports posixpath.system",
            replacements=CUSTOM,
        ),
    }


def catalog_tree() -> dict:
    iris = (HERE.parent / "models" / "iris.yaml").read_text(encoding="utf-8")
    return {
        "description": "a spec whose metadata.name climbs out of the catalog's --out folder",
        "files": {
            "models/climb.yaml": iris.replace("name: iris", "name: '../../../outside/pwned'")
        },
        "runs": [{"command": ["catalog", "--out", "site"], "exit": 0, "finding": "catalog"}],
    }


def main() -> None:
    for name, content in {**trees(), "catalog-name-climbs-out": catalog_tree()}.items():
        text = yaml.safe_dump(content, sort_keys=False, width=100, allow_unicode=True)
        (TREES / f"{name}.yaml").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
