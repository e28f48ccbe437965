"""The built-in diagnostic codes outside the policy rules: loading, schema, identity,
render, deploy, smoke, policy files and waivers. Reporters describe them from here."""

from __future__ import annotations

from .diagnostics import RuleInfo, Severity

_CODES: dict[str, tuple[str, str]] = {
    "MG101": ("invalid YAML", "fix the YAML syntax at the position shown"),
    "MG102": ("duplicate key", "keep one of the two keys; YAML parsers disagree on which wins"),
    "MG103": ("more than one YAML document", "put one model deployment per file"),
    "MG104": ("YAML anchor or alias", "write values out in full; aliases can hide expansion bombs"),
    "MG105": ("file larger than 1 MiB", "a spec is a few kilobytes; move data out of it"),
    "MG106": ("file is not UTF-8", "save the file as UTF-8"),
    "MG107": ("empty file", "write a spec or delete the file"),
    "MG108": ("YAML tag not allowed", "specs hold plain data only: remove the tag"),
    "MG109": ("metadata.name does not match the file name", "rename the file or the spec"),
    "MG110": ("document is not a mapping", "start from an example spec"),
    "MG111": ("file cannot be read", "check the path and its permissions"),
    "MG112": ("nesting too deep", "flatten the value"),
    "MG113": ("mapping key is not a string", "use plain words as keys"),
    "MG114": ("reserved environment name", "name environments after where they run"),
    "MG115": ("spec is a symlink out of the repository", "commit the spec itself"),
    "MG116": ("number is not finite", "write a finite number, or quote it if it is text"),
    "MG117": (".modelgate/ is committed", "untrack .modelgate/ and list it in .gitignore"),
    "MG118": ("a link out of the repository", "commit the file itself, not a link to it"),
    "MG119": (
        "artifact differs from its digest",
        "review the artifact, then update sha256 or treeSha256 (`modelgate hash PATH`)",
    ),
    "MG120": ("artifact cannot be hashed", "keep regular files and folders only in an artifact"),
    "MG121": (
        "digest field does not fit the artifact",
        "name a file by sha256 and a folder by treeSha256",
    ),
    "MG122": (
        "placeholder where a real value belongs",
        "write the real value the hint names in place of the placeholder",
    ),
    "MG125": (
        "not checked again: unchanged since the base of the change (information)",
        "the full checks run where the change is merged",
    ),
    "MG201": ("schema violation", "see the field's description in docs/spec.md"),
    "MG202": ("unknown field", "remove the field or fix its spelling"),
    "MG255": (
        "unquoted value YAML reads as a number, boolean or null where text is expected",
        "quote the value as it is written",
    ),
    "MG210": (
        "endpoint setting the platform does not provide",
        "declare it in templates/values.yaml (exposure), or change the setting",
    ),
    "MG211": ("endpoint setting this engine cannot honour", "change the setting or the engine"),
    "MG212": ("endpoint settings contradict each other", "keep the settings that agree"),
    "MG213": ("API key variable set twice", "let auth.secretRef set it; remove the env entry"),
    "MG214": ("two environments claim one host", "give environments their own host pattern"),
    "MG215": ("invalid exposure section in templates/values.yaml", "fix it at the position"),
    "MG216": (
        "environment not declared",
        "name an environment templates/values.yaml declares, or declare it there",
    ),
    "MG217": ("invalid environments section in templates/values.yaml", "fix it at the position"),
    "MG220": ("engine cannot scale to zero", "set minReplicas to 1 or more, or a mode that can"),
    "MG221": ("engine cannot split traffic", "remove canaryTrafficPercent, or use a mode that can"),
    "MG222": ("engine does not scale on this metric", "use a metric the engine scales on"),
    "MG223": ("engine cannot take this target", "write a target the engine's autoscaler takes"),
    "MG224": ("engine does not speak this protocol", "set a protocol the engine speaks"),
    "MG225": ("engine cannot serve this packaging", "package the model as the engine serves it"),
    "MG226": ("setting has no effect on this engine", "remove the setting"),
    "MG227": ("pod setting on an engine without a pod", "set it on the cluster's server instead"),
    "MG228": ("host access is never rendered", "remove the host network, ports or paths"),
    "MG229": (
        "GPU the engine's image cannot use",
        "name an image built for the vendor (spec.engine.image), or a vendor the image is "
        "built for, or no GPU",
    ),
    "MG256": (
        "engine's image needs a GPU the spec does not ask for",
        "set spec.resources.gpu, or name a CPU build of the engine (spec.engine.image)",
    ),
    "MG285": (
        "smoke request names a model the server does not serve",
        "name the model as clients call it: the spec's metadata.name",
    ),
    "MG286": (
        "engine argument modelgate sets itself",
        "remove it from spec.engine.args; modelgate renders it from the spec",
    ),
    "MG230": ("pod settings contradict each other", "keep the settings that agree"),
    "MG231": ("label or annotation modelgate writes itself", "remove it from metadata"),
    "MG232": (
        "stand-in the local target cannot serve",
        "name a stand-in in the repository, of a format an engine of the local target serves "
        "in the spec's protocol",
    ),
    "MG233": (
        "stand-in without the script that makes it",
        "commit the script that makes the stand-in again, and name it in standIn.script",
    ),
    "MG234": (
        "autoscaler the engine cannot use",
        "choose an autoscaler the engine's mode offers, or a mode that offers it",
    ),
    "MG235": (
        "runtime definition does not fit the model",
        "make spec.runtime serve the model's format and protocol, multi-model only in ModelMesh",
    ),
    "MG240": (
        "revision the source or engine cannot take",
        "pin a Hugging Face artifact on an engine with a revision setting; pin others by digest",
    ),
    "MG241": (
        "pickle-based artifact runs code when it loads",
        "do not deploy it; re-export the model as safetensors or ONNX from a trusted source",
    ),
    "MG242": ("pickle-based artifact cannot be scanned", "save the model again in a plain form"),
    "MG243": (
        "license is not an SPDX expression",
        "write SPDX ids joined by AND, OR and WITH, or LicenseRef-NAME",
    ),
    "MG244": ("digest nothing can check", "pin the artifact the way its source is pinned"),
    "MG250": (
        "engine cannot serve a model image from the OCI artifact store",
        "serve the model with engine kserve, or upload it to an s3:// or gs:// store",
    ),
    "MG251": (
        "the store's tag names another model image",
        "give the changed model a new spec.model.version; a published version is never replaced",
    ),
    "MG252": ("artifact not published", "see the message; nothing was replaced"),
    "MG253": (
        "artifact store modelgate cannot publish to",
        "upload the artifact yourself, or make artifactStore an oci:// registry",
    ),
    "MG254": (
        "oci:// artifact store that cannot be used",
        "write oci://HOST[:PORT]/PATH and a modelImageBase (docs/artifacts.md)",
    ),
    "MG270": (
        "team cannot name its Argo CD project",
        "write metadata.team as a DNS-1123 label: lowercase letters, digits and '-'",
    ),
    "MG271": (
        "two teams' Argo CD projects share a name",
        "rename a team or an environment: modelgate-TEAM-ENV must name one of each",
    ),
    "MG260": (
        "model does not fit the GPUs the spec asks for",
        "see the message: a shorter context, a larger product, more GPUs, or quantization",
    ),
    "MG261": (
        "model fits the GPUs with under 10% headroom",
        "leave room: the engine's activations vary with the batch",
    ),
    "MG262": (
        "model header missing or malformed: GPU fit cannot be computed",
        "commit the model files whole, as the engine loads them",
    ),
    "MG263": ("invalid accelerators section in templates/values.yaml", "fix it at the position"),
    "MG264": (
        "accelerator product not in the accelerators table",
        "declare it under accelerators in templates/values.yaml with its memory",
    ),
    "MG265": (
        "GPU fit not computed (information)",
        "see the message: the weights are not where modelgate reads them",
    ),
    "MG266": ("engine flag the GPU fit cannot read", "write the value the engine takes"),
    "MG267": (
        "engine shards over more GPUs than the spec asks for",
        "make spec.resources.gpu and the engine's parallelism agree",
    ),
    "MG268": (
        "recorded model headers are of another source or revision",
        "run `modelgate fit refresh SPEC` and commit what it writes",
    ),
    "MG301": ("two specs share a name", "give every model deployment its own name"),
    "MG302": (
        "runtime definition not named like its spec",
        "name the ServingRuntime after the spec: spec.engine.runtime unset or metadata.name",
    ),
    "MG303": (
        "runtime definition named like a built-in runtime",
        "give the model deployment another name",
    ),
    "MG304": (
        "a file that decides what reaches a cluster has no code owner",
        "give it owners in CODEOWNERS; the last matching line wins",
    ),
    "MG305": (
        "engine lock names a package its dependency group does not require",
        "run `make lock` and commit what it writes",
    ),
    "MG306": ("engine lock pin edited by hand", "run `make lock` and commit what it writes"),
    "MG307": (
        "engine lock requirement its dependency group does not declare",
        "declare it in the engine-NAME group of pyproject.toml, then run `make lock`",
    ),
    "MG401": ("template failed", "fix the template"),
    "MG402": ("no runtime for this engine and format", "set spec.engine.runtime"),
    "MG403": ("rendered file is invalid", "fix the template"),
    "MG404": ("rendered file out of date", "run `modelgate render` and commit rendered/"),
    "MG405": ("custom resource not checked", "run `modelgate crds pull` to fill crds/"),
    "MG406": ("CRD file cannot be read", "keep valid CRD YAML files only in crds/"),
    "MG407": ("a file stands where rendered/ needs a directory", "delete the file"),
    "MG410": ("engine image not pinned by digest", "run `modelgate images pin`"),
    "MG411": ("image pin in templates/values.yaml is invalid", "run `modelgate images pin`"),
    "MG412": ("registry gave no digest for an engine image", "check imageMirror and the mirror"),
    "MG413": ("image pin out of date", "review the change, then run `modelgate images pin`"),
    "MG501": ("model not deployed", "see the server log lines in the finding"),
    "MG502": ("endpoint not available", "see the server log lines in the finding"),
    "MG503": ("target cannot serve this model", "choose another target"),
    "MG504": ("engine not installed", "install the engine"),
    "MG505": ("port already in use", "free the port or let modelgate pick one"),
    "MG506": ("no such running deployment", "`modelgate status` lists them"),
    "MG507": ("another deploy of the model is in progress", "wait, or deploy one at a time"),
    "MG508": ("Docker engine not answering", "start Docker, or check DOCKER_HOST"),
    "MG509": ("deploy interrupted", "run the deploy again"),
    "MG510": (
        "a field the cluster holds for another field manager",
        "put the change into the spec, or undo it in the cluster",
    ),
    "MG511": ("rollback incomplete", "look at the model's workloads in the cluster"),
    "MG512": ("no cluster to deploy to", "set KUBECONFIG (and --context) to your cluster"),
    "MG513": (
        "rendered namespace is not the one --namespace names",
        "set the namespace in templates/values.yaml and render, or pass the rendered one",
    ),
    "MG520": (
        "revert does not apply cleanly",
        "a later commit changed the model's files: revert by hand, as the message says",
    ),
    "MG521": ("revert not pushed to the branch", "merge the revert's pull request"),
    "MG601": ("smoke expectation failed", "fix the model or the expectation"),
    "MG602": ("load check over its budget", "fix the latency or error rate, or the budget"),
    "MG701": ("invalid policy set", "fix the policy file at the position shown"),
    "MG801": ("waiver expired", "fix the finding or renew the waiver"),
    "MG802": ("stale waiver", "delete the waiver"),
    "MG803": ("waiver approver not allowed", "have a listed approver approve it"),
    "MG804": ("waiver expires too far ahead", "expire it within maxWaiverDays, then renew it"),
    "MG805": ("waiver names an unknown rule", "name a rule `modelgate policies list` shows"),
    "MG806": ("waiver names an unknown spec", "name the metadata.name of a spec in models/"),
    "MG807": ("waiver names a code no waiver can accept", "fix the finding; delete the waiver"),
    "MG901": ("invalid price table", "fix prices in templates/values.yaml at the position shown"),
    "MG902": ("GPU product without a price", "price it (or `*`) under prices.*.gpuHour"),
}
_WARNINGS = {"MG802", "MG902", "MG261"}
_INFORMATION = {"MG125", "MG265"}

BUILTIN_RULES: dict[str, RuleInfo] = {
    code: RuleInfo(
        code,
        title,
        title,
        hint,
        Severity.INFO
        if code in _INFORMATION
        else Severity.WARNING
        if code in _WARNINGS
        else Severity.ERROR,
    )
    for code, (title, hint) in _CODES.items()
}
