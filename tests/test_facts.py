"""Cross-file facts: the scan reads what the strict loader reads (or gives up), and the facts
index is only an accelerator: stale, damaged or forged entries never change a verdict."""

from __future__ import annotations

import marshal
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from validator import cache, git
from validator.check import facts, load, scan, workspace

from .conftest import PROJECT, Scaffold, run_cli
from .conftest import git as run_git
from .test_fuzz import FUZZ

EXAMPLES = sorted((PROJECT / "models").glob("*.yaml"))
TEXTS = [path.read_text(encoding="utf-8") for path in EXAMPLES]
# the same specs as `yaml.safe_dump` writes them: block style, folded long lines
DUMPED = [yaml.safe_dump(yaml.safe_load(text), sort_keys=False) for text in TEXTS]


def loaded_facts(text: str) -> scan.Facts | None:
    document, _ = load.load_text(text, "spec.yaml")
    return None if document is None else scan.facts_of(document.data)


def assert_scan_agrees(text: str) -> scan.Facts | None:
    """Where the scan reads a text that the loader accepts, both read the same facts."""
    found = scan.scan(text)
    expected = loaded_facts(text)
    if found is not None and expected is not None:
        assert found == expected, text
    return found


@pytest.mark.parametrize("text", TEXTS + DUMPED)
def test_the_examples_are_scanned_without_the_loader(text: str) -> None:
    assert assert_scan_agrees(text) is not None


def spec(**sections: str) -> str:
    """A small spec; each section's text replaces its default."""
    parts = {
        "head": "apiVersion: modelgate.dev/v1alpha1\nkind: ModelDeployment\n",
        "metadata": "metadata:\n  name: m\n  owner: a@example.com\n",
        "before": "",  # first in spec, before every fact
        "model": "  model:\n    artifact: models/a.joblib\n    format: sklearn\n",
        "engine": "  engine:\n    name: mlserver\n",
        "endpoint": "  endpoint:\n    host: m.example.com\n    port: 8080\n",
        "environments": "  environments: [staging, production]\n",
        "tail": "  smoke:\n    requests: []\n",
    }
    parts.update(sections)
    return (
        parts["head"]
        + parts["metadata"]
        + "spec:\n"
        + parts["before"]
        + parts["model"]
        + parts["engine"]
        + parts["endpoint"]
        + parts["environments"]
        + parts["tail"]
    )


