"""Render validated specs into rendered/ through the engines' Jinja2 templates.

    rendered/local/NAME/       MLServer settings for the local target
    rendered/ENV/NAME/         Kubernetes manifests, per environment of the spec
    rendered/docker/NAME/      compose file for specs whose model is an image
    rendered/argocd/ENV.yaml   one Argo CD ApplicationSet per environment
    rendered/ENV/_rbac/        the Role (and its binding) a deployer needs in ENV's namespace,
                               and the Argo CD project of each team's Applications in ENV
    rendered/ENV/_admission/   the output rules as ValidatingAdmissionPolicies (admission.py)

Templates are an attack surface: they run in Jinja's sandbox with StrictUndefined, every value
reaches them through `tojson` (or `toyaml`, which encodes every scalar the same way), and every
rendered file is read back and checked (Kubernetes schemas, CRD schemas, Triton's config
grammar) before it is written: by yaml-rs where the template's own text reads the same under
YAML 1.1 and 1.2 (see plain), else by the strict loader. Output is deterministic: sorted
keys, no timestamps, LF endings. A template whose output is only whitespace makes no file:
resources only some specs need (an Ingress, a mesh policy) wrap their whole text in one `if`.

Every rendered object is then judged by the policy's outputRules (render/policy.py): a
template or templates/values.yaml edit cannot put into a cluster what the policy forbids.

`modelgate render` renders each spec in the worker process that validated it (the Renderer
is validation's follow stage), so that large repositories use every core once.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .. import paths
from ..check import artifacts, delivery, load, stand_in, targets
from ..check.load import Document
from ..check.platform import from_values
from ..check.workspace import Validation
from ..diagnostics import Diagnostic, Refused, Severity, error
from ..engines import (
    APPLICATION_FILE,
    APPLICATION_TEMPLATE,
    APPLICATIONSET_TEMPLATE,
    APPPROJECT_TEMPLATE,
    COMPOSE_TEMPLATE,
    ENGINES,
    RBAC_TEMPLATES,
    engine_for,
)
from ..parallel import fork_map
from . import admission, encode, images, kube_schemas, modelcar, readback, templates, view
from .policy import OutputObject, OutputPolicy, environment_of
from .sync import (
    ADMISSION,
    ARGOCD,
    DRIFT,
    RBAC,
    RENDERED_DIR,
    Directories,
    RenderedFile,
    drift,
    links,
    orphans,
    present,
    scope,
    unchanged,
    write,
)

if TYPE_CHECKING:
    from ..check.policy import Policy

# The stage's surface: render specs, then sync the files with rendered/ (sync.py).
__all__ = [
    "ADMISSION", "DRIFT", "RBAC", "RENDERED_DIR", "RenderedFile", "Renderer", "Rendering", "drift",
    "links", "missing_grants", "orphans", "present", "render_all", "render_document",
    "rendered_dir", "run", "scope", "unchanged",
    "values_document", "values_path", "write", "write_values",
]  # fmt: skip

TEMPLATE_DIR = templates.TEMPLATE_DIR
VALUES_FILE = "values.yaml"
LOCAL, DOCKER = "local", "docker"
PBTXT = ".pbtxt"  # not a manifest: Triton's model configuration, checked by its grammar
TEMPLATE_ERROR = "MG401"
NO_RUNTIME = "MG402"
RENDERED_INVALID = "MG403"
UNCHECKED = "MG405"
SHARED_PROJECT = "MG271"


@dataclass
class Rendering:
    files: list[RenderedFile] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    unchecked: set[str] = field(default_factory=set)  # kinds no schema was supplied for
    # the rendered objects awaiting the output policy; emptied once it has judged them
    objects: list[OutputObject] = field(default_factory=list)
    # (folder of rendered/, apiVersion, kind) of every manifest: what the deployer's Role grants
    kinds: set[tuple[str, str, str]] = field(default_factory=set)
    # (folder of rendered/, team, apiVersion, kind) of every spec's manifest: what the team's
    # Argo CD project in that environment allows
    team_kinds: set[tuple[str, str, str, str]] = field(default_factory=set)

    def extend(self, other: Rendering) -> None:
        self.files.extend(other.files)
        self.diagnostics.extend(other.diagnostics)
        self.unchecked |= other.unchecked
        self.kinds |= other.kinds
        self.team_kinds |= other.team_kinds

    def failed(self) -> bool:
        return any(d.severity is Severity.ERROR and not d.waived for d in self.diagnostics)

    def texts(self) -> dict[str, str]:
        return {str(item.path): item.content for item in self.files}


def rendered_dir(target: str, name: str) -> PurePosixPath:
    return PurePosixPath(RENDERED_DIR, target, name)


def values_path(root: Path) -> Path:
    return root / TEMPLATE_DIR / VALUES_FILE


def load_values(root: Path) -> dict[str, Any]:
    document = values_document(root)
    if document is None:
        return {
            "namespace": "{environment}",
            "imageMirror": "",
            "artifactStore": "",
            "repoURL": "",
            "targetRevision": "main",
            "storageInitializer": "",
            "artifactVerifier": "",
        }
    return document.data


def values_document(root: Path) -> Document | None:
    """templates/values.yaml with positions; None when the repository has none."""
    path = values_path(root)
    if paths.leads_out(path, root):
        raise paths.LinkOut(path, root)
    if not path.is_file():
        return None
    # values come from the repository like specs do: the same refusals (aliases, tags,
    # duplicate keys, numbers that are not finite), with positions
    shown = f"{TEMPLATE_DIR}/{VALUES_FILE}"
    document, problems = load.load_file(path, shown)
    if document is None or problems:
        raise Refused(f"{shown} is not plain data", problems)
    problems = images.check_values(document)
    if problems:
        raise Refused(f"{shown} names images that cannot be used as written", problems)
    problems = modelcar.check_values(document)
    if problems:
        raise Refused(f"{shown} names an artifact store that cannot be used", problems)
    return document


def write_values(root: Path, text: str) -> None:
    """Replace templates/values.yaml with `text` (its byte-order mark, if any, kept), through
    a temporary file beside it: a reader sees the old file or the new one, never half."""
    path = values_path(root)
    bom = "\ufeff" if paths.read_bytes(path, root).startswith(b"\xef\xbb\xbf") else ""
    temporary = path.with_name(f".{VALUES_FILE}.{os.getpid()}.tmp")
    descriptor = paths.open_for_write(temporary, root, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write((bom + text).encode("utf-8"))
        os.chmod(temporary, stat.S_IMODE(path.stat().st_mode))
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class Renderer:
    """What one render run shares: values, schemas and templates, each loaded once
    (compiled before any worker forks). Calling it renders one spec: it is the stage
    validation follows each valid spec with."""

    def __init__(
        self,
        root: Path,
        schemas: kube_schemas.Schemas | None = None,
        values: dict[str, Any] | None = None,
        environment: str | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.root = root
        self.schemas = schemas or kube_schemas.Schemas()
        # templates/values.yaml with its positions, for findings about a value written there
        self.values_document = values_document(root) if values is None else None
        self.values = (
            (self.values_document.data if self.values_document else load_values(root))
            if values is None
            else values
        )
        self.platform = from_values(self.values)  # what spec.endpoint may ask of the clusters
        # the environments Argo CD delivers (an undeclared one is Argo CD's, as view.repository)
        declared = delivery.from_values(self.values) or {}
        self.pushed = {name for name, env in declared.items() if not env.argocd}
        self.templates = templates.Templates(root)
        # only this environment's manifests and ApplicationSet, no local or docker files
        self.environment = environment
        # render --check: each spec's files are compared with rendered/ where they are made
        self.compare = False
        self._directories = Directories(root)
        # the policy's outputRules judge every object rendered (none: nothing is judged)
        self.output_policy = (
            OutputPolicy(policy, self.values, self.templates, self.values_document)
            if policy is not None and policy.output_rules
            else None
        )

    def __call__(self, document: Document) -> Rendering:
        rendering = _render_one(document, self)
        if self.compare:
            rendering.files = unchanged(rendering.files, self.root, self._directories)
        return rendering

    def preload(self) -> Renderer:
        """Compile every engine's templates now, so that forked workers inherit them."""
        names = {
            COMPOSE_TEMPLATE,
            APPLICATIONSET_TEMPLATE,
            APPPROJECT_TEMPLATE,
            APPLICATION_TEMPLATE,
            *RBAC_TEMPLATES,
        }
        names.update(admission.TEMPLATES)
        for engine in ENGINES.values():
            names.update(engine.templates)
        self.templates.preload(sorted(names))
        if self.output_policy is not None:
            self.output_policy.preload()
        return self


