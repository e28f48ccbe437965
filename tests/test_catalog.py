"""The model catalog: catalog.md and index.html from a scratch repository, and in a real browser."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from validator.report import catalog

from .conftest import run_cli

PROJECT = Path(__file__).resolve().parents[1]
TODAY = dt.date(2026, 3, 1)
SOON = "2026-03-11"  # within 30 days of TODAY
EXPIRED = "2026-02-01"
HOSTILE = "<script>alert(1)</script> a|b `tick` \\| end\nsecond line"
HEADER = [
    "Model",
    "Description",
    "Owner",
    "Team",
    "Engine",
    "Format",
    "Environments",
    "Cost per hour (min-max replicas)",
    "License",
    "Model card",
    "Policy status",
    "Waivers",
    "Last deploy",
]
# A model card is untrusted text too: HTML, links and images in it are shown as text
HOSTILE_CARD = """\
# hostile <script>alert(3)</script>

Summary with <img src=x onerror=alert(4)> and [a link](javascript:alert(5)) and `code`.

## Intended use

<b>bold</b> use.

## Limitations

- <iframe src="https://attacker.example.net/"></iframe>

## Training data

Data.

## Evaluation

```
</pre><script>alert(6)</script>
```
"""
IRIS_SUMMARY = (
    "Logistic regression that tells the three iris species (setosa, versicolor, virginica) "
    "apart from four flower measurements."
)
WAIVERS = f"""\
apiVersion: modelgate.dev/v1alpha1
kind: Waivers
waivers:
  - rule: MG-CMP-001
    spec: hostile
    justification: the on-call rota moves to a new tool this quarter
    approver: security@example.com
    expires: "{SOON}"
  - rule: MG-SEC-004
    spec: iris
    justification: kept only to show an expired waiver in the catalog
    approver: compliance@example.com
    expires: "{EXPIRED}"
"""
LEDGER = [
    {
        "time": "2026-02-20T09:15:00Z",
        "name": "iris",
        "target": "local",
        "environment": "staging",
        "result": "deployed",
        "error": "",
        "endpoint": "http://127.0.0.1:8080",
        "spec_hash": "0" * 32,
        "commit": "a" * 40,
        "user": "alice",
    },
    {
        "time": "2026-02-21T10:30:00Z",
        "name": "fraud-onnx",
        "target": "kubernetes",
        "environment": "production",
        "result": "failed",
        "error": "readiness timed out after 180s",
        "endpoint": "",
        "spec_hash": "1" * 32,
        "commit": "b" * 40,
    },
]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """models/, policies/ and templates/ of the project, a hostile spec, waivers and a ledger."""
    root = tmp_path / "repo"
    for name in ("models", "policies", "templates", "docs/models"):
        shutil.copytree(PROJECT / name, root / name)
    iris = (root / "models" / "iris.yaml").read_text(encoding="utf-8")
    hostile = iris.replace("name: iris", "name: hostile")
    hostile = _replace_line(hostile, "  description:", f"  description: {json.dumps(HOSTILE)}")
    hostile = _replace_line(hostile, "  contact:", '  contact: "javascript:alert(1)"')
    hostile = _replace_line(hostile, "    modelCard:", "    modelCard: docs/models/hostile.md")
    hostile = _replace_line(hostile, "    license:", '    license: "mit or apache-2.0"')
    (root / "models" / "hostile.yaml").write_text(hostile, encoding="utf-8")
    (root / "docs" / "models" / "hostile.md").write_text(HOSTILE_CARD, encoding="utf-8")
    (root / "policies" / "waivers.yaml").write_text(WAIVERS, encoding="utf-8")
    (root / ".modelgate").mkdir()
    lines = [json.dumps(record) for record in LEDGER]
    (root / ".modelgate" / "ledger.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture
def built(repo: Path, tmp_path: Path) -> dict[str, Path]:
    site = tmp_path / "site"
    paths = catalog.build(repo, site, today=TODAY)
    return {path.relative_to(site).as_posix(): path for path in paths}


def _replace_line(text: str, prefix: str, new: str) -> str:
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(prefix))
    lines[index] = new
    return "\n".join(lines) + "\n"


def _model_names(root: Path) -> list[str]:
    return sorted(path.stem for path in (root / "models").glob("*.yaml"))


def _cells(line: str) -> list[str]:
    """A Markdown table row split at its unescaped pipes, escapes kept as written."""
    cells, current, chars = [], "", iter(line.strip().removeprefix("|").removesuffix("|"))
    for char in chars:
        if char == "\\":
            current += char + next(chars, "")
        elif char == "|":
            cells.append(current.strip())
            current = ""
        else:
            current += char
    return [*cells, current.strip()]


def _table(markdown: str) -> dict[str, dict[str, str]]:
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    assert _cells(rows[0]) == HEADER
    assert set(rows[1].replace("|", "")) == {"-"}
    table = {}
    for row in rows[2:]:
        cells = _cells(row)
        assert len(cells) == len(HEADER), row
        table[cells[0]] = dict(zip(HEADER, cells, strict=True))
    return table


class _Page(HTMLParser):
    """Rows, links, scripts and resource references of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.hrefs: list[str] = []
        self.tags: set[str] = set()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.add(tag)
        if tag == "tr" and values.get("data-model"):
            self.rows.append(values["data-model"] or "")
        if tag == "a":
            self.hrefs.append(values.get("href") or "")
        self.sources.extend(values[key] or "" for key in ("src", "srcset") if key in values)