# Texts a line-by-line reading could get wrong: each is read exactly or given up on.
TRICKY = {
    "plain": spec(),
    "block environments at the key's indent": spec(environments="  environments:\n  - a\n"),
    "block environments indented": spec(environments="  environments:\n    - a\n    - b\n"),
    "empty environments": spec(environments="  environments: []\n"),
    "null host": spec(endpoint="  endpoint:\n    host:\n    port: ~\n"),
    "quoted values": spec(endpoint="  endpoint:\n    host: 'it''s'\n    port: \"80\"\n"),
    "comments everywhere": spec(metadata="metadata: # c\n  # c\n  name: m # c\n"),
    "a YAML 1.1 boolean name": spec(metadata="metadata:\n  name: yes\n"),
    "an octal port": spec(endpoint="  endpoint:\n    port: 0755\n"),
    "a port that is text in YAML 1.1": spec(endpoint="  endpoint:\n    port: 0o17\n"),
    "an exponent without a dot": spec(endpoint="  endpoint:\n    port: 1e3\n"),
    "a port too large for a float": spec(endpoint="  endpoint:\n    port: 1.0e+400\n"),
    "a flow mapping continued below its key": spec(
        before="  resources:\n    requests: {cpu: 250m,\n  endpoint: {host: x}}\n",
        endpoint="",
    ),
    "a flow sequence continued at the facts' indent": spec(
        before="  args: [a,\n  environments: b]\n", environments=""
    ),
    "a flow mapping continued at a fact's indent": spec(
        model="  model:\n    x: {a: 1,\n    image: evil}\n"
    ),
    "a tagged flow mapping": spec(model="  model:\n    x: !!map {a: 1,\n    image: evil}\n"),
    "a quoted scalar continued on a key-like line": spec(
        metadata='metadata:\n  description: "a\n  name: evil"\n  name: m\n'
    ),
    "a quoted key": spec(metadata='metadata:\n  "name": m\n'),
    "a complex key": spec(metadata="metadata:\n  ? name\n  : m\n"),
    "a plain value on two lines": spec(endpoint="  endpoint:\n    host: a\n      b\n"),
    "a block scalar holding keys": spec(
        metadata="metadata:\n  description: |\n    name: evil\n  host: x\n  name: m\n"
    ),
    "a block scalar holding facts' lines": spec(
        before="  notes: >-\n    text\n\n    endpoint:\n      host: evil\n", endpoint=""
    ),
    "a quoted scalar running over the facts": spec(
        before="  notes: 'a\n  endpoint:\n    host: evil'\n", endpoint=""
    ),
    "a folded description": spec(metadata="metadata:\n  description: a\n    b: c\n  name: m\n"),
    "a duplicate name": spec(metadata="metadata:\n  name: a\n  name: b\n"),
    "a duplicate spec": spec(tail="spec:\n  engine:\n    name: tgi\n"),
    "an anchor": spec(engine="  engine: &e\n    name: mlserver\n"),
    "a tag on a fact": spec(endpoint="  endpoint:\n    port: !!str 8080\n"),
    "a document marker": "---\n" + spec(),
    "a second document": spec() + "---\nmetadata: {name: x}\n",
    "a tab": spec(metadata="metadata:\n\tname: m\n"),
    "windows line ends": spec().replace("\n", "\r\n"),
    "a mapping where a name belongs": spec(metadata="metadata:\n  name: {a: b}\n"),
    "a list where the engine belongs": spec(engine="  engine:\n  - name: mlserver\n"),
    "a flow spec": "metadata: {name: m}\nspec: {engine: {name: vllm}}\n",
    "indentation that does not line up": spec(metadata="metadata:\n  name: m\n owner: x\n"),
    "a sequence at the top": "- a\n- b\n",
    "a key after the facts": spec(tail="  smoke: {requests: [\n  ]}\n  endpoint: {}\n"),
    "environments with quoted items": spec(environments="  environments: ['a', \"b\"]\n"),
    "environments with a comment inside": spec(environments="  environments: [a, # c\n  b]\n"),
    "a stand-in spelt with an escape": spec(
        tail='  smoke:\n    "stand\\u0049n": {artifact: s/x.gguf, script: s/make.py}\n'
    ),
    "a stand-in behind long requests": spec(
        tail="  smoke:\n    requests: [{a: [1,\n      2]}]\n"
        "    standIn:\n      artifact: s/x.gguf\n"
    ),
}


def test_a_stand_in_is_read_and_long_requests_without_one_are_jumped_over() -> None:
    """The stand-in's artifact and script are facts; a spec that names none has its smoke
    requests (long flow sequences over many lines) jumped over, not given up on."""
    named = spec(tail="  smoke:\n    standIn:\n      artifact: s/x.gguf\n      script: s/make.py\n")
    assert assert_scan_agrees(named)[-2:] == ("s/x.gguf", "s/make.py")
    requests = spec(tail="  smoke:\n    requests: [{a: [1,\n      2]}]\n")
    assert assert_scan_agrees(requests)[-2:] == (None, None)


@pytest.mark.parametrize("text", TRICKY.values(), ids=TRICKY.keys())
def test_the_scan_reads_exactly_or_gives_up(text: str) -> None:
    assert_scan_agrees(text)


