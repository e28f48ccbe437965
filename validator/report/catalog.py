"""The model catalog: every spec, its policy status, waivers and last deploy, on one page.

`build` writes catalog.md (a Markdown table for the repository) and index.html (a static,
self-contained page for product managers and compliance officers) through the Jinja2
templates in templates/catalog/, and cards/NAME.html for every model card kept in the
repository, so that the site stands on its own (the merge workflow publishes it; GitHub Pages
can serve it as it is). Licences are shown as normalised SPDX expressions, model cards by
their summary, with a link to the card. Every spec and card value is untrusted: the HTML
templates escape it (autoescape), the Markdown template escapes every expression it prints
(`finalize`). The output depends only on the repository, the ledger and `today`, never on
the clock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..check import licenses, load, model_cards, policy, workspace
from ..check.policy import waivers
from ..deploy import ledger, logs
from ..diagnostics import Diagnostic, Refused, Severity
from ..plan import compare, prices
from ..plan.endpoint import Endpoint
from ..secrets import mask

TEMPLATE_DIR = Path("templates") / "catalog"
MARKDOWN_FILE = "catalog.md"
HTML_FILE = "index.html"
CARD_TEMPLATE = "card.html"
CARD_DIR = "cards"
_PAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
SOON_DAYS = 30

_SCALARS = (str, int, float)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_WEB = re.compile(r"^https?://\S+$", re.IGNORECASE)
_NEWLINE = re.compile(r"\r\n|\r|\n|\u2028|\u2029")
# Applied character by character in one pass, so no escape is itself escaped again.
_MARKDOWN_ESCAPES = {"\\": "\\\\", "&": "&amp;", "<": "&lt;", ">": "&gt;"} | {
    char: "\\" + char for char in "|`*_[]~"
}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    message: str
    waived: bool


@dataclass(frozen=True)
class Status:
    """A spec's policy status: open errors and warnings, and the rules waived for it."""

    errors: int
    warnings: int
    waived: tuple[str, ...]
    findings: tuple[Finding, ...]

    @property
    def kind(self) -> str:
        if self.errors:
            return "errors"
        return "warnings" if self.warnings else "clean"

    @property
    def label(self) -> str:
        parts = [_count(self.errors, "error"), _count(self.warnings, "warning")]
        if self.waived:
            parts.append("waived: " + ", ".join(self.waived))
        return ", ".join(part for part in parts if part) or "clean"


@dataclass(frozen=True)
class WaiverEntry:
    rule: str
    expires: str
    approver: str
    justification: str
    state: str  # active, soon (expires within SOON_DAYS days), expired or invalid
    problem: str = ""  # why an invalid waiver is: what it names does not exist or is not waivable

    @property
    def note(self) -> str:
        if self.problem:
            return self.problem
        return {"soon": "expires soon", "expired": "expired", "invalid": "invalid date"}.get(
            self.state, ""
        )


@dataclass(frozen=True)
class Deploy:
    """The last deploy attempt recorded in the ledger for one model."""

    result: str
    time: str
    environment: str
    target: str
    error: str
    user: str
    commit: str


@dataclass(frozen=True)
class Serving:
    """What serves in one environment's cluster, from the record the rollout wrote there."""

    environment: str
    result: str  # serving, failed, reverted; "unknown" when the cluster could not be read
    version: str = ""
    revision: str = ""
    digest: str = ""
    commit: str = ""
    smoke: str = ""
    time: str = ""
    endpoint: str = ""
    message: str = ""