def run(
    validation: Validation,
    root: Path,
    renderer: Renderer,
    *,
    subset: bool,
    others: Sequence[Document] | None = None,
    roles: Iterable[str] = (),
) -> Rendering:
    """What a render run makes from a validation that rendered each spec as it checked it
    (`renderer` was its follow stage). A `subset` of the specs gets no ApplicationSets, which
    need every spec, unless `others` stand for the rest (their environments are all an
    ApplicationSet needs); nor deployer Roles, which need the kinds every spec of an
    environment renders, but for the environments `roles` names (whose specs are all in the
    subset). The result ends with a note naming the kinds no schema checked."""
    documents = validation.valid_documents()
    if subset:
        rendering = Rendering()
        for document in documents:
            rendering.extend(validation.followed[document.path])
        if others is not None:  # the other deployer Roles: see missing_grants
            _render_applicationsets(rendering, [*documents, *others], renderer, set(roles))
            rendering.files.sort(key=lambda item: item.path.parts)
    else:
        rendering = render_all(documents, root, renderer=renderer, rendered=validation.followed)
    if renderer.output_policy is not None:
        complete = not subset and renderer.environment is None
        rendering.diagnostics = waive_output_findings(
            rendering, renderer.output_policy.policy, root, complete
        )
    note = severity_note(rendering)
    if note:
        rendering.diagnostics.append(note)
    return rendering


