"""Output checks on where rendered objects land: each of a kind the policy lets be rendered,
each in a namespace its environment may use, and nothing cluster-scoped outside the deployer's
Roles (rendered/ENV/_rbac/, which a cluster admin applies and a full check judges whole).

Where an object stands in rendered/ says whose it is: rendered/ENV/NAME/ a spec's in ENV,
rendered/ENV/_rbac/ the deployer's Roles of ENV (in ENV's namespaces, and the Argo CD
namespace where its Applications live), rendered/argocd/ENV.yaml the ApplicationSet of ENV (in
the Argo CD namespace, its Applications' destination in ENV's). The compose and local files
run on no cluster, so they are not judged here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ...engines import APPLICATION_FILE
from .rendered import JsonPath, OutputContext, OutputObject
from .rules import Rule

Finding = tuple[OutputObject, JsonPath, str]
ARGOCD = "argocd"  # rendered/argocd/: the ApplicationSets; the key of Argo CD's namespaces
RBAC = "_rbac"
CLUSTER_SCOPED_FOLDERS = "clusterScopedFolders"
NOT_CLUSTERS = ("local", "docker")  # rendered/ folders no cluster reads
ANY_ENVIRONMENT = "*"
DEFAULT_BRANCH = "main"
REVISION_VALUE = "targetRevision"  # the key of templates/values.yaml ApplicationSets render
DESTINATION = ["spec", "template", "spec", "destination", "namespace"]
# in argocdProjects: an Application's team, which an ApplicationSet's Applications take from
# the file its git files generator reads in each model's folder (rendered/ENV/NAME/)
TEAM, TEAM_PARAMETER = "{team}", "{{.team}}"
PATH_PARAMETER = "{{.path.path}}"  # the folder a git files generator found its file in
# Kubernetes' own cluster-scoped kinds and those of the CRDs the engines use; an object of
# another kind with no namespace is taken as cluster-scoped too
CLUSTER_SCOPED = frozenset(
    {
        "APIService",
        "CSIDriver",
        "CSINode",
        "CertificateSigningRequest",
        "ClusterIssuer",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterServingRuntime",
        "ClusterStorageContainer",
        "CustomResourceDefinition",
        "FlowSchema",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "RuntimeClass",
        "StorageClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
    }
)


def rendered_kinds(
    rule: Rule, objects: Sequence[OutputObject], context: OutputContext
) -> Iterator[Finding]:
    """Every object a cluster receives is of a kind the policy parameter renderedKinds lists."""
    allowed = set(context.parameters.get("renderedKinds") or ())
    for obj in _on_clusters(objects):
        if obj.kind not in allowed:
            yield (
                obj,
                ["kind"],
                f"{obj.kind or 'an object with no kind'} {obj.name} is not a kind modelgate may "
                "render (policy parameter renderedKinds)",
            )


def rendered_namespaces(
    rule: Rule, objects: Sequence[OutputObject], context: OutputContext
) -> Iterator[Finding]:
    """Every namespaced object is in a namespace its folder of rendered/ may use (policy
    parameter renderedNamespaces), and an ApplicationSet's Applications deploy into one of
    its environment's."""
    for obj in _on_clusters(objects):
        namespace = _metadata(obj).get("namespace")
        folder, environment = _room(obj)
        allowed = _namespaces(context.parameters, folder)
        if folder != ARGOCD and obj.path.split("/")[2] == RBAC:
            allowed |= _namespaces(context.parameters, ARGOCD)
        if isinstance(namespace, str) and namespace not in allowed:
            yield (
                obj,
                ["metadata", "namespace"],
                f"{obj.kind} {obj.name} is rendered into namespace {namespace!r}, which "
                f"{_whose(folder)} may not use (allowed: {', '.join(sorted(allowed))})",
            )
        if obj.kind == "ApplicationSet" and environment:
            destination = _at(obj.data, DESTINATION)
            wanted = _namespaces(context.parameters, environment)
            if destination not in wanted:
                yield (
                    obj,
                    DESTINATION if isinstance(destination, str) else DESTINATION[:-1],
                    f"ApplicationSet {obj.name} deploys into namespace {destination!r}, which "
                    f"environment {environment} may not use (allowed: {', '.join(sorted(wanted))})",
                )