def _page(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def test_markdown_table(repo: Path, built: dict[str, Path]) -> None:
    markdown = built["catalog.md"].read_text(encoding="utf-8")
    table = _table(markdown)
    assert list(table) == _model_names(repo)
    iris = table["iris"]
    assert iris["Owner"] == "ml-platform@example.com"
    assert iris["Team"] == "ml-platform"
    assert iris["Engine"] == "mlserver 1.7.1"
    assert iris["Format"] == "sklearn"
    assert iris["Environments"] == "staging, production"
    assert iris["License"] == "BSD-3-Clause"
    assert iris["Model card"].startswith(f"docs/models/iris.md<br>{IRIS_SUMMARY}")
    assert table["fraud-onnx"]["License"] == "LicenseRef-Proprietary"
    assert iris["Policy status"] == "clean"  # an expired waiver waives nothing
    assert iris["Waivers"] == f"MG-SEC-004 until {EXPIRED} (expired)"
    assert iris["Last deploy"] == "deployed 2026-02-20T09:15:00Z (staging)"
    assert table["fraud-onnx"]["Last deploy"] == "failed 2026-02-21T10:30:00Z (production)"
    assert table["chat-assistant"]["Last deploy"] == "no record"
    assert table["chat-assistant"]["Format"] == (
        "huggingface<br>smoke-tested on a stand-in: models/artifacts/tiny-qwen2-hf/model "
        "(made by models/artifacts/tiny-qwen2-hf/make.py)"
    )
    assert iris["Format"] == "sklearn"  # no stand-in: the model itself is smoke-tested
    hostile = table["hostile"]
    assert hostile["Policy status"] == "waived: MG-CMP-001"
    assert hostile["License"] == "MIT OR Apache-2.0"  # normalised
    assert hostile["Waivers"] == f"MG-CMP-001 until {SOON} (expires soon)"
    assert "MG801" in markdown  # the expired waiver is itself a finding


def test_waivers_naming_no_rule_or_a_check_are_not_counted_active(repo: Path) -> None:
    far = (TODAY + dt.timedelta(days=60)).isoformat()
    entries = "".join(
        f"  - {{rule: {rule}, spec: iris, justification: kept to show what it names,\n"
        f"     approver: security@example.com, expires: '{far}'}}\n"
        for rule in ("MG119", "MG-SEC-0O4", "MG-SEC-004")
    )
    (repo / "policies" / "waivers.yaml").write_text(
        "apiVersion: modelgate.dev/v1alpha1\nkind: Waivers\nwaivers:\n" + entries,
        encoding="utf-8",
    )
    found = catalog.collect(repo, TODAY)
    [iris] = [entry for entry in found.entries if entry.name == "iris"]
    states = {(w.rule, w.state, w.note) for w in iris.waivers}
    assert states == {
        ("MG119", "invalid", "not waivable"),
        ("MG-SEC-0O4", "invalid", "names no rule"),
        ("MG-SEC-004", "active", ""),
    }
    assert found.waivers_in("active", "soon") == 1 and found.waivers_in("invalid") == 2
    assert {d.rule for d in found.findings} >= {"MG805", "MG807"}


def test_markdown_escapes_untrusted_text(built: dict[str, Path]) -> None:
    markdown = built["catalog.md"].read_text(encoding="utf-8")
    description = _table(markdown)["hostile"]["Description"]
    assert description == (
        "&lt;script&gt;alert(1)&lt;/script&gt; a\\|b \\`tick\\` \\\\\\| end<br>second line"
    )
    assert "<script" not in markdown


def test_html_page(repo: Path, built: dict[str, Path]) -> None:
    text = built["index.html"].read_text(encoding="utf-8")
    page = _page(text)
    assert page.rows == _model_names(repo)
    assert '<li class="soon"><b>MG-CMP-001</b> until <time datetime="2026-03-11">' in text
    assert '<li class="expired"><b>MG-SEC-004</b> until <time datetime="2026-02-01">' in text
    assert '<span class="badge deployed">deployed</span><br>\n<time>2026-02-20T09:15:00Z' in text
    assert '<span class="badge failed">failed</span>' in text
    assert "readiness timed out after 180s" in text
    assert 'by alice · <span class="src">aaaaaaaaaaaa</span>' in text
    assert '<span class="badge waived">waived MG-CMP-001</span>' in text
    assert '<span class="badge confidential">confidential</span>' in text  # fraud-onnx
    assert '<span class="badge pii">PII</span>' in text
    assert '<a href="mailto:risk-ml-oncall@example.com"' in text
    assert '<span class="license">BSD-3-Clause</span>' in text
    assert '<span class="license">MIT OR Apache-2.0</span>' in text
    assert (
        '<a href="cards/iris.html" rel="noopener noreferrer">docs/models/iris.md</a>' in text
    )  # the card's own page, published with the catalog
    assert f'<p class="card-summary">{IRIS_SUMMARY}' in text
    assert (
        'Pull requests smoke-test a stand-in: <span class="src">'
        "models/artifacts/fraud-onnx-small/model.onnx (made by "
        "models/artifacts/fraud-onnx-small/make.py)</span>"
    ) in text
    assert text.count("Pull requests smoke-test a stand-in") == 2  # chat-assistant, fraud-onnx
    assert text.count('<p class="card-summary">') == len(_model_names(repo))
    # both sorted as file names: "fraud-onnx-small.html" comes before "fraud-onnx.html"
    assert sorted(name for name in built if name.startswith("cards/")) == sorted(
        f"cards/{name}.html" for name in _model_names(repo)
    )


def test_card_pages_show_the_card_as_text(built: dict[str, Path]) -> None:
    iris = built["cards/iris.html"].read_text(encoding="utf-8")
    page = _page(iris)
    assert "<h2>Intended use</h2>" in iris and "<h2>Evaluation</h2>" in iris
    assert "<code>sklearn.datasets.load_iris</code>" in iris
    assert page.hrefs == ["../index.html"]
    hostile = built["cards/hostile.html"].read_text(encoding="utf-8")
    page = _page(hostile)
    assert {"script", "img", "iframe", "b"} & page.tags == set()
    assert page.hrefs == ["../index.html"] and page.sources == []
    assert "&lt;img src=x onerror=alert(4)&gt;" in hostile
    assert "[a link](javascript:alert(5))" in hostile  # a Markdown link stays text
    assert "&lt;/pre&gt;&lt;script&gt;alert(6)&lt;/script&gt;" in hostile


def test_html_escapes_untrusted_text(built: dict[str, Path]) -> None:
    text = built["index.html"].read_text(encoding="utf-8")
    page = _page(text)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; a|b `tick` \\| end\nsecond line" in text
    assert "script" not in page.tags
    assert page.sources == []  # self-contained: no images, frames or scripts from anywhere
    assert "<link" not in text
    links = ("https://", "mailto:", "cards/")  # the web, mail, and the site's own card pages
    assert not [href for href in page.hrefs if not href.startswith(links)]
    assert "javascript:alert(1)" in text  # shown as text, never as a link
    assert "&lt;img src=x onerror=alert(4)&gt;" in text  # the hostile card's summary


def test_output_is_deterministic(repo: Path, tmp_path: Path) -> None:
    first = catalog.build(repo, tmp_path / "one", today=TODAY)
    second = catalog.build(repo, tmp_path / "two", today=TODAY)
    assert [path.name for path in first][:2] == ["catalog.md", "index.html"]
    assert len(first) == 2 + len(_model_names(repo))  # and one page per model card
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert TODAY.isoformat() not in a.read_text(encoding="utf-8")


def test_without_a_ledger(repo: Path, tmp_path: Path) -> None:
    shutil.rmtree(repo / ".modelgate")
    paths = catalog.build(repo, tmp_path / "site", today=TODAY)
    table = _table(paths[0].read_text(encoding="utf-8"))
    assert {row["Last deploy"] for row in table.values()} == {"no record"}


def test_last_deploy_is_the_latest_by_time(tmp_path: Path) -> None:
    ledger = tmp_path / ".modelgate" / "ledger.jsonl"
    ledger.parent.mkdir()
    records = [
        {"time": "2026-02-02T12:00:00+01:00", "name": "iris", "result": "deployed"},
        {"time": "2026-02-01T12:00:00Z", "name": "iris", "result": "failed"},
        {"time": "2026-02-01T11:00:00", "name": "fraud", "result": "failed"},
    ]
    lines = [json.dumps(record) for record in records]
    ledger.write_text("\n".join([*lines, "not json", "[]", '{"name": 3}']) + "\n")
    deploys = catalog.last_deploys(tmp_path)
    assert sorted(deploys) == ["fraud", "iris"]
    assert deploys["iris"].result == "deployed"
    assert deploys["fraud"].result == "failed"
    assert catalog.last_deploys(tmp_path / "elsewhere") == {}


@pytest.mark.parametrize(
    ("expires", "state"),
    [
        ("2026-02-28", "expired"),
        ("2026-03-01", "soon"),
        ("2026-03-31", "soon"),
        ("2026-04-01", "active"),
        ("2026-02-30", "invalid"),
    ],
)
def test_expiry_state(expires: str, state: str) -> None:
    assert catalog.expiry_state(expires, TODAY) == state


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("a|b", "a\\|b"),
        ("one\ntwo\r\nthree", "one<br>two<br>three"),
        ("`x`", "\\`x\\`"),
        ("\\|", "\\\\\\|"),
        ("<b>&", "&lt;b&gt;&amp;"),
        (None, ""),
        (3, "3"),
    ],
)
def test_markdown_cell(value: object, cell: str) -> None:
    assert catalog.markdown_cell(value) == cell