def render_all(
    documents: Iterable[Document],
    root: Path,
    schemas: kube_schemas.Schemas | None = None,
    *,
    renderer: Renderer | None = None,
    rendered: Mapping[str, Rendering] | None = None,
) -> Rendering:
    """Every file the specs produce, the repository-wide ApplicationSets and deployer Roles
    included.
    `rendered` holds specs already rendered by `renderer` (as validation followed them)."""
    documents = list(documents)
    renderer = renderer or Renderer(root, schemas)
    rendered = rendered or {}
    missing = [document for document in documents if document.path not in rendered]
    if len(missing) >= PARALLEL_FROM:
        renderer.preload()
    fresh = fork_map(renderer, missing, PARALLEL_FROM)
    by_path = {**dict(zip((d.path for d in missing), fresh, strict=True)), **rendered}
    result = Rendering()
    for document in documents:
        result.extend(by_path[document.path])
    _render_applicationsets(result, documents, renderer)
    result.files.sort(key=lambda item: item.path.parts)
    return result


def _render_applicationsets(
    result: Rendering,
    documents: Sequence[Document],
    renderer: Renderer,
    roles: set[str] | None = None,
) -> None:
    """One ApplicationSet per environment of `documents` delivered by Argo CD, with the Role
    that lets a rollout sync its Applications (both need only the specs' names and
    environments), and the deployer's Role from the kinds rendered there (only in the
    environments `roles` names, when given), judged by the output rules."""
    made: dict[str, tuple[str, str]] = {}  # (team, environment) of each project name
    for env_view in view.repository(list(documents), renderer.values)["applicationsets"]:
        environment = env_view["environment"]
        if renderer.environment not in (None, environment):
            continue
        if env_view["delivery"] == ARGOCD:  # a pushed environment: no second manager
            output = PurePosixPath(RENDERED_DIR, ARGOCD, f"{environment}.yaml")
            _render_into(result, None, renderer, APPLICATIONSET_TEMPLATE, {"a": env_view}, output)
            syncer = view.syncer(environment, env_view["models"], renderer.values)
            _render_role(result, renderer, environment, syncer, f"{ARGOCD}-")
        if roles is None or environment in roles:
            _render_rbac(result, renderer, environment, env_view["delivery"] == ARGOCD)
            if env_view["delivery"] == ARGOCD:
                result.diagnostics.extend(_shared_projects(result, documents, environment, made))
            admission.render(result, renderer, environment, _render_into)
        if renderer.output_policy is not None:
            judged = {item.path for item in result.objects}
            texts = {str(f.path): f.content for f in result.files if str(f.path) in judged}
            result.diagnostics.extend(
                renderer.output_policy.check(result.objects, texts, [env_view["environment"]])
            )
            result.objects.clear()