@dataclass(frozen=True)
class Entry:
    """One catalog row."""

    name: str
    path: str
    description: str
    owner: str
    team: str
    contact: str
    contact_href: str
    engine: str
    engine_version: str
    format: str
    model_version: str
    environments: tuple[str, ...]
    classification: str
    pii: str  # yes, no or "" (not stated)
    license: str  # the normalised SPDX expression, or the text as written when it is none
    model_card: str
    model_card_href: str
    model_card_summary: str
    card: model_cards.Card | None  # a card kept in the repository, when it can be read
    stand_in: str  # what the pull request smoke-tests in place of the model, or ""
    status: Status
    waivers: tuple[WaiverEntry, ...]
    deploy: Deploy | None
    serving: tuple[Serving, ...] = ()  # per environment read with --live
    # per environment: what it costs an hour at min and at max replicas (the price table)
    cost: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalog:
    entries: tuple[Entry, ...]
    findings: tuple[Diagnostic, ...]  # open findings on files that are not catalogued specs

    def count(self, kind: str) -> int:
        return sum(entry.status.kind == kind for entry in self.entries)

    def waivers_in(self, *states: str) -> int:
        return sum(w.state in states for entry in self.entries for w in entry.waivers)

    def deploys(self, result: str | None) -> int:
        return sum(_deploy_result(entry.deploy) == result for entry in self.entries)