# --- a real browser ------------------------------------------------------------------------


def _chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def chromium(tmp_path: Path):
    binary = _chromium_binary()
    if binary is None:
        pytest.skip("no chromium binary on PATH (Debian/Ubuntu: apt-get install chromium)")

    def run(page: Path, *args: str) -> subprocess.CompletedProcess[str]:
        command = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
            page.as_uri(),
        ]
        env = {**os.environ, "HOME": str(tmp_path)}
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    return run


def _console_problems(stderr: str) -> list[str]:
    """Console messages and uncaught errors. This page has no scripts, so it should log none:
    Chromium logs even console.error and CSP violations as INFO:CONSOLE, so any CONSOLE line
    counts, besides the 'Uncaught' and 'ERROR:CONSOLE' a script error would show."""
    markers = ("Uncaught", "ERROR:CONSOLE", ":CONSOLE")
    return [line for line in stderr.splitlines() if any(m in line for m in markers)]


def test_browser_renders_the_catalog(repo: Path, built: dict[str, Path], chromium, tmp_path):
    page = built["index.html"]
    dumped = chromium(page, "--dump-dom")
    assert _console_problems(dumped.stderr) == []
    dom = _page(dumped.stdout)
    assert dom.rows == _model_names(repo)
    assert "script" not in dom.tags
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dumped.stdout
    assert '<li class="soon"><b>MG-CMP-001</b>' in dumped.stdout
    # what a compliance officer reads first: each card's summary and the normalised licence
    assert f'<p class="card-summary">{IRIS_SUMMARY}' in dumped.stdout
    assert dumped.stdout.count('class="card-summary"') == len(_model_names(repo))
    for expression in ("BSD-3-Clause", "Apache-2.0", "LicenseRef-Proprietary", "MIT OR Apache-2.0"):
        assert f'<span class="license">{expression}</span>' in dumped.stdout
    card = chromium(built["cards/iris.html"], "--dump-dom")
    assert _console_problems(card.stderr) == []
    assert "<h2>Limitations</h2>" in card.stdout and IRIS_SUMMARY in card.stdout

    shot = tmp_path / "catalog.png"
    taken = chromium(page, f"--screenshot={shot}", "--window-size=1280,900")
    assert _console_problems(taken.stderr) == []
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert int.from_bytes(png[16:20], "big") == 1280  # IHDR width
    assert len(png) > 20_000  # a rendered page, not a blank one