def waive_output_findings(
    rendering: Rendering, policy: Policy, root: Path, complete: bool
) -> list[Diagnostic]:
    """The rendering's findings, output findings marked where a waiver for their spec (the
    NAME of rendered/TARGET/NAME/FILE) accepts them; with waivers' own findings."""
    from ..check.policy import apply_output_waivers

    rule_ids = policy.output_rule_ids()
    findings = [d for d in rendering.diagnostics if d.rule in rule_ids]
    cited = {d.path for d in findings}  # only these files' specs are asked about
    names = {
        path: item.path.parts[2]
        for item in rendering.files
        if len(item.path.parts) == 4 and (path := str(item.path)) in cited
    }
    others = [d for d in rendering.diagnostics if d.rule not in rule_ids]
    judged = apply_output_waivers(findings, names, policy, root, complete)
    return others + sorted(judged, key=Diagnostic.sort_key)


def _render_rbac(
    result: Rendering, renderer: Renderer, environment: str, argocd: bool = False
) -> None:
    """The deployer's Role in the environment's namespace, from the kinds rendered there; for
    Argo CD delivery, the Argo CD project of each team's Applications there, from the kinds
    that team's models render."""
    kinds = {(api, kind) for folder, api, kind in result.kinds if folder == environment}
    _render_role(result, renderer, environment, view.deployer(environment, kinds, renderer.values))
    if not argocd:
        return
    for team, team_kinds in sorted(_kinds_by_team(result, environment).items()):
        context = {"p": view.project(environment, team, team_kinds, renderer.values)}
        output = project_path(environment, team)
        _render_into(result, None, renderer, APPPROJECT_TEMPLATE, context, output)


def project_path(environment: str, team: str) -> PurePosixPath:
    """rendered/ENV/_rbac/argocd-appproject-TEAM.yaml: the team's Argo CD project in ENV."""
    name = _output(APPPROJECT_TEMPLATE).removesuffix(".yaml")
    return PurePosixPath(RENDERED_DIR, environment, RBAC, f"{ARGOCD}-{name}-{team}.yaml")


def _kinds_by_team(result: Rendering, environment: str) -> dict[str, set[tuple[str, str]]]:
    """(apiVersion, kind) of what each team's models render in the environment."""
    found: dict[str, set[tuple[str, str]]] = {}
    for folder, team, api_version, kind in result.team_kinds:
        if folder == environment:
            found.setdefault(team, set()).add((api_version, kind))
    return found