def build(
    root: Path,
    out_dir: Path,
    today: dt.date | None = None,
    live: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write catalog.md and index.html into out_dir; return their paths. `live` maps
    environments to the kubeconfig of their cluster, whose records say what serves there."""
    catalog = collect(root, today or dt.date.today())
    if live:
        catalog = with_serving(catalog, serving_in(root, live))
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        _write_page(out_dir, name, text)
        for name, text in render(catalog, root / TEMPLATE_DIR).items()
    ]


def _write_page(out_dir: Path, name: str, text: str) -> Path:
    path = out_dir / name
    if not _under(path, out_dir):
        raise OSError(errno.EINVAL, f"{name} would be written outside the catalog's folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not _under(path, out_dir):  # a link inside --out, made before this run
        raise OSError(errno.EINVAL, f"{name} would be written outside the catalog's folder")
    # the catalog quotes spec values and findings, as every output does: masked
    path.write_text(mask(text), encoding="utf-8", newline="\n")
    return path


def _under(path: Path, folder: Path) -> bool:
    """`path`, links resolved, is inside `folder`: a page name never climbs out of --out."""
    return path.resolve().is_relative_to(folder.resolve())


def collect(root: Path, today: dt.date) -> Catalog:
    """Validate every spec under root/models and gather what the catalog shows."""
    result = _validate(root, today)
    found, _ = waivers.load_waivers(root)  # a broken waivers file is among the findings
    rule_ids = policy.waivable(result.policy) if result.policy is not None else None
    deploys = last_deploys(root)
    table = _prices(root)
    entries = sorted(
        (
            _entry(doc, result.diagnostics, found, deploys, today, root, rule_ids, table)
            for doc in result.documents
        ),
        key=lambda entry: (entry.name, entry.path),
    )
    catalogued = {doc.path for doc in result.documents}
    others = tuple(d for d in result.diagnostics if d.path not in catalogued and _open(d))
    return Catalog(tuple(entries), others)


def serving_in(root: Path, live: Mapping[str, str]) -> dict[str, list[Serving]]:
    """Model name -> what serves it in each environment, read from the clusters' records
    (deploy/record.py); an environment whose cluster cannot be read says so for every model."""
    from ..deploy import kubectl, record
    from ..render import load_values

    values = load_values(root)
    found: dict[str, list[Serving]] = {}
    unreadable: list[Serving] = []
    for environment, kubeconfig in live.items():
        namespace = values["namespace"].format(environment=environment)
        try:
            entries = record.every_model(namespace, kubeconfig)
        except kubectl.KubectlError as exc:
            reason = str(exc).splitlines()[-1] if str(exc) else "the cluster did not answer"
            unreadable.append(Serving(environment, "unknown", message=reason[:300]))
            continue
        for name, entry in entries.items():
            found.setdefault(name, []).append(_serving(entry))
    return {"": unreadable, **found}


def _serving(entry: Any) -> Serving:
    return Serving(
        environment=entry.environment,
        result=entry.result,
        version=entry.version,
        revision=entry.revision[:12],
        digest=entry.model_digest,
        commit=entry.commit[:12],
        smoke=entry.smoke,
        time=entry.finished,
        endpoint=entry.endpoint,
        message=entry.message[:300],
    )


def with_serving(catalog: Catalog, serving: dict[str, list[Serving]]) -> Catalog:
    unreadable = serving.get("", [])
    entries = tuple(
        dataclasses.replace(
            entry,
            serving=tuple(
                sorted(
                    [*serving.get(entry.name, []), *unreadable],
                    key=lambda s: s.environment,
                )
            ),
        )
        for entry in catalog.entries
    )
    return dataclasses.replace(catalog, entries=entries)


def render(catalog: Catalog, template_dir: Path) -> dict[str, str]:
    """File name -> text, for every output file (templates/catalog/NAME.j2), and
    cards/NAME.html for each model card kept in the repository."""
    if not template_dir.is_dir():
        from jinja2 import TemplateNotFound

        raise TemplateNotFound(MARKDOWN_FILE + ".j2", f"{template_dir} is not a folder")
    context = {"catalog": catalog, "soon_days": SOON_DAYS, "segments": segments}
    pages = {
        name: _environment(template_dir, html=name == HTML_FILE)
        .get_template(name + ".j2")
        .render(context)
        for name in (MARKDOWN_FILE, HTML_FILE)
    }
    card_page = _environment(template_dir, html=True).get_template(CARD_TEMPLATE + ".j2")
    for entry in catalog.entries:
        # a spec whose name is no plain file name (it failed validation) gets no page
        if entry.card is not None and _PAGE_NAME.fullmatch(entry.name):
            sections = card_sections(entry.card)
            pages[card_href(entry.name)] = card_page.render(
                entry=entry, sections=sections, segments=segments
            )
    return pages


def card_href(name: str) -> str:
    """Where the catalog site keeps the page of a spec's model card."""
    return f"{CARD_DIR}/{name}.html"


Segments = list[tuple[bool, str]]  # (is code, text): a text with its `code spans`


def card_sections(card: model_cards.Card) -> list[tuple[str, int, Any]]:
    """The card's blocks for the page, as (kind, heading level, content): a heading,
    paragraph or quote has Segments, a list a list of Segments, code its text; consecutive
    list items form one list."""
    found: list[tuple[str, int, Any]] = []
    for block in card.blocks:
        if block.kind == "item":
            if found and found[-1][0] == "list":
                found[-1][2].append(segments(block.text))
            else:
                found.append(("list", 0, [segments(block.text)]))
        elif block.kind == "code":
            found.append(("code", 0, block.text))
        else:
            found.append((block.kind, block.level, segments(block.text)))
    return found


def segments(text: str) -> Segments:
    """`text` split at its backquotes: what is between a pair is code."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unmatched backquote stays a backquote
        parts[-2:] = [parts[-2] + "`" + parts[-1]]
    return [(index % 2 == 1, part) for index, part in enumerate(parts) if part]


def markdown_cell(value: Any) -> str:
    """`value` as text that stays inside one Markdown table cell and renders literally."""
    text = "" if value is None else str(value)
    escaped = "".join(_MARKDOWN_ESCAPES.get(char, char) for char in text)
    return _NEWLINE.sub("<br>", escaped)


def last_deploys(root: Path) -> dict[str, Deploy]:
    """Model name -> its latest attempt in the ledger (by time; later lines win ties)."""
    latest: dict[str, tuple[tuple[dt.datetime, int], Deploy]] = {}
    for index, record in enumerate(ledger.history(root)):
        name = record.get("name")
        if not isinstance(name, str):
            continue
        key = (_instant(record.get("time")), index)
        if name not in latest or key > latest[name][0]:
            latest[name] = (key, _deploy(record))
    return {name: deploy for name, (_, deploy) in latest.items()}


def _validate(root: Path, today: dt.date) -> workspace.Validation:
    """workspace.validate, with waiver expiry judged on `today` rather than the clock."""
    result = workspace.validate(workspace.discover(root, []), root, policies=False)
    rules, problems = policy.load_policy(root)
    if problems:
        result.diagnostics.extend(problems)
    else:
        result.policy = rules
        result.diagnostics.extend(
            policy.evaluate(result.valid_documents(), rules, root, today=today)
        )
    result.diagnostics.sort(key=Diagnostic.sort_key)
    return result


def _entry(
    document: load.Document,
    diagnostics: Sequence[Diagnostic],
    found: Iterable[waivers.Waiver],
    deploys: dict[str, Deploy],
    today: dt.date,
    root: Path,
    rule_ids: set[str] | None = None,
    table: prices.PriceTable = prices.NO_PRICES,
) -> Entry:
    data = document.data
    name = _text(data, "metadata", "name") or Path(document.path).stem
    contact = _text(data, "metadata", "contact")
    card = _text(data, "spec", "compliance", "modelCard")
    kept = _card(root, card)
    return Entry(
        name=name,
        path=document.path,
        description=_text(data, "metadata", "description"),
        owner=_text(data, "metadata", "owner"),
        team=_text(data, "metadata", "team"),
        contact=contact,
        contact_href=_contact_href(contact),
        engine=_text(data, "spec", "engine", "name"),
        engine_version=_text(data, "spec", "engine", "version"),
        format=_text(data, "spec", "model", "format"),
        model_version=_text(data, "spec", "model", "version"),
        environments=_texts(_get(data, "spec", "environments")),
        classification=_text(data, "spec", "compliance", "dataClassification"),
        pii=_yes_no(_get(data, "spec", "compliance", "pii")),
        license=_license(_text(data, "spec", "compliance", "license")),
        model_card=card,
        model_card_href=card_href(name) if kept else card if _WEB.match(card) else "",
        model_card_summary=kept.summary if kept else "",
        card=kept,
        stand_in=_stand_in(data),
        status=_status(d for d in diagnostics if d.path == document.path),
        waivers=tuple(
            _waiver(w, today, rule_ids) for w in _sorted_waivers(found) if w.spec == name
        ),
        deploy=deploys.get(name),
        cost=_costs(document, table),
    )


def _prices(root: Path) -> prices.PriceTable:
    """templates/values.yaml's price table; none when it is unusable (`modelgate plan` says
    why, at its line)."""
    from ..render import values_document

    try:
        table, problems = prices.read(values_document(root))
    except Refused:
        return prices.NO_PRICES
    return prices.NO_PRICES if problems else table


def _costs(document: load.Document, table: prices.PriceTable) -> tuple[str, ...]:
    """ "ENV: LOW-HIGH CURRENCY/h" per environment of a valid spec; none without prices."""
    spec = document.data.get("spec")
    if not table.currency or not isinstance(spec, dict):
        return ()
    found = []
    for environment in _texts(spec.get("environments")):
        side = Endpoint(document.path, environment, spec)
        try:
            cost = compare.cost(side, table.rates(environment))
        except (TypeError, ValueError, AttributeError):  # a spec its findings call broken
            return ()
        if cost.at_min is None or cost.at_max is None:
            found.append(f"{environment}: GPU not priced")
        else:
            found.append(f"{environment}: {cost.at_min:.2f}-{cost.at_max:.2f} {table.currency}/h")
    return tuple(found)


def _stand_in(data: Any) -> str:
    """The stand-in a spec names (spec.smoke.standIn): its artifact and the script that
    makes it."""
    artifact = _text(data, "spec", "smoke", "standIn", "artifact")
    if not artifact:
        return ""
    script = _text(data, "spec", "smoke", "standIn", "script")
    return f"{artifact} (made by {script})" if script else artifact


def _card(root: Path, reference: str) -> model_cards.Card | None:
    """The model card kept in the repository at `reference`; None for a URL, or a card that
    cannot be read (MG-CMP-004 is among the spec's findings then)."""
    if not reference or not model_cards.in_repository(reference):
        return None
    try:
        return model_cards.read(root, reference)
    except model_cards.Unreadable:
        return None


def _license(text: str) -> str:
    return licenses.normalised(text) if text else ""


def _status(diagnostics: Iterable[Diagnostic]) -> Status:
    relevant = [d for d in diagnostics if d.severity is not Severity.INFO]
    return Status(
        errors=sum(_open(d) and d.severity is Severity.ERROR for d in relevant),
        warnings=sum(_open(d) and d.severity is Severity.WARNING for d in relevant),
        waived=tuple(sorted({d.rule for d in relevant if d.waived})),
        findings=tuple(Finding(d.rule, d.severity.value, d.message, d.waived) for d in relevant),
    )


def _open(diagnostic: Diagnostic) -> bool:
    return not diagnostic.waived and diagnostic.severity is not Severity.INFO


def _waiver(waiver: waivers.Waiver, today: dt.date, rule_ids: set[str] | None) -> WaiverEntry:
    problem = _misnamed(waiver, rule_ids)
    return WaiverEntry(
        rule=waiver.rule,
        expires=waiver.expires,
        approver=waiver.approver,
        justification=waiver.justification,
        state="invalid" if problem else expiry_state(waiver.expires, today),
        problem=problem,
    )


def _misnamed(waiver: waivers.Waiver, rule_ids: set[str] | None) -> str:
    """Why the waiver accepts nothing whatever its date: the rule it names is none of the
    policy's (None: the policy did not load), or a check no waiver accepts."""
    finding = waivers.misnamed(waiver, rule_ids)
    if finding is None:
        return ""
    return "names no rule" if finding.rule == waivers.WAIVER_UNKNOWN_RULE else "not waivable"


def _sorted_waivers(found: Iterable[waivers.Waiver]) -> list[waivers.Waiver]:
    return sorted(found, key=lambda w: (w.spec, w.rule, w.expires, w.line))


def expiry_state(expires: str, today: dt.date) -> str:
    """active, soon (within SOON_DAYS days), expired (the day after `expires`) or invalid."""
    try:
        last_day = dt.date.fromisoformat(expires)
    except ValueError:
        return "invalid"
    if last_day < today:
        return "expired"
    return "soon" if (last_day - today).days <= SOON_DAYS else "active"


def _instant(value: Any) -> dt.datetime:
    """An ISO 8601 time for ordering (naive means UTC); unparsable sorts first."""
    earliest = dt.datetime.min.replace(tzinfo=dt.UTC)
    if not isinstance(value, str):
        return earliest
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return earliest
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _deploy(record: dict[str, Any]) -> Deploy:
    return Deploy(
        result=_text(record, "result"),
        time=_text(record, "time"),
        environment=_text(record, "environment"),
        target=_text(record, "target"),
        error=_reason(_text(record, "error")),
        user=_text(record, "user"),
        commit=_text(record, "commit")[:12],
    )


def _reason(error: str, limit: int = 300) -> str:
    """Why a deploy failed, for a reader of the catalog: one message without the tools' log
    lines (the ledger keeps the error as it was recorded)."""
    text = logs.said(error)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _deploy_result(deploy: Deploy | None) -> str | None:
    return deploy.result if deploy else None


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _text(data: Any, *keys: str) -> str:
    """A scalar at `keys` as text; "" when missing or not a scalar (the spec may be invalid)."""
    value = _get(data, *keys)
    if isinstance(value, bool):
        return _yes_no(value)
    return str(value) if isinstance(value, _SCALARS) else ""


def _texts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(item) for item in value if isinstance(item, _SCALARS))


def _yes_no(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return ""


def _contact_href(contact: str) -> str:
    if _EMAIL.match(contact):
        return "mailto:" + contact
    return contact if _WEB.match(contact) else ""


def _count(number: int, noun: str) -> str:
    if not number:
        return ""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _masked(value: Any) -> Any:
    """Every value a page shows, masked by itself: masking the finished page misses a token
    the template glues to other text (`v{{ version }}` turns `ghp_...` into `vghp_...`)."""
    if not isinstance(value, str):
        return value
    masked = mask(value)
    return type(value)(masked) if hasattr(value, "__html__") else masked  # Markup stays safe


def _masked_cell(value: Any) -> str:
    return markdown_cell(_masked(value))


def _environment(template_dir: Path, html: bool) -> Any:
    from jinja2 import FileSystemLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(
        loader=FileSystemLoader(str(template_dir)),
        undefined=StrictUndefined,
        autoescape=html,
        finalize=_masked if html else _masked_cell,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