def cluster_scoped(
    rule: Rule, objects: Sequence[OutputObject], context: OutputContext
) -> Iterator[Finding]:
    """No cluster-scoped object (a kind Kubernetes keeps outside namespaces, or any object
    that names no namespace) is rendered outside the folders of rendered/ENV/ a cluster admin
    applies (policy parameter clusterScopedFolders: _rbac/ and _admission/)."""
    folders = context.parameters.get(CLUSTER_SCOPED_FOLDERS) or (RBAC,)
    for obj in _on_clusters(objects):
        if obj.path.split("/")[2] in folders:
            continue
        namespace = _metadata(obj).get("namespace")
        if obj.kind in CLUSTER_SCOPED:
            yield (
                obj,
                ["kind"],
                f"{obj.kind} {obj.name} is cluster-scoped: it reaches past every namespace, "
                "and only what a cluster admin applies (rendered/ENV/"
                f"{', rendered/ENV/'.join(folders)}, policy parameter {CLUSTER_SCOPED_FOLDERS}) "
                "may be rendered so",
            )
        elif not isinstance(namespace, str) or not namespace:
            yield (
                obj,
                ["metadata"],
                f"{obj.kind} {obj.name} names no namespace: it is cluster-scoped, or lands "
                "wherever it is applied",
            )


def _on_clusters(objects: Sequence[OutputObject]) -> Iterator[OutputObject]:
    for obj in objects:
        parts = obj.path.split("/")
        if len(parts) >= 3 and parts[1] not in NOT_CLUSTERS:
            yield obj


def _room(obj: OutputObject) -> tuple[str, str]:
    """(folder of rendered/, environment): (ENV, "") for rendered/ENV/..., ("argocd", ENV)
    for the ApplicationSet rendered/argocd/ENV.yaml."""
    parts = obj.path.split("/")
    if parts[1] == ARGOCD:
        return ARGOCD, parts[-1].rsplit(".", 1)[0]
    return parts[1], ""


def environment_namespaces(parameters: Mapping[str, Any], environment: str) -> set[str]:
    """The namespaces an environment's objects may go to (policy parameter renderedNamespaces)."""
    return _namespaces(parameters, environment)


def _namespaces(parameters: Mapping[str, Any], folder: str) -> set[str]:
    """The namespaces `folder` (an environment, or argocd) may use, {environment} replaced."""
    table = parameters.get("renderedNamespaces") or {}
    listed = table.get(folder, table.get(ANY_ENVIRONMENT, [])) if isinstance(table, dict) else []
    return {str(item).replace("{environment}", folder) for item in listed or ()}


def _whose(folder: str) -> str:
    return "Argo CD's objects" if folder == ARGOCD else f"environment {folder}"


def _metadata(obj: OutputObject) -> dict[str, Any]:
    metadata = obj.data.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _at(data: Any, path: JsonPath) -> Any:
    for part in path:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def protected_revision(
    rule: Rule, objects: Sequence[OutputObject], context: OutputContext
) -> Iterator[Finding]:
    """An ApplicationSet's git generators and its Applications' sources follow the protected
    branch (the policy parameter protectedBranch), not a pull request's ref or a commit."""
    branch = context.parameters.get("protectedBranch", DEFAULT_BRANCH)
    for obj in objects:
        if obj.kind != "ApplicationSet":
            continue
        for path, revision in _revisions(obj.data):
            if revision not in (branch, f"refs/heads/{branch}"):
                yield (
                    obj,
                    path,
                    f"ApplicationSet {obj.name} syncs revision {revision!r}"
                    f"{_written(context, revision)}, not the protected branch {branch}",
                )


def _revisions(data: dict[str, Any]) -> Iterator[tuple[JsonPath, Any]]:
    """(path, revision) of each git generator's revision and each Application source's
    targetRevision (a missing one is Argo CD's HEAD: whatever the repository's default is)."""
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    generators = spec.get("generators") if isinstance(spec.get("generators"), list) else []
    for index, generator in enumerate(generators):
        git = generator.get("git") if isinstance(generator, dict) else None
        if isinstance(git, dict):
            yield ["spec", "generators", index, "git", "revision"], git.get("revision", "HEAD")
    application = _at(spec, ["template", "spec"])
    if not isinstance(application, dict):
        return
    base: JsonPath = ["spec", "template", "spec"]
    if isinstance(application.get("source"), dict):
        source = application["source"]
        yield [*base, "source", "targetRevision"], source.get("targetRevision", "HEAD")
    sources = application.get("sources") if isinstance(application.get("sources"), list) else []
    for index, source in enumerate(sources):
        if isinstance(source, dict):
            where: JsonPath = [*base, "sources", index, "targetRevision"]
            yield where, source.get("targetRevision", "HEAD")