def _shared_projects(
    result: Rendering,
    documents: Sequence[Document],
    environment: str,
    made: dict[str, tuple[str, str]],
) -> list[Diagnostic]:
    """MG271 where a team's project in this environment is named like another team's in
    another environment (modelgate-a-b-c: team a-b in c, or team a in b-c): one would
    replace the other in Argo CD's namespace."""
    findings = []
    for team in sorted(_kinds_by_team(result, environment)):
        name = view.project_name(team, environment)
        other = made.setdefault(name, (team, environment))
        if other == (team, environment):
            continue
        message = (
            f"team {team}'s Argo CD project in {environment} would be {name}, the name of team "
            f"{other[0]}'s in {other[1]}: one would replace the other"
        )
        hint = (
            "rename the team (or the environment) so that modelgate-TEAM-ENV names one team "
            "and one environment"
        )
        document = next(
            (
                d
                for d in documents
                if d.data["metadata"].get("team") == team
                and environment in d.data["spec"].get("environments", ())
            ),
            None,
        )
        findings.append(
            document.finding(["metadata", "team"], SHARED_PROJECT, message, hint)
            if document is not None
            else error(str(project_path(environment, team)), 0, 0, SHARED_PROJECT, message, hint)
        )
    return findings


def _render_role(
    result: Rendering, renderer: Renderer, environment: str, context: dict, prefix: str = ""
) -> None:
    for template in RBAC_TEMPLATES:
        output = PurePosixPath(RENDERED_DIR, environment, RBAC, prefix + _output(template))
        _render_into(result, None, renderer, template, {"r": context}, output)


def missing_grants(
    rendering: Rendering, root: Path, rendered_roles: Iterable[str] = ()
) -> list[Diagnostic]:
    """For a check of some specs: MG404 at each deployer Role (rendered/ENV/_rbac/role.yaml)
    that does not let the deployer apply a kind those specs render in ENV, but the Roles
    that were rendered. The Role is made from the kinds every spec renders there, so only a
    full check can tell whether it grants one no spec needs any more."""
    findings = []
    not_environments = {ARGOCD, LOCAL, DOCKER, *rendered_roles}
    for environment in sorted({folder for folder, _, _ in rendering.kinds} - not_environments):
        needed = {
            (api_version.rpartition("/")[0], view.plural(kind))
            for folder, api_version, kind in rendering.kinds
            if folder == environment
        }
        path = PurePosixPath(RENDERED_DIR, environment, RBAC, "role.yaml")
        missing = sorted(needed - _granted(root, path))
        if missing:
            named = ", ".join(f"{group or 'core'}/{resource}" for group, resource in missing)
            findings.append(
                error(
                    str(path),
                    0,
                    0,
                    DRIFT,
                    f"{path} does not let the deployer apply {named}, which the checked "
                    "specs render",
                    "run `modelgate render` and commit rendered/",
                )
            )
    return findings + _missing_in_projects(rendering, root, not_environments)


def _missing_in_projects(
    rendering: Rendering, root: Path, not_environments: set[str]
) -> list[Diagnostic]:
    """MG404 at each team's Argo CD project (rendered/ENV/_rbac/argocd-appproject-TEAM.yaml)
    that is missing or does not allow a kind the checked specs of that team render in ENV,
    where Argo CD delivers ENV (its specs render application.json for the generator)."""
    delivered = {
        item.path.parts[1]
        for item in rendering.files
        if len(item.path.parts) == 4 and item.path.name == APPLICATION_FILE
    }
    findings = []
    for environment in sorted(delivered - not_environments):
        for team, kinds in sorted(_kinds_by_team(rendering, environment).items()):
            path = project_path(environment, team)
            needed = {(api.rpartition("/")[0], kind) for api, kind in kinds}
            allowed = _allowed_kinds(root, path)
            missing = sorted(needed - (allowed or set()))
            if not missing:
                continue
            named = ", ".join(f"{group or 'core'}/{kind}" for group, kind in missing)
            state = (
                "is missing: Argo CD makes no Application of a project that does not exist"
                if allowed is None
                else f"does not let team {team}'s Applications sync {named}, which the checked "
                "specs render"
            )
            hint = "run `modelgate render` and commit rendered/ (a cluster admin applies _rbac/)"
            findings.append(error(str(path), 0, 0, DRIFT, f"{path} {state}", hint))
    return findings


