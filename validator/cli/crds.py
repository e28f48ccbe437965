"""`modelgate crds pull`: fill crds/ with the CustomResourceDefinitions of the custom resources
rendered/ holds, from the cluster KUBECONFIG names (validator/render/crds.py). `modelgate
render` checks custom resources against crds/ without further flags."""

from __future__ import annotations

import argparse
import json
import shutil
from typing import Any

from ..report.output import Output
from .common import EXIT_FINDINGS, EXIT_OK, root_of


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "crds", help="the CustomResourceDefinitions render checks custom resources against"
    )
    actions = parser.add_subparsers(dest="crds_command", metavar="ACTION", required=True)
    pull = actions.add_parser(
        "pull",
        help="write into crds/ the CRD of every custom resource kind rendered/ holds, read "
        "from the cluster KUBECONFIG names (an identity that may list "
        "customresourcedefinitions)",
    )
    pull.set_defaults(handler=run_pull)


def run_pull(args: argparse.Namespace, output: Output) -> int:
    from ..deploy.kubectl import KubectlError, kubectl
    from ..render import crds

    root = root_of(args)
    links = crds.links_out(root)
    output.diagnostics(links)
    if links:
        output.error("nothing pulled: crds/ must be a folder of the repository's own files")
        return EXIT_FINDINGS
    kinds, problems = crds.rendered_kinds(root)
    output.diagnostics(problems)
    if problems:
        output.error("nothing pulled: rendered/ did not read; fix the findings above first")
        return EXIT_FINDINGS
    if not kinds:
        output.line("rendered/ holds no custom resources: no CRD to pull")
        return EXIT_OK
    if shutil.which("kubectl") is None:
        output.error("nothing pulled: kubectl is not installed", "install kubectl")
        return EXIT_FINDINGS
    try:
        answer = kubectl("get", "customresourcedefinitions", "-o", "json", timeout=300)
    except KubectlError as exc:
        output.error(
            f"nothing pulled: the cluster did not list its CRDs: {exc}",
            "check KUBECONFIG; the identity must be allowed to list "
            "customresourcedefinitions (a read-only right)",
        )
        return EXIT_FINDINGS
    definitions = json.loads(answer).get("items") or []
    pulled = crds.pull(root, kinds, definitions)
    for written, served in pulled.written.items():
        shown = ", ".join(f"{kind} ({api_version})" for api_version, kind in served)
        output.line(f"wrote {written}: {shown}")
    for missing in pulled.missing:
        output.error(
            f"warning: not pulled: {missing}",
            "its custom resources stay unchecked (MG405) until crds/ has its CRD: pull from the "
            "cluster that runs its operator, or pass render --crds DIR",
        )
    output.line(f"{len(pulled.written)} CRD file(s) in {crds.CRDS_DIR}/")
    return EXIT_OK