def _written(context: OutputContext, revision: Any) -> str:
    """Where templates/values.yaml sets the revision, when it is the one rendered."""
    document = context.values_document
    if document is None or context.values.get(REVISION_VALUE) != revision:
        return ""
    line, col = document.locate([REVISION_VALUE])
    return f" (templates/values.yaml:{line}:{col} {REVISION_VALUE})"


def argocd_project(
    rule: Rule, objects: Sequence[OutputObject], context: OutputContext
) -> Iterator[Finding]:
    """An environment's ApplicationSet makes Applications of a project the policy parameter
    argocdProjects lists for it ({environment} stands for its name, {team} for the team its
    generator reads for each Application): its team's restricted one."""
    for obj in objects:
        folder, environment = _room(obj)
        if obj.kind != "ApplicationSet" or folder != ARGOCD:
            continue
        wanted = {
            str(name).replace("{environment}", environment).replace(TEAM, TEAM_PARAMETER)
            for name in context.parameters.get("argocdProjects") or ()
        }
        where: JsonPath = ["spec", "template", "spec", "project"]
        found = _at(obj.data, where)
        if found not in wanted:
            yield (
                obj,
                where if isinstance(found, str) else where[:-1],
                f"ApplicationSet {obj.name} makes Applications of project {found!r}, not of "
                f"environment {environment}'s ({', '.join(sorted(wanted))})",
            )


def team_generator(
    rule: Rule, objects: Sequence[OutputObject], context: OutputContext
) -> Iterator[Finding]:
    """An environment's ApplicationSet takes each Application's team, and so its project, from
    the file the render writes into the model's folder and render --check compares: one git
    files generator reading rendered/ENV/*/application.json (excludes may narrow it), with
    no values or other generators that could name a team, and each Application's source is
    the folder the file was found in."""
    for obj in objects:
        folder, environment = _room(obj)
        if obj.kind != "ApplicationSet" or folder != ARGOCD:
            continue
        wanted = f"rendered/{environment}/*/{APPLICATION_FILE}"
        spec = obj.data.get("spec") if isinstance(obj.data.get("spec"), dict) else {}
        generators = spec.get("generators")
        if not isinstance(generators, list) or len(generators) != 1:
            yield (
                obj,
                ["spec"],
                f"ApplicationSet {obj.name} has {_count(generators)} generators: only one git "
                f"files generator reading {wanted} says each Application's team",
            )
            continue
        yield from _files_generator(obj, generators[0], wanted)
        where: JsonPath = ["spec", "template", "spec", "source"]
        source = _at(obj.data, where)
        if not isinstance(source, dict) or source.get("path") != PATH_PARAMETER:
            found = source.get("path") if isinstance(source, dict) else None
            yield (
                obj,
                [*where, "path"] if isinstance(found, str) else where,
                f"ApplicationSet {obj.name}'s Applications sync {found!r}, not the folder whose "
                f"{APPLICATION_FILE} named their team ({PATH_PARAMETER})",
            )


def _files_generator(obj: OutputObject, generator: Any, wanted: str) -> Iterator[Finding]:
    where: JsonPath = ["spec", "generators", 0]
    git = generator.get("git") if isinstance(generator, dict) else None
    if not isinstance(git, dict) or set(generator) != {"git"}:
        kinds = ", ".join(sorted(generator)) if isinstance(generator, dict) else "none"
        yield (
            obj,
            where,
            f"ApplicationSet {obj.name}'s generator is {kinds}, not a git files generator "
            f"reading {wanted}: another could name any team for any folder",
        )
        return
    for key in ("directories", "values", "pathParamPrefix"):
        if key in git:
            yield (
                obj,
                [*where, "git", key],
                f"ApplicationSet {obj.name}'s git generator sets {key}: only the files "
                f"{wanted} say each Application's team",
            )
    files = git.get("files") if isinstance(git.get("files"), list) else []
    read = [f.get("path") for f in files if isinstance(f, dict) and not f.get("exclude")]
    if read != [wanted]:
        yield (
            obj,
            [*where, "git", "files"] if files else [*where, "git"],
            f"ApplicationSet {obj.name} reads {', '.join(map(repr, read)) or 'no files'}: "
            f"only {wanted}, which the render writes with each model's team",
        )