def _allowed_kinds(root: Path, path: PurePosixPath) -> set[tuple[str, str]] | None:
    """(API group, kind) pairs a committed Argo CD project lets its Applications sync; None
    when the file is missing, a link or does not load."""
    if paths.leads_out(root / path, root) or (root / path).is_symlink():
        return None
    try:
        document, _ = load.load_bytes(paths.read_bytes(root / path, root), str(path))
    except OSError:
        return None
    if document is None or not isinstance(document.data.get("spec"), dict):
        return None
    listed = document.data["spec"].get("namespaceResourceWhitelist")
    entries = listed if isinstance(listed, list) else []
    return {
        (str(entry.get("group")), str(entry.get("kind")))
        for entry in entries
        if isinstance(entry, dict)
    }


def _granted(root: Path, path: PurePosixPath) -> set[tuple[str, str]]:
    """(API group, resource) pairs a committed Role lets its subject apply; none when the
    file is missing, a link or not such a Role."""
    if paths.leads_out(root / path, root) or (root / path).is_symlink():
        return set()
    try:
        document, _ = load.load_bytes(paths.read_bytes(root / path, root), str(path))
    except OSError:
        return set()
    rules = document.data.get("rules") if document is not None else None
    granted = set()
    for rule in rules if isinstance(rules, list) else []:
        if not isinstance(rule, dict) or not set(view.APPLY_VERBS) <= set(rule.get("verbs") or []):
            continue
        for group in rule.get("apiGroups") or []:
            granted.update((group, resource) for resource in rule.get("resources") or [])
    return granted


PARALLEL_FROM = 64  # specs; below this a second process costs more than it saves


def render_document(
    document: Document,
    root: Path,
    schemas: kube_schemas.Schemas | None = None,
    values: dict[str, Any] | None = None,
    local_only: bool = False,
    policy: Policy | None = None,
) -> Rendering:
    """The document's files; `local_only` for what the local target needs and nothing else.
    With a `policy`, its output rules judge them (waivers applied) as `modelgate render`'s do."""
    rendering = _render_one(document, Renderer(root, schemas, values, policy=policy), local_only)
    if policy is not None and policy.output_rules:
        rendering.diagnostics = waive_output_findings(rendering, policy, root, complete=False)
    return rendering


def _render_one(document: Document, renderer: Renderer, local_only: bool = False) -> Rendering:
    with encode.one_spec():
        return _render_spec(document, renderer, local_only)


def _render_spec(document: Document, renderer: Renderer, local_only: bool) -> Rendering:
    spec = document.data["spec"]
    engine = engine_for(spec)
    name = document.data["metadata"]["name"]
    shared = view.base(document)  # computed once: every file of the spec shows it
    result = Rendering()
    # local files serve a repository artifact (a model image runs on the docker target, a
    # remote one on clusters), or the stand-in the spec names for the local target
    if renderer.environment is None and not _render_local(result, document, renderer, shared):
        return result
    if local_only:
        return result
    environments = [e for e in spec["environments"] if renderer.environment in (None, e)]
    unpinned = images.unpinned(document, renderer.values) if environments else []
    if unpinned:  # no manifest runs an engine image by tag
        result.diagnostics.extend(unpinned)
        return result
    if environments and modelcar.oci_store(renderer.values) is not None:
        refused = _model_image(document, renderer, shared)
        if refused:
            result.diagnostics.append(refused)
            return result
    for environment in environments:
        out_dir = rendered_dir(environment, name)
        context = {
            "v": view.cluster(document, environment, renderer.values, shared, renderer.platform)
        }
        if engine.model_config:
            _render_model_config(result, document, renderer, engine.model_config, context)
        for template in engine.cluster:
            _render_into(result, document, renderer, template, context, out_dir / _output(template))
        if environment not in renderer.pushed:  # what the ApplicationSet's generator reads
            parameters = {"v": view.application(document)}
            output = out_dir / APPLICATION_FILE
            _render_into(result, document, renderer, APPLICATION_TEMPLATE, parameters, output)
    if spec["model"].get("image") and renderer.environment is None:
        out_dir = rendered_dir(DOCKER, name)
        context = {"v": view.for_compose(view.docker(document, shared))}
        _render_into(
            result,
            document,
            renderer,
            COMPOSE_TEMPLATE,
            context,
            out_dir / _output(COMPOSE_TEMPLATE),
        )
    if renderer.output_policy is not None:
        result.diagnostics.extend(_judge(result, renderer.output_policy, document))
    return result