TOKENS = (
    "yes", "0755", "0o17", "1e3", "1_000", "1:20", "~", "", "'q'", '"d"', '"a\\x41"', "[a, b]",
    "{a: 1}", "[a,", "{a: 1,", "|", ">-", "&x a", "*x", "!!str 5", "x # c", "'it''s'", "a: b",
    "- a", "? a", "b]", "'", '"', "#", ".inf", "m.example.com", "8080", "staging",
)  # fmt: skip
KEYS = ("name", "host", "port", "environments", "engine", "model", "endpoint", "spec", "x")


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(TEXTS + DUMPED)).split("\n")
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(lines) - 1))
        line = lines[at]
        kind = draw(st.sampled_from(("indent", "dedent", "value", "insert", "delete", "copy")))
        if kind == "indent":
            lines[at] = " " * draw(st.integers(1, 2)) + line
        elif kind == "dedent":
            lines[at] = line[draw(st.integers(1, 2)) :] if line.startswith("  ") else line
        elif kind == "value" and ": " in line:
            lines[at] = line.split(": ", 1)[0] + ": " + draw(st.sampled_from(TOKENS))
        elif kind == "insert":
            indent = " " * draw(st.sampled_from((0, 1, 2, 3, 4, 6)))
            key = draw(st.sampled_from(KEYS))
            value = draw(st.sampled_from(TOKENS))
            shape = draw(st.sampled_from(("key", "item", "bare")))
            made = {"key": f"{key}: {value}", "item": f"- {value}", "bare": value}[shape]
            lines.insert(at, indent + made)
        elif kind == "delete":
            del lines[at]
        elif kind == "copy":
            lines.insert(at, line)
    return "\n".join(lines)


@FUZZ
@given(mutated())
def test_the_scan_never_reads_other_facts_than_the_loader(text: str) -> None:
    assert_scan_agrees(text)


# --- the facts index ----------------------------------------------------------------------


PORT = {"visibility: internal": "visibility: internal\n    port: 8080"}


