"""Write tests/corpus/: malformed and hostile spec files, each named for what it tries, and
EXPECTED.json with the rule ids each must produce. Deterministic: run it again, get the same.

    .venv/bin/python tests/make_corpus.py

Cases: broken YAML, wrong types at every level of the iris spec, duplicate keys, anchors and
alias bombs, language tags, confusable names, huge numbers, deep nesting, binary bytes, BOM,
CRLF, tabs, several documents, path traversal, and secrets in every string field and in keys.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
IRIS_TEXT = (HERE.parent / "models" / "iris.yaml").read_text(encoding="utf-8")
IRIS = yaml.safe_load(IRIS_TEXT)
SPEC_SCHEMA = Draft202012Validator(
    json.loads((HERE.parent / "validator/schemas/modeldeployment.v1alpha1.json").read_text())
)
MAX_REPLICAS = "    maxReplicas: 3\n"  # iris has no scaling target: numbers go in after this
WRONG = {"int": 12345, "list": [1, 2], "map": {"unexpected": True}, "null": None}
SECRETS = {
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "github": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "huggingface": "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "openai": "sk-proj-" + "4hT9xQ2mLw8ZrV6bN1cY5dK3",
    "private-key": "-----BEGIN RSA PRIVATE KEY-----",
}


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def leaf_paths(node: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaf_paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node[:1]):  # the first item stands for the list
            yield from leaf_paths(value, (*path, index))


def replaced(path: tuple, value: Any) -> dict:
    data = copy.deepcopy(IRIS)
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return data


def wrong_types() -> Iterator[tuple[str, bytes, list[str]]]:
    for path in leaf_paths(IRIS):
        if not path:
            continue
        here = replaced(path, None)
        original = eval_path(IRIS, path)
        for kind, value in WRONG.items():
            if isinstance(original, dict) and kind == "map":
                continue
            if isinstance(original, list) and kind == "list":
                continue
            here = replaced(path, value)
            if SPEC_SCHEMA.is_valid(here):
                continue  # the schema allows this type here (a quantity may be a number)
            name = "type-" + ".".join(map(str, path)) + f"-{kind}"
            yield name, dump(here).encode(), [_wrong_type_rule(here, path)]
            if len(path) > 3:
                break  # deep leaves: one wrong type each keeps the corpus small


def _wrong_type_rule(data: dict, path: tuple) -> str:
    """MG255 where an unquoted number or null stands where the schema wants text (YAML read
    it as such: quote it), MG201 for every other wrong type."""
    for failure in SPEC_SCHEMA.iter_errors(data):
        if tuple(failure.absolute_path) != path or isinstance(failure.instance, str | list | dict):
            continue
        expected = failure.validator_value
        if failure.validator == "type" and "string" in (
            expected if isinstance(expected, list) else [expected]
        ):
            return "MG255"
        choices = expected if failure.validator == "enum" else [expected]
        if failure.validator in ("enum", "const") and all(isinstance(c, str) for c in choices):
            return "MG255"
    return "MG201"


def eval_path(node: Any, path: tuple) -> Any:
    for part in path:
        node = node[part]
    return node


BROKEN_YAML = {
    "yaml-unclosed-flow-list": "a: [1, 2\nb: 3\n",
    "yaml-unclosed-flow-map": "a: {b: 1\nc: 2\n",
    "yaml-bad-indent": "a:\n  b: 1\n c: 2\n",
    "yaml-unterminated-quote": 'a: "open\nb: 2\n',
    "yaml-tab-indent": "a:\n\tb: 1\n",
    "yaml-colon-in-plain": "a: b: c\n",
    "yaml-stray-dash": "a: 1\n- b\n",
    "yaml-bad-escape": 'a: "\\q"\n',
    "yaml-block-scalar-bad": "a: |\n b\nc\n",
    "yaml-only-colon": ":\n",
    "yaml-directive-garbage": "%FOO bar\n---\na: 1\n",
    "yaml-unclosed-single-quote": "a: 'x\n",
    "yaml-question-mark-key": "? \n: \n? [\n",
    "yaml-mixed-flow": "a: [b, {c: d]\n",
    "yaml-trailing-garbage": "a: 1\n]]]\n",
}

TAGS = {
    "tag-python-object": "apiVersion: !!python/object:os.system {}\n",
    "tag-python-name": "apiVersion: !!python/name:os.system\n",
    "tag-python-apply": "spec: !!python/object/apply:os.system ['id']\n",
    "tag-binary": "metadata: {name: !!binary aXJpcw==}\n",
    "tag-local": "kind: !Custom ModelDeployment\n",
    "tag-set": "spec: !!set {a, b}\n",
    "tag-omap": "spec: !!omap [{a: 1}]\n",
    "tag-merge-key": "base: {x: 1}\nspec:\n  <<: {a: 1}\n",
}


def alias_bomb(levels: int) -> str:
    text = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for index in range(1, levels):
        prev, name = chr(ord("a") + index - 1), chr(ord("a") + index)
        text += f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    return text


def special_cases() -> Iterator[tuple[str, bytes, list[str]]]:
    for name, text in BROKEN_YAML.items():
        yield name, text.encode(), ["MG101"]
    for name, text in TAGS.items():
        yield name, text.encode(), ["MG108"]
    yield "alias-bomb-9", alias_bomb(9).encode(), ["MG104"]
    yield (
        "alias-in-spec",
        IRIS_TEXT.replace("team: ml-platform", "team: &t ml-platform").encode(),
        ["MG104"],
    )
    yield "anchor-unused", b"a: &x 1\n", ["MG104"]
    for depth_key in ("metadata", "spec.model", "spec.smoke"):
        parts = depth_key.split(".")
        indent = "  " * len(parts)
        anchor = f"{parts[-1]}:\n"
        text = IRIS_TEXT.replace(anchor, f"{anchor}{indent}zz: 1\n{indent}zz: 2\n", 1)
        yield f"dup-key-{depth_key}", text.encode(), ["MG102"]
    yield "dup-key-top", (IRIS_TEXT + "kind: ModelDeployment\n").encode(), ["MG102"]
    yield "multi-document", (IRIS_TEXT + "---\n" + IRIS_TEXT).encode(), ["MG103"]
    yield "multi-document-empty-second", (IRIS_TEXT + "---\n").encode(), ["MG103"]
    yield "empty", b"", ["MG107"]
    yield "whitespace-only", b"   \n\n\t\n", ["MG107"]
    yield "comment-only", b"# nothing here\n", ["MG107"]
    yield "top-level-list", b"- a\n- b\n", ["MG110"]
    yield "top-level-scalar", b"hello\n", ["MG110"]
    yield "top-level-null", b"~\n", ["MG110"]
    yield "binary-bytes", b"\x00\x01\x02\xff\xfe garbage", ["MG106"]
    yield "latin1-bytes", IRIS_TEXT.replace("botany", "botan\xe9").encode("latin-1"), ["MG106"]
    yield "utf16", IRIS_TEXT.encode("utf-16"), ["MG106"]
    # valid in disguise: these must load as the same clean spec
    yield "bom-utf8", b"\xef\xbb\xbf" + IRIS_TEXT.encode(), []
    yield "crlf", IRIS_TEXT.replace("\n", "\r\n").encode(), []
    yield (
        "tab-in-value-line",
        IRIS_TEXT.replace("  team: ml-platform", "\tteam: ml-platform").encode(),
        ["MG101"],
    )
    yield "deep-nesting-flow", ("a: " + "[" * 60 + "]" * 60 + "\n").encode(), ["MG112"]
    yield (
        "deep-nesting-block",
        "".join(f"{'  ' * i}k{i}:\n" for i in range(40)).encode() + b"  " * 40 + b"v: 1\n",
        ["MG112"],
    )
    yield "complex-key", b"? [a, b]\n: 1\n", ["MG113"]
    for name, value in (
        ("huge-int", 10**400),
        ("huge-negative", -(10**50)),
        ("huge-float", "1e400"),
    ):
        data = copy.deepcopy(IRIS)
        data["spec"]["scaling"]["maxReplicas"] = value
        text = dump(data).replace("'1e400'", "1e400")
        yield f"number-{name}", text.encode(), ["MG201"]
    for name, spelling in (
        ("inf", ".inf"),
        ("inf-capital", ".Inf"),
        ("inf-plus", "+.INF"),
        ("inf-negative", "-.inf"),
        ("nan", ".nan"),
        ("nan-mixed", ".NaN"),
        ("nan-upper", ".NAN"),
        ("float-overflow", "1.0e+400"),
        ("float-tag-inf", "!!float inf"),
    ):
        text = IRIS_TEXT.replace(MAX_REPLICAS, f"{MAX_REPLICAS}    target: {spelling}\n")
        yield f"number-not-finite-{name}", text.encode(), ["MG116"]
    digits = "12345678901234567890123"  # 23 digits: past every integer type an engine has
    for name, old, new in (
        ("target", MAX_REPLICAS, f"{MAX_REPLICAS}    target: {digits}\n"),
        ("max-latency", "maxLatencyMs: 500", f"maxLatencyMs: {digits}"),
        ("shape", "shape: [1, 1]", f"shape: [1, {digits}]"),
        ("output-max", "max: 2}", f"max: {digits}}}"),
        ("cpu", "cpu: 250m", f"cpu: {digits}"),
        ("run-as-user", "  compliance:", f"  security: {{runAsUser: {digits}}}\n  compliance:"),
    ):
        yield f"number-23-digits-{name}", IRIS_TEXT.replace(old, new, 1).encode(), ["MG201"]
    confusables = (
        ("cyrillic-i", "ir\u0456s"),
        ("greek-iota", "\u03b9ris"),
        ("fullwidth", "\uff49\uff52\uff49\uff53"),
        ("zero-width", "ir\u200bis"),
        ("uppercase", "IRIS"),
    )
    for label, name in confusables:
        data = copy.deepcopy(IRIS)
        data["metadata"]["name"] = name
        yield f"confusable-name-{label}", dump(data).encode(), ["MG201"]
    for label, path in (
        ("dotdot", "../../etc/passwd"),
        ("absolute", "/etc/passwd"),
        ("nested-dotdot", "models/../../outside.joblib"),
        ("backslash", "..\\..\\windows\\system32"),
        ("ftp", "ftp://host/x"),
    ):
        data = copy.deepcopy(IRIS)
        data["spec"]["model"]["artifact"] = path
        expected = ["MG-SEC-005"] if path.startswith("ftp") else ["MG-SEC-006"]
        yield f"path-traversal-{label}", dump(data).encode(), expected
    yield from provenance_cases()


def provenance_cases() -> Iterator[tuple[str, bytes, list[str]]]:
    """Paths with control characters (no file system takes a NUL), free-text licences, and
    pins that pin nothing."""
    for label, field, value in (
        ("artifact-nul", ("model", "artifact"), "models/artifacts/iris/mo\x00del.joblib"),
        ("artifact-newline", ("model", "artifact"), "models/artifacts/iris/\nmodel.joblib"),
        ("model-card-nul", ("compliance", "modelCard"), "docs/models/ir\x00is.md"),
        ("model-card-escape", ("compliance", "modelCard"), "docs/models/\x1b[31miris.md"),
    ):
        data = copy.deepcopy(IRIS)
        data["spec"][field[0]][field[1]] = value
        yield f"control-character-{label}", dump(data).encode(), ["MG201"]
    for label, licence in (("free-text", "Proprietary"), ("spaces", "Apache 2.0")):
        data = copy.deepcopy(IRIS)
        data["spec"]["compliance"]["license"] = licence
        yield f"license-{label}", dump(data).encode(), ["MG243"]
    data = copy.deepcopy(IRIS)
    data["spec"]["model"]["revision"] = "0" * 40
    yield "revision-of-a-repository-artifact", dump(data).encode(), ["MG240"]
    yield from yaml_1_1_cases()
    yield from peer_cases()


def yaml_1_1_cases() -> Iterator[tuple[str, bytes, list[str]]]:
    """Unquoted text that YAML 1.1 reads as a number, a boolean or null: "quote it"."""
    for label, old, new in (
        ("version-1.10", 'version: "1.0.0"', "version: 1.10"),
        ("version-2.0", 'version: "1.0.0"', "version: 2.0"),
        ("label-off", "domain: botany", "domain: off"),
        ("label-yes", "domain: botany", "domain: yes"),
        ("label-null", "domain: botany", "domain: ~"),
        ("engine-version-1.10", "version: 1.7.1", "version: 1.10"),
        ("classification-no", "dataClassification: public", "dataClassification: no"),
        ("license-2.0", "license: BSD-3-Clause", "license: 2.0"),
    ):
        yield f"yaml-1.1-{label}", IRIS_TEXT.replace(old, new, 1).encode(), ["MG255"]


def peer_cases() -> Iterator[tuple[str, bytes, list[str]]]:
    """A transformer's declared peers that would render a NetworkPolicy admitting more, or
    nothing: a namespace that is no name, ports out of range or of text."""
    for label, peer in (
        ("namespace-traversal", {"namespace": "../kube-system", "port": 6566}),
        ("namespace-selector-injection", {"namespace": "feast}, {podSelector: {}", "port": 1}),
        ("port-zero", {"namespace": "feast", "port": 0}),
        ("port-text", {"namespace": "feast", "port": "6566; any"}),
        ("labels-nested", {"namespace": "feast", "port": 6566, "podLabels": {"a": {"b": "c"}}}),
    ):
        data = copy.deepcopy(IRIS)
        data["spec"]["engine"] = {"name": "kserve", "protocol": "v2"}
        data["spec"]["transformer"] = {
            "image": "registry.example.com/ml/features@sha256:" + "ab" * 32,
            "peers": [peer],
        }
        yield f"peer-{label}", dump(data).encode(), ["MG201"]


def secret_cases() -> Iterator[tuple[str, bytes, list[str]]]:
    fields = {
        "description": ("metadata", "description"),
        "owner": ("metadata", "owner"),
        "contact": ("metadata", "contact"),
        "license": ("spec", "compliance", "license"),
        "model-card": ("spec", "compliance", "modelCard"),
    }
    for field, path in fields.items():
        for kind, secret in SECRETS.items():
            data = replaced(path, f"see {secret} here")
            yield f"secret-{kind}-in-{field}", dump(data).encode(), ["MG-SEC-030"]
    for kind, secret in SECRETS.items():
        data = copy.deepcopy(IRIS)
        data["spec"]["engine"]["env"] = [{"name": "TOKEN_VALUE", "value": secret}]
        yield f"secret-{kind}-in-env", dump(data).encode(), ["MG-SEC-030"]
        data = copy.deepcopy(IRIS)
        data["spec"]["engine"]["args"] = [f"--key={secret}"]
        yield f"secret-{kind}-in-args", dump(data).encode(), ["MG-SEC-030"]
        data = copy.deepcopy(IRIS)
        data["spec"]["smoke"]["requests"][0]["body"][secret] = 1
        yield f"secret-{kind}-in-body-key", dump(data).encode(), ["MG-SEC-030"]
        if " " not in secret:  # the label key pattern refuses the others (MG201)
            data = copy.deepcopy(IRIS)
            data["metadata"]["labels"][secret] = "x"
            yield f"secret-{kind}-in-label-key", dump(data).encode(), ["MG-SEC-030"]


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    for old in (*CORPUS.glob("*.yaml"), CORPUS / "EXPECTED.json"):  # trees/ is written by hand
        old.unlink(missing_ok=True)
    expected = {}
    for name, content, rules in (*wrong_types(), *special_cases(), *secret_cases()):
        file_name = f"{name.replace('/', '_')}.yaml"
        (CORPUS / file_name).write_bytes(content)
        expected[file_name] = rules
    (CORPUS / "EXPECTED.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(expected)} files to {CORPUS}")


if __name__ == "__main__":
    main()