def test_browser_console_check_sees_errors(chromium, tmp_path: Path) -> None:
    """The console check above would notice a broken page in this Chromium build."""
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><title>x</title><script>missing();</script>")
    problems = _console_problems(chromium(broken, "--dump-dom").stderr)
    assert any("Uncaught ReferenceError" in line for line in problems)


def test_out_naming_a_file_is_a_usage_error(tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("")
    result = run_cli("catalog", "--out", str(target))
    assert result.code == 2 and "is a file; name a directory" in result.err
    assert target.read_text() == ""


@pytest.mark.parametrize(
    "damage",
    [
        '{"name": "iris", "time": "\xff\xfe"}'.encode("latin-1"),  # torn UTF-8
        b'{"name": "iris", "time": ',
        json.dumps({**LEDGER[0], "time": ["x"], "result": ["y"]}).encode(),
        json.dumps({**LEDGER[0], "result": 7, "time": 5}).encode(),
    ],
    ids=["torn UTF-8", "invalid JSON", "a list for a string", "a number for a string"],
)
def test_a_damaged_ledger_line_is_skipped_and_counted(
    repo: Path, tmp_path: Path, damage: bytes
) -> None:
    ledger = repo / ".modelgate" / "ledger.jsonl"
    ledger.write_bytes(ledger.read_bytes() + damage + b"\n")
    result = run_cli("--root", str(repo), "catalog", "--out", str(tmp_path / "site"))
    assert result.code == 0, result.err
    assert "skipped 1 damaged line of .modelgate/ledger.jsonl" in result.err
    assert catalog.last_deploys(repo)["iris"].result == "deployed"


def test_each_model_shows_its_own_card(built: dict[str, Path]) -> None:
    """Specs that name one model card serve one model (one format and version, whether
    packaged as an artifact or an image): the iris boosting examples showed iris's
    logistic-regression summary."""
    by_card: dict[str, set[tuple[str, str]]] = {}
    for path in (PROJECT / "models").glob("*.yaml"):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))["spec"]
        card = (spec.get("compliance") or {}).get("modelCard")
        if card:
            served = (spec["model"]["format"], str(spec["model"].get("version")))
            by_card.setdefault(card, set()).add(served)
    assert {card: served for card, served in by_card.items() if len(served) > 1} == {}
    table = _table(built["catalog.md"].read_text(encoding="utf-8"))
    assert IRIS_SUMMARY not in table["iris-xgboost"]["Model card"]
    assert "Gradient-boosted trees (XGBoost)" in table["iris-xgboost"]["Model card"]
    assert "Gradient-boosted trees (LightGBM)" in table["iris-lightgbm"]["Model card"]