def _model_image(
    document: Document, renderer: Renderer, shared: dict[str, Any]
) -> Diagnostic | None:
    """With an oci:// artifact store, a repository artifact is served as its model image by
    digest (render/modelcar.py): the digest goes into the shared view, computed from the
    files, offline. A spec whose pods cannot pull a model image is refused (MG250)."""
    spec = document.data["spec"]
    artifact = spec["model"].get("artifact", "")
    if not artifact or "://" in artifact:
        return None
    unserved = modelcar.unserved(document)
    if unserved is not None:
        return unserved
    try:
        path = modelcar.artifact_path(renderer.root, artifact)
        base = modelcar.base_of(renderer.values)
        shared[view.MODEL_IMAGE] = modelcar.image_digest(path, artifact, base)
    except artifacts.Unhashable as exc:  # validation refuses it first; a race is said so
        return document.finding(
            ["spec", "model", "artifact"], artifacts.ARTIFACT_UNHASHABLE, str(exc), exc.hint
        )
    return None


def _render_local(
    result: Rendering, document: Document, renderer: Renderer, shared: dict[str, Any]
) -> bool:
    """Render rendered/local/NAME/ when the local target runs the spec, from its stand-in
    when it names one; False when it cannot be rendered (the finding is in `result`)."""
    served = stand_in.served(document)
    spec = served.data["spec"]
    engine = engine_for(spec)
    if not engine.local or targets.LOCAL not in targets.targets_of(document.data["spec"]):
        return True
    if served is not document:
        shared = view.base(served)
    if engine.runtimes and shared["runtime"] is None:
        result.diagnostics.append(
            served.finding(
                ["spec", "engine"],
                NO_RUNTIME,
                f"engine {engine.name} has no default runtime for format {spec['model']['format']}",
                "set spec.engine.runtime to the implementation that loads this model",
            )
        )
        return False
    out_dir = rendered_dir(LOCAL, served.data["metadata"]["name"])
    context = {"v": view.local(served, out_dir, shared)}
    for template in engine.local:
        _render_into(result, served, renderer, template, context, out_dir / _output(template))
    return True


def _judge(result: Rendering, judge: OutputPolicy, document: Document) -> list[Diagnostic]:
    """The output policy's findings on one spec's objects, environment by environment (a
    compose file under the strictest of the spec's environments)."""
    environments = document.data["spec"]["environments"]
    groups: dict[tuple[str, ...], list[OutputObject]] = {}
    for obj in result.objects:
        groups.setdefault(tuple(environment_of(obj.path, environments)), []).append(obj)
    result.objects = []
    texts = result.texts() if groups else {}
    return [
        finding
        for group_environments, objects in groups.items()
        for finding in judge.check(objects, texts, group_environments, document)
    ]


def _render_model_config(
    result: Rendering,
    document: Document,
    renderer: Renderer,
    template: str,
    context: dict[str, Any],
) -> None:
    from .pbtxt import parse_error

    text = _render_text(result, document.path, renderer, template, context)
    context["v"]["triton_config"] = text or ""
    problem = text is not None and parse_error(text)
    if problem:
        result.diagnostics.append(
            error(
                document.path,
                0,
                0,
                RENDERED_INVALID,
                f"triton config.pbtxt is not valid: {problem}",
                f"fix templates/{template}",
            )
        )


def _output(template: str) -> str:
    """The file a template makes: its name without ".j2" (template names use '/')."""
    return template.rsplit("/", 1)[-1].removesuffix(".j2")