@pytest.fixture
def pair(committed: Scaffold, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scaffold:
    """iris and alpha (a copy) with the policies, committed; a cache of their own."""
    monkeypatch.setenv("MODELGATE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    committed.with_policies()
    committed.iris("alpha")
    run_git(committed.root, "add", "-A")
    run_git(committed.root, "commit", "-q", "-m", "alpha")
    return committed


def hook(scaffold: Scaffold) -> tuple[int, str]:
    """What the pre-commit hook runs: validate the one staged spec, iris."""
    done = run_cli("validate", "models/iris.yaml", cwd=scaffold.root)
    assert "Traceback" not in done.out + done.err
    return done.code, done.out


def index_entries(scaffold: Scaffold) -> dict[str, scan.Facts | None]:
    return facts.Index(scaffold.root.resolve()).entries


def index_file(directory: Path) -> Path:
    [entry] = directory.glob(f"{facts.CACHE_KIND}-*.bin")
    return entry


def test_the_index_is_keyed_by_content_so_a_changed_spec_is_read_again(
    pair: Scaffold, tmp_path: Path
) -> None:
    assert hook(pair)[0] == 0
    [before] = index_entries(pair).values()  # alpha's facts, by its blob id
    pair.iris("alpha", **PORT)  # edited, not staged: git's index still names the old blob
    pair.iris("iris", **PORT)
    code, out = hook(pair)
    assert code == 1 and "models/iris.yaml" in out and "MG-OPS-040" in out
    run_git(pair.root, "commit", "-q", "-am", "ports")
    code, out = hook(pair)
    assert code == 1 and "MG-OPS-040" in out
    [after] = index_entries(pair).values()
    assert before[6] is None and after[6] == 8080


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"",
        lambda data: data[: len(data) // 2],
        lambda data: data[:-1] + bytes([data[-1] ^ 1]),
        lambda data: b"junk" * 100,
    ],
    ids=["emptied", "truncated", "one bit flipped", "junk"],
)
def test_a_damaged_index_is_rebuilt_and_changes_nothing(
    pair: Scaffold, tmp_path: Path, damage
) -> None:
    pair.iris("alpha", **PORT)
    pair.iris("iris", **PORT)
    run_git(pair.root, "commit", "-q", "-am", "ports")
    expected = hook(pair)
    assert expected[0] == 1
    entry = index_file(tmp_path / "cache")
    entry.write_bytes(damage(entry.read_bytes()))
    assert hook(pair) == expected
    assert index_entries(pair)  # written again, sealed


def forge(scaffold: Scaffold, alpha: scan.Facts) -> None:
    """A well-sealed index entry (as only the cache directory's owner can write one) that
    gives alpha other facts than its file has."""
    blob = git.clean_blobs(scaffold.root, "models")["models/alpha.yaml"]
    key = facts.Index(scaffold.root.resolve()).key
    cache.store(facts.CACHE_KIND, key, marshal.dumps({blob: alpha}))


def test_an_index_entry_cannot_make_up_a_finding(pair: Scaffold) -> None:
    pair.iris("iris", **PORT)
    assert hook(pair)[0] == 0
    real = facts.read((pair.root / "models" / "alpha.yaml").read_bytes())
    assert real is not None and real[6] is None
    forge(pair, (*real[:6], 8080))  # "alpha has iris's port"
    assert hook(pair)[0] == 0  # alpha is read from its file before a finding is made


def test_an_index_in_a_directory_others_can_write_is_not_used(
    pair: Scaffold, tmp_path: Path
) -> None:
    pair.iris("alpha", **PORT)
    pair.iris("iris", **PORT)
    run_git(pair.root, "commit", "-q", "-am", "ports")
    real = facts.read((pair.root / "models" / "alpha.yaml").read_bytes())
    assert real is not None
    forge(pair, (*real[:6], None))  # "alpha has no port": it would hide the collision
    os.chmod(tmp_path / "cache", 0o777)
    code, out = hook(pair)
    assert code == 1 and "MG-OPS-040" in out


def test_with_the_index_warm_no_other_spec_is_read(
    pair: Scaffold, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What makes the hook cost the same in a large repository: the other specs' facts come
    from the index, by the blob ids git already knows."""
    root = pair.root.resolve()
    files = [root / "models" / "iris.yaml"]
    workspace.validate(files, root, peers=workspace.every_spec(root))  # warms the index
    read, reads = facts.read, []
    monkeypatch.setattr(facts, "read", lambda raw: reads.append(raw) or read(raw))
    result = workspace.validate(files, root, peers=workspace.every_spec(root))
    assert not result.failed() and reads == []
    (root / "models" / "alpha.yaml").write_text(  # a changed peer is read, and only it
        (root / "models" / "alpha.yaml").read_text() + "# edited\n"
    )
    workspace.validate(files, root, peers=workspace.every_spec(root))
    assert len(reads) == 1


def test_a_peer_linked_to_a_file_outside_the_repository_is_not_read(
    pair: Scaffold, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text((pair.root / "models" / "alpha.yaml").read_text())
    (pair.root / "models" / "alpha.yaml").unlink()
    (pair.root / "models" / "alpha.yaml").symlink_to(outside)
    pair.iris("iris", **PORT)
    pair.iris("outside", **PORT)  # what the link leads to: alpha's name, iris's port
    (pair.root / "models" / "outside.yaml").replace(outside)
    outside.write_text(outside.read_text().replace("name: outside", "name: alpha"))
    assert facts.collect(
        [pair.root / "models" / "alpha.yaml"], pair.root, ["models/alpha.yaml"]
    ) == {"models/alpha.yaml": None}
    code, out = hook(pair)
    assert code == 0, out


def test_every_cross_file_check_compares_identities_the_facts_hold() -> None:
    """A partial run gives the cross-file checks only the specs that share an identity
    (name, endpoint host or port) with a checked one: a check comparing anything else would
    miss findings there. Teach facts.py first, then add it here."""
    from validator.check.policy.checks import REPOSITORY_CHECKS

    assert set(REPOSITORY_CHECKS) == {"unique_endpoints"}
    assert [scan.FIELDS[i] for i in facts.IDENTITIES] == [
        ("metadata", "name"),
        ("spec", "endpoint", "host"),
        ("spec", "endpoint", "port"),
    ]