def test_a_token_glued_to_other_text_is_masked_in_every_page(repo: Path, tmp_path: Path) -> None:
    token = "ghp_" + "A1b2C3d4" * 5
    spec = repo / "models" / "iris.yaml"
    spec.write_text(
        spec.read_text(encoding="utf-8").replace('version: "1.0.0"', f'version: "{token}"'),
        encoding="utf-8",
    )
    pages = catalog.build(repo, tmp_path / "site", today=TODAY)
    index = next(path for path in pages if path.name == "index.html").read_text("utf-8")
    assert 'class="muted">vghp_****<' in index  # the template writes v{{ version }}
    for page in pages:
        assert token[4:20] not in page.read_text(encoding="utf-8"), page


def test_a_failed_kubectl_attempt_shows_its_reason_not_its_log_lines(
    repo: Path, tmp_path: Path
) -> None:
    retry = (
        'E1207 15:04:05.123456   42 memcache.go:265] "Unhandled Error" err="couldn\'t get '
        'current server API group list: Get \\"http://localhost:8080/api?timeout=32s\\""'
    )
    reason = (
        "The connection to the server localhost:8080 was refused - did you specify the right "
        "host or port?"
    )
    record = {
        **LEDGER[1],
        "time": "2026-02-22T10:30:00Z",
        "error": "model not deployed: " + "\n".join([retry] * 5 + [reason]),
    }
    with (repo / ".modelgate" / "ledger.jsonl").open("a", encoding="utf-8") as ledger:
        ledger.write(json.dumps(record) + "\n")
    pages = catalog.build(repo, tmp_path / "site", today=TODAY)
    index = next(path for path in pages if path.name == "index.html").read_text("utf-8")
    assert f'<div class="error">model not deployed: {reason}</div>' in index
    assert "memcache.go" not in index


def test_the_catalog_shows_what_each_model_costs_an_hour(built: dict[str, Path]) -> None:
    """From the price table of templates/values.yaml: a chat-assistant replica in production
    requests 4 CPUs (0.05 an hour each), 16 GiB (0.006) and a GPU of no named product (the
    `*` price, 2.5): 2.796 an hour, 2 to 6 replicas."""
    table = _table(built["catalog.md"].read_text(encoding="utf-8"))
    cost = table["chat-assistant"]["Cost per hour (min-max replicas)"]
    assert cost == "staging: 5.48-16.44 USD/h<br>production: 5.59-16.78 USD/h"
    index = built["index.html"].read_text(encoding="utf-8")
    assert '<span class="tag">production: 5.59-16.78 USD/h</span>' in index