def _count(generators: Any) -> int:
    return len(generators) if isinstance(generators, list) else 0


def restricted_project(
    rule: Rule, objects: Sequence[OutputObject], context: OutputContext
) -> Iterator[Finding]:
    """An environment's Argo CD project allows only what the policy lets its objects be: the
    repositories of gitRepositories, the clusters of argocdDestinations and the environment's
    namespaces, the kinds of renderedKinds, and of the cluster's kinds only the environment's
    Namespace (which CreateNamespace=true makes)."""
    parameters = context.parameters
    for obj in objects:
        if obj.kind != "AppProject":
            continue
        environment = obj.path.split("/")[1]
        namespaces = _namespaces(parameters, environment)
        spec = obj.data.get("spec") if isinstance(obj.data.get("spec"), dict) else {}
        yield from _listed(obj, spec, "sourceRepos", set(parameters.get("gitRepositories") or ()))
        for index, destination in enumerate(_items(spec, "destinations")):
            server, namespace = destination.get("server"), destination.get("namespace")
            if server not in (parameters.get("argocdDestinations") or ()) or (
                namespace not in namespaces
            ):
                yield (
                    obj,
                    ["spec", "destinations", index],
                    f"AppProject {obj.name} lets its Applications deploy to {namespace!r} of "
                    f"{server!r}: only environment {environment}'s namespaces "
                    f"({', '.join(sorted(namespaces))}) of the allowed clusters",
                )
        for index, entry in enumerate(_items(spec, "clusterResourceWhitelist")):
            if (entry.get("group"), entry.get("kind")) != ("", "Namespace") or (
                entry.get("name") not in namespaces
            ):
                yield (
                    obj,
                    ["spec", "clusterResourceWhitelist", index],
                    f"AppProject {obj.name} lets its Applications make cluster-scoped "
                    f"{entry.get('kind')!r} objects named {entry.get('name', '*')!r}: only the "
                    "environment's own Namespace",
                )
        if not isinstance(spec.get("namespaceResourceWhitelist"), list):
            yield (
                obj,
                ["spec"],
                f"AppProject {obj.name} has no namespaceResourceWhitelist: Argo CD then allows "
                "every namespaced kind",
            )
        kinds = set(parameters.get("renderedKinds") or ())
        for index, entry in enumerate(_items(spec, "namespaceResourceWhitelist")):
            if entry.get("kind") not in kinds or "*" in str(entry.get("group")):
                yield (
                    obj,
                    ["spec", "namespaceResourceWhitelist", index],
                    f"AppProject {obj.name} allows {entry.get('group')!r} {entry.get('kind')!r}, "
                    "not a kind modelgate may render (policy parameter renderedKinds)",
                )


def _listed(obj: OutputObject, spec: dict[str, Any], key: str, allowed: set) -> Iterator[Finding]:
    listed = spec.get(key)
    if not isinstance(listed, list) or not listed:
        yield obj, ["spec"], f"AppProject {obj.name} names no {key}"
        return
    for index, item in enumerate(listed):
        if item not in allowed:
            yield (
                obj,
                ["spec", key, index],
                f"AppProject {obj.name} allows {item!r} in {key}: only "
                f"{', '.join(sorted(map(str, allowed)))}",
            )


def _items(spec: dict[str, Any], key: str) -> list[dict[str, Any]]:
    listed = spec.get(key)
    return [item for item in listed if isinstance(item, dict)] if isinstance(listed, list) else []


PLACEMENT_CHECKS = {
    "argocd_project": argocd_project,
    "team_generator": team_generator,
    "restricted_project": restricted_project,
    "protected_revision": protected_revision,
    "rendered_kinds": rendered_kinds,
    "rendered_namespaces": rendered_namespaces,
    "cluster_scoped": cluster_scoped,
}