def _render_into(
    result: Rendering,
    document: Document | None,
    renderer: Renderer,
    template: str,
    context: dict[str, Any],
    output: PurePosixPath,
) -> None:
    source = document.path if document else str(output)
    text = _render_text(result, source, renderer, template, context)
    if text is None:
        return
    if not text.strip():  # a resource this spec does not need (an Ingress, a mesh policy)
        return
    text = text.rstrip("\n") + "\n"
    problem, unchecked, data = _parse_back(
        output, text, renderer.schemas, renderer.templates.plain_safe(template)
    )
    if problem:
        result.diagnostics.append(
            error(
                source,
                0,
                0,
                RENDERED_INVALID,
                f"{output} is not valid: {problem}",
                f"the template {template} produced a broken file; fix it",
            )
        )
        return
    if unchecked:
        result.unchecked.add(unchecked)
    rbac = len(output.parts) > 2 and output.parts[2] in (RBAC, ADMISSION)
    if output.suffix not in (".json", PBTXT) and output.name != "compose.yaml" and not rbac:
        # what the deployer's Role must grant in this folder of rendered/ (a cluster admin
        # applies _rbac/ itself)
        api_version, kind = str(data.get("apiVersion")), str(data.get("kind"))
        result.kinds.add((output.parts[1], api_version, kind))
        if document is not None:
            team = document.data["metadata"]["team"]
            result.team_kinds.add((output.parts[1], team, api_version, kind))
    result.files.append(RenderedFile(output, text))
    if renderer.output_policy is not None and output.suffix not in (".json", PBTXT):
        result.objects.append(OutputObject(str(output), data, template))


def _render_text(
    result: Rendering, source: str, renderer: Renderer, template: str, context: dict[str, Any]
) -> str | None:
    """The template's output, or None with an MG401 finding when the template fails."""
    from jinja2 import TemplateError

    try:
        return renderer.templates.get(template).render(context)
    except TemplateError as exc:
        if getattr(exc, "link_out", False):
            result.diagnostics.append(
                error(
                    source,
                    0,
                    0,
                    paths.LINK_OUT,
                    str(exc.message),
                    "templates are files of this repository: replace the link with the file",
                )
            )
            return None
        result.diagnostics.append(
            error(
                source,
                0,
                0,
                TEMPLATE_ERROR,
                f"template {template} failed: {exc}",
                "fix the template; values reach it through `tojson`",
            )
        )
        return None


def _parse_back(
    output: PurePosixPath, text: str, schemas: kube_schemas.Schemas, plain_safe: bool
) -> tuple[str | None, str, Any]:
    """(problem, kind left unchecked for want of a schema, the data read back)."""
    if output.suffix == PBTXT:  # a Triton model configuration (the local target's)
        from .pbtxt import parse_error

        return parse_error(text), "", {}
    if output.suffix == ".json":
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            return str(exc), "", None
        return (None if isinstance(parsed, dict) else "expected a JSON object"), "", parsed
    manifest, problem = readback.read_back(text, str(output), plain_safe=plain_safe)
    if manifest is None:
        return problem, "", None
    if output.name == "compose.yaml":
        return (None if "services" in manifest else "a compose file needs services"), "", manifest
    problem, found = kube_schemas.check(manifest, schemas)
    unchecked = "" if found else f"{manifest.get('apiVersion')} {manifest.get('kind')}"
    return problem, unchecked, manifest


def severity_note(rendering: Rendering) -> Diagnostic | None:
    """An info finding naming the custom resource kinds no schema was supplied for."""
    if not rendering.unchecked:
        return None
    kinds = ", ".join(sorted(rendering.unchecked))
    return Diagnostic(
        RENDERED_DIR,
        0,
        0,
        UNCHECKED,
        Severity.INFO,
        f"not checked against a schema (no CRD supplied): {kinds}",
        "run `modelgate crds pull` to fill crds/ with the cluster's CustomResourceDefinitions "
        "(or pass --crds DIR)",
    )
