"""spec.endpoint: every setting renders a real resource for its engine on the platform
templates/values.yaml declares, or validation refuses it at the setting's file:line:col."""

from __future__ import annotations

import copy
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from validator import render
from validator.check import fit, load, workspace
from validator.deploy import smoke
from validator.render import kube_schemas

from .conftest import PROJECT, Scaffold, assert_both_parsers_agree, run_cli

MODELS = PROJECT / "models"
VALUES = (PROJECT / "templates" / "values.yaml").read_text(encoding="utf-8")
ISTIO = "security.istio.io/v1"


# -- what the examples render ------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, Any]]:
    """Every file the project's specs render, parsed, by its path under rendered/."""
    result = workspace.validate(workspace.discover(PROJECT, []), PROJECT)
    assert not result.failed(), result.diagnostics
    rendering = render.render_all(result.valid_documents(), PROJECT)
    assert rendering.diagnostics == []
    files = {}
    for file in rendering.files:
        assert_both_parsers_agree(file)
        if file.path.suffix == ".yaml":
            files[str(file.path.relative_to("rendered"))] = yaml.safe_load(file.content)
    return files


def test_the_public_chat_assistant_gets_an_ingress_with_its_host_and_tls(rendered: dict) -> None:
    for environment, host in (
        ("production", "chat.models.example.com"),
        ("staging", "staging.chat.models.example.com"),  # values: exposure.ingress.hosts
    ):
        ingress = rendered[f"{environment}/chat-assistant/ingress.yaml"]
        assert ingress["apiVersion"] == "networking.k8s.io/v1" and ingress["kind"] == "Ingress"
        assert ingress["metadata"]["namespace"] == f"models-{environment}"
        assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == (
            "letsencrypt-production"
        )
        assert ingress["spec"]["ingressClassName"] == "nginx"
        assert ingress["spec"]["tls"] == [{"hosts": [host], "secretName": "chat-assistant-tls"}]
        [rule] = ingress["spec"]["rules"]
        assert rule["host"] == host
        [path] = rule["http"]["paths"]
        assert path["backend"] == {"service": {"name": "chat-assistant", "port": {"name": "http"}}}
        service = rendered[f"{environment}/chat-assistant/service.yaml"]
        assert service["spec"]["ports"][0]["name"] == "http"


def test_the_ingress_is_checked_against_the_strict_kubernetes_schema(rendered: dict) -> None:
    ingress = copy.deepcopy(rendered["production/chat-assistant/ingress.yaml"])
    assert kube_schemas.check(ingress, kube_schemas.Schemas()) == (None, True)
    ingress["spec"]["ingressClass"] = "nginx"  # a typo an unchecked manifest would keep
    problem, found = kube_schemas.check(ingress, kube_schemas.Schemas())
    assert found and "ingressClass" in str(problem)


def test_a_public_endpoint_admits_the_ingress_controller_only(rendered: dict) -> None:
    policy = rendered["production/chat-assistant/networkpolicy.yaml"]
    rule, scrapers = policy["spec"]["ingress"]  # inference traffic, then metrics scrapes
    assert scrapers["from"] == [
        {"namespaceSelector": {"matchLabels": {"modelgate.dev/metrics-scrapers": "true"}}}
    ]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]
    internal = rendered["production/fraud-onnx/networkpolicy.yaml"]["spec"]["ingress"][0]
    assert {"podSelector": {}} in internal["from"]
    assert "production/fraud-onnx/ingress.yaml" not in rendered


def test_vllm_checks_the_api_key_from_auth_secret_ref(rendered: dict) -> None:
    spec = yaml.safe_load((MODELS / "chat-assistant.yaml").read_text(encoding="utf-8"))
    assert all(v["name"] != "VLLM_API_KEY" for v in spec["spec"]["engine"]["env"])
    deployment = rendered["production/chat-assistant/deployment.yaml"]
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {
        "name": "VLLM_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "chat-assistant-api", "key": "key"}},
    } in env


def test_api_keys_come_from_whatever_secret_the_spec_names(scaffold: Scaffold) -> None:
    spec = copy_spec(scaffold, "chat-assistant").replace(
        "secretRef: {name: chat-assistant-api, key: key}", "secretRef: {name: llm-keys, key: k1}"
    )
    files = render_spec(scaffold, "chat-assistant", spec)
    env = files["staging/chat-assistant/deployment.yaml"]["spec"]["template"]["spec"]["containers"][
        0
    ]["env"]
    assert [v for v in env if v["name"] == "VLLM_API_KEY"] == [
        {"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "llm-keys", "key": "k1"}}}
    ]


# the stand-in runs on vLLM, which the local target starts (TGI it does not)
TGI_STAND_IN = ("      format: huggingface\n", "      format: huggingface\n      engine: vllm\n")


def test_tgi_gets_its_key_as_api_key(scaffold: Scaffold) -> None:
    spec = (
        copy_spec(scaffold, "chat-assistant")
        .replace("name: vllm\n    version: 0.6.3", "name: tgi\n    version: 2.4.0")
        .replace(TGI_STAND_IN[0], TGI_STAND_IN[1])
    )
    files = render_spec(scaffold, "chat-assistant", spec)
    env = files["production/chat-assistant/deployment.yaml"]["spec"]["template"]["spec"][
        "containers"
    ][0]["env"]
    assert {
        "name": "API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "chat-assistant-api", "key": "key"}},
    } in env


def test_fraud_onnx_mtls_is_strict_peer_authentication(rendered: dict) -> None:
    for environment in ("staging", "production"):
        peer = rendered[f"{environment}/fraud-onnx/peerauthentication.yaml"]
        assert (peer["apiVersion"], peer["kind"]) == (ISTIO, "PeerAuthentication")
        assert peer["metadata"]["namespace"] == f"models-{environment}"
        assert peer["spec"] == {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "fraud-onnx"}},
            "mtls": {"mode": "STRICT"},
        }
        assert f"{environment}/fraud-onnx/requestauthentication.yaml" not in rendered


def test_churn_kserve_is_cluster_local_and_requires_an_oidc_token(rendered: dict) -> None:
    isvc = rendered["production/churn-kserve/inferenceservice.yaml"]
    assert isvc["metadata"]["labels"]["networking.kserve.io/visibility"] == "cluster-local"
    pods = {"matchLabels": {"serving.kserve.io/inferenceservice": "churn-kserve"}}
    request = rendered["production/churn-kserve/requestauthentication.yaml"]
    assert (request["apiVersion"], request["kind"]) == (ISTIO, "RequestAuthentication")
    assert request["spec"] == {
        "selector": pods,
        "jwtRules": [
            {
                "issuer": "https://login.example.com",
                "jwksUri": "https://login.example.com/.well-known/jwks.json",
                "audiences": ["models"],
            }
        ],
    }
    allow = rendered["production/churn-kserve/authorizationpolicy.yaml"]
    assert (allow["apiVersion"], allow["kind"]) == (ISTIO, "AuthorizationPolicy")
    assert allow["spec"] == {
        "selector": pods,
        "action": "ALLOW",
        "rules": [{"from": [{"source": {"requestPrincipals": ["https://login.example.com/*"]}}]}],
    }
    peer = rendered["production/churn-kserve/peerauthentication.yaml"]  # tls: true
    assert peer["spec"]["selector"] == pods and peer["spec"]["mtls"] == {"mode": "STRICT"}


def test_a_serverless_inference_service_is_cluster_local_for_knative(scaffold: Scaffold) -> None:
    spec = (
        copy_spec(scaffold, "churn-kserve")
        .replace("deploymentMode: RawDeployment", "deploymentMode: Serverless")
        .replace("metric: cpu", "metric: concurrency")  # Knative scales on requests
    )
    files = render_spec(scaffold, "churn-kserve", spec)
    labels = files["staging/churn-kserve/inferenceservice.yaml"]["metadata"]["labels"]
    assert labels["networking.knative.dev/visibility"] == "cluster-local"
    assert "networking.kserve.io/visibility" not in labels


def test_a_public_inference_service_is_left_to_kserves_ingress(scaffold: Scaffold) -> None:
    spec = copy_spec(scaffold, "churn-kserve").replace("visibility: internal", "visibility: public")
    files = render_spec(scaffold, "churn-kserve", spec)
    labels = files["staging/churn-kserve/inferenceservice.yaml"]["metadata"]["labels"]
    assert "networking.kserve.io/visibility" not in labels
    # public callers come through KServe's ingress, outside the mesh: no STRICT mTLS for them
    assert "staging/churn-kserve/peerauthentication.yaml" not in files
    assert "staging/churn-kserve/requestauthentication.yaml" in files


def test_iris_on_seldon_renders_its_model_alone(rendered: dict) -> None:
    assert sorted(path for path in rendered if "/iris/" in path) == [
        "production/iris/model.yaml",
        "staging/iris/model.yaml",
    ]


def test_a_spec_that_stops_being_public_loses_its_ingress(scaffold: Scaffold) -> None:
    copy_spec(scaffold, "chat-assistant")
    assert run_cli("--root", str(scaffold.root), "render").code == 0
    ingress = scaffold.root / "rendered/production/chat-assistant/ingress.yaml"
    assert ingress.is_file()
    internal = (
        copy_spec(scaffold, "chat-assistant")
        .replace("visibility: public", "visibility: internal")
        .replace("    host: chat.models.example.com\n", "")
    )
    scaffold.write_spec("chat-assistant", internal)
    result = run_cli("--root", str(scaffold.root), "render")
    assert result.code == 0, result.err
    assert not ingress.exists()


# -- refusals, each at its file:line:col ---------------------------------------------------------


def test_a_host_on_an_internal_endpoint_is_refused(scaffold: Scaffold) -> None:
    text = copy_spec(scaffold, "fraud-onnx").replace(
        "    tls: true\n", "    tls: true\n    host: fraud.models.example.com\n"
    )
    assert_refused(
        refusals(scaffold, "fraud-onnx", text),
        at(text, "host: fraud", "MG212", "endpoint.host fraud.models.example.com is a public"),
    )


def test_a_public_endpoint_without_a_host_is_refused(scaffold: Scaffold) -> None:
    text = copy_spec(scaffold, "chat-assistant").replace("    host: chat.models.example.com\n", "")
    assert_refused(
        refusals(scaffold, "chat-assistant", text),
        at(text, "visibility: public", "MG212", "a public endpoint needs endpoint.host"),
    )


def test_a_secret_ref_without_api_key_is_refused(scaffold: Scaffold) -> None:
    text = copy_spec(scaffold, "fraud-onnx").replace(
        "auth: {type: mtls}", "auth: {type: mtls, secretRef: {name: s, key: k}}"
    )
    assert_refused(
        refusals(scaffold, "fraud-onnx", text),
        at(text, "secretRef: {name: s", "MG212", "auth.secretRef holds an API key", key=True),
    )


def test_api_key_without_a_secret_ref_is_refused(scaffold: Scaffold) -> None:
    text = copy_spec(scaffold, "chat-assistant").replace(
        "      secretRef: {name: chat-assistant-api, key: key}\n", ""
    )
    assert_refused(
        refusals(scaffold, "chat-assistant", text),
        at(text, "type: apiKey", "MG212", "auth.type apiKey needs auth.secretRef"),
    )


def test_mtls_without_tls_is_refused(scaffold: Scaffold) -> None:
    text = copy_spec(scaffold, "fraud-onnx").replace("    tls: true\n", "    tls: false\n")
    assert_refused(
        refusals(scaffold, "fraud-onnx", text),
        at(text, "tls: false", "MG212", "tls: false contradicts auth.type mtls"),
    )


def test_mtls_on_a_public_endpoint_is_refused(scaffold: Scaffold) -> None:
    text = copy_spec(scaffold, "chat-assistant").replace(
        "      type: apiKey\n      secretRef: {name: chat-assistant-api, key: key}\n",
        "      type: mtls\n",
    )
    assert_refused(
        refusals(scaffold, "chat-assistant", text),
        at(text, "type: mtls", "MG212", "auth.type mtls on a public endpoint"),
    )


def test_public_without_a_declared_ingress_is_refused(scaffold: Scaffold) -> None:
    declare(scaffold, without_section(VALUES, "ingress"))
    text = copy_spec(scaffold, "chat-assistant")
    assert_refused(
        refusals(scaffold, "chat-assistant", text),
        at(text, "visibility: public", "MG210", "a public endpoint needs an ingress controller"),
    )


def test_public_tls_without_a_cluster_issuer_is_refused(scaffold: Scaffold) -> None:
    declare(scaffold, VALUES.replace("    clusterIssuer: letsencrypt-production\n", ""))
    text = copy_spec(scaffold, "chat-assistant")
    assert_refused(
        refusals(scaffold, "chat-assistant", text),
        at(text, "tls: true", "MG210", "tls on a public endpoint needs a certificate"),
    )


def test_internal_tls_and_mtls_without_a_mesh_are_refused(scaffold: Scaffold) -> None:
    declare(scaffold, VALUES.replace("  mesh: istio\n", "  mesh: none\n"))
    text = copy_spec(scaffold, "fraud-onnx")
    assert_refused(
        refusals(scaffold, "fraud-onnx", text),
        at(text, "type: mtls", "MG210", "auth.type mtls is the service mesh's mutual TLS"),
        at(text, "tls: true", "MG210", "tls on an internal endpoint is the service mesh's"),
    )


def test_oidc_without_an_identity_provider_is_refused(scaffold: Scaffold) -> None:
    declare(scaffold, without_section(VALUES, "oidc"))
    text = copy_spec(scaffold, "churn-kserve")
    assert_refused(
        refusals(scaffold, "churn-kserve", text),
        at(text, "type: oidc", "MG210", "auth.type oidc is the mesh checking callers' tokens"),
    )


def test_seldon_tls_the_platform_does_not_provide_is_refused(scaffold: Scaffold) -> None:
    declare(scaffold, VALUES.replace("seldon: {tls: true, auth: none}", "seldon: {tls: false}"))
    text = copy_spec(scaffold, "iris")
    assert_refused(
        refusals(scaffold, "iris", text),
        at(text, "tls: true", "MG210", "engine mlserver runs a Seldon Core v2 Model"),
    )


def test_seldon_auth_other_than_the_platforms_is_refused(scaffold: Scaffold) -> None:
    text = copy_spec(scaffold, "iris").replace("auth: {type: none}", "auth: {type: oidc}")
    assert_refused(
        refusals(scaffold, "iris", text),
        at(text, "type: oidc", "MG210", "engine mlserver runs a Seldon Core v2 Model"),
    )


def test_a_public_seldon_model_is_refused(scaffold: Scaffold) -> None:
    text = copy_spec(scaffold, "iris").replace(
        "visibility: internal", "visibility: public\n    host: iris.models.example.com"
    )
    assert_refused(
        refusals(scaffold, "iris", text),
        at(text, "visibility: public", "MG211", "engine mlserver runs a Seldon Core v2 Model"),
    )


@pytest.mark.parametrize(
    ("name", "engine"), [("fraud-onnx", "triton"), ("churn-kserve", "kserve"), ("iris", "mlserver")]
)
def test_api_keys_on_engines_without_a_key_check_are_refused(
    scaffold: Scaffold, name: str, engine: str
) -> None:
    text = copy_spec(scaffold, name)
    text = text[: text.index("    auth: {type:")] + (
        "    auth: {type: apiKey, secretRef: {name: s, key: k}}\n"
        + text[text.index("    tls: true") :]
    )
    assert_refused(
        refusals(scaffold, name, text),
        at(text, "type: apiKey", "MG211", f"engine {engine} cannot check an API key itself"),
    )


def test_api_keys_on_a_tgi_version_without_the_check_are_refused(scaffold: Scaffold) -> None:
    text = (
        copy_spec(scaffold, "chat-assistant")
        .replace("name: vllm\n    version: 0.6.3", "name: tgi\n    version: 2.2.0")
        .replace(TGI_STAND_IN[0], TGI_STAND_IN[1])
    )
    assert_refused(
        refusals(scaffold, "chat-assistant", text),
        at(text, "version: 2.2.0", "MG211", "engine tgi 2.2.0 cannot check an API key"),
    )


def test_a_host_on_a_public_inference_service_is_refused(scaffold: Scaffold) -> None:
    text = copy_spec(scaffold, "churn-kserve").replace(
        "    visibility: internal\n", "    visibility: public\n    host: churn.example.com\n"
    )
    assert_refused(
        refusals(scaffold, "churn-kserve", text),
        at(text, "host: churn", "MG211", "engine kserve cannot serve endpoint.host"),
    )


def test_the_api_key_variable_set_in_env_too_is_refused(scaffold: Scaffold) -> None:
    text = copy_spec(scaffold, "chat-assistant").replace(
        "        valueFrom: {name: huggingface, key: token}\n",
        "        valueFrom: {name: huggingface, key: token}\n"
        "      - name: VLLM_API_KEY\n"
        "        valueFrom: {name: chat-assistant-api, key: key}\n",
    )
    assert_refused(
        refusals(scaffold, "chat-assistant", text),
        at(text, "name: VLLM_API_KEY", "MG213", "VLLM_API_KEY is set from auth.secretRef"),
    )


def test_two_environments_claiming_one_host_are_refused(scaffold: Scaffold) -> None:
    declare(scaffold, VALUES.replace(', staging: "staging.{host}"}', "}"))
    text = copy_spec(scaffold, "chat-assistant")
    assert_refused(
        refusals(scaffold, "chat-assistant", text),
        at(text, "host: chat", "MG214", "environments staging and production would both claim"),
    )


def test_a_malformed_exposure_section_is_refused_where_it_is_written(scaffold: Scaffold) -> None:
    values = VALUES.replace("  mesh: istio\n", "  mesh: linkerd\n").replace(
        "    clusterIssuer: letsencrypt-production\n",
        "    clusterIssuer: letsencrypt-production\n    tlsSecret: x\n",
    )
    declare(scaffold, values)
    copy_spec(scaffold, "iris")
    result = workspace.validate(workspace.discover(scaffold.root, []), scaffold.root)
    found = [(d.path, d.line, d.col, d.rule) for d in result.diagnostics]
    assert found == [
        ("templates/values.yaml", *position(values, "tlsSecret: x", key=True), "MG215"),
        ("templates/values.yaml", *position(values, "mesh: linkerd"), "MG215"),
    ]
    cli = run_cli("--root", str(scaffold.root), "validate")
    line, col = position(values, "mesh: linkerd")
    assert cli.code == 1
    assert (
        f"templates/values.yaml:{line}:{col}: MG215 exposure.mesh must be one of istio, none"
        in cli.out
    )


def test_refusals_read_like_a_compilers_in_the_cli(scaffold: Scaffold) -> None:
    text = copy_spec(scaffold, "chat-assistant").replace("    host: chat.models.example.com\n", "")
    scaffold.write_spec("chat-assistant", text)
    result = run_cli(
        "--root", str(scaffold.root), "validate", "models/chat-assistant.yaml", cwd=scaffold.root
    )
    line, col = position(text, "visibility: public")
    assert result.code == 1
    assert (
        f"models/chat-assistant.yaml:{line}:{col}: MG212 a public endpoint needs endpoint.host: "
        "its Ingress routes requests by host name\n"
        "    hint: set spec.endpoint.host to the DNS name callers use"
    ) in result.out


# -- local and docker targets ----------------------------------------------------------------------


def test_loopback_deploys_say_that_endpoint_exposure_is_left_out(
    scaffold: Scaffold, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The docker target serves plain HTTP on loopback, and says so before it starts anything
    (here no Docker engine answers, so nothing starts at all)."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{scaffold.root}/no-docker.sock")
    copy_spec(scaffold, "churn-kserve")
    result = run_cli(
        "--root", str(scaffold.root), "deploy", "models/churn-kserve.yaml", "--target", "docker"
    )
    assert result.code == 1 and "MG508" in result.err
    assert (
        "note: churn-kserve: the docker target serves on 127.0.0.1 over plain HTTP without "
        "authentication, for tests; spec.endpoint tls, auth oidc apply on Kubernetes (rendered/)"
    ) in result.out


def test_the_compose_file_says_it_is_loopback_only(rendered: dict) -> None:
    text = (PROJECT / "rendered/docker/churn-kserve/compose.yaml").read_text(encoding="utf-8")
    assert "# For tests: 127.0.0.1 only, plain HTTP, no authentication." in text
    assert rendered["docker/churn-kserve/compose.yaml"]["services"]["model"]["ports"] == [
        "127.0.0.1:8080:8080"
    ]


def test_smoke_requests_carry_the_api_key_the_engine_checks() -> None:
    """The kubernetes target sends the key from auth.secretRef (read with kubectl, which
    needs a cluster); here a real server that refuses requests without it, as vLLM does."""

    class Engine(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            good = self.headers.get("Authorization") == "Bearer k3y"
            answer = b'{"choices": []}' if good else b'{"error": "Unauthorized"}'
            self.send_response(200 if good else 401)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Engine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        text = (MODELS / "chat-assistant.yaml").read_text(encoding="utf-8")
        document, _ = load.load_text(text, "models/chat-assistant.yaml")
        assert document is not None
        url = f"http://127.0.0.1:{server.server_port}"
        endpoint = smoke.Endpoint("chat-assistant", url, "openai", "kubernetes")
        [refused] = smoke.run(document, endpoint)
        assert refused.status == 401 and not refused.passed
        [answered] = smoke.run(document, endpoint, {"Authorization": "Bearer k3y"})
        assert answered.status == 200 and answered.passed, answered.diagnostics
    finally:
        server.shutdown()
        server.server_close()


# -- helpers -------------------------------------------------------------------------------------


def copy_spec(scaffold: Scaffold, name: str) -> str:
    text = (MODELS / f"{name}.yaml").read_text(encoding="utf-8")
    scaffold.write_spec(name, text)
    return text


def without_section(values: str, name: str) -> str:
    """The values with exposure.NAME (and its indented lines) left out."""
    left = re.sub(rf"(?m)^  {name}:\n(?:    .*\n)+", "", values)
    assert left != values, name
    return left


def declare(scaffold: Scaffold, values: str) -> None:
    (scaffold.root / "templates" / "values.yaml").write_text(values, encoding="utf-8")


def render_spec(scaffold: Scaffold, name: str, text: str) -> dict[str, dict[str, Any]]:
    path = scaffold.write_spec(name, text)
    result = workspace.validate([path], scaffold.root)
    assert not result.failed(), result.diagnostics
    rendering = render.render_all(result.valid_documents(), scaffold.root)
    assert rendering.diagnostics == []
    return {
        str(file.path.relative_to("rendered")): yaml.safe_load(file.content)
        for file in rendering.files
        if file.path.suffix == ".yaml"
    }


def refusals(scaffold: Scaffold, name: str, text: str) -> list[tuple[str, int, int, str, str]]:
    """(path, line, col, rule, message) of every finding on the spec, in order, but the GPU
    fit's "not computed" (MG265: chat-assistant's hf:// headers are not recorded; see
    tests/test_fit.py)."""
    path = scaffold.write_spec(name, text)
    result = workspace.validate([path], scaffold.root, policies=False)
    return [
        (d.path, d.line, d.col, d.rule, d.message)
        for d in result.diagnostics
        if d.rule != fit.NOT_COMPUTED
    ]


def assert_refused(found: list[tuple], *expected: tuple[str, int, int, str, str]) -> None:
    """The findings are exactly `expected` (from at()), each message starting as given."""
    assert [item[:4] for item in found] == [item[:4] for item in expected], found
    for (*_, message), (*_, start) in zip(found, expected, strict=True):
        assert message.startswith(start), message


def at(
    text: str, needle: str, rule: str, message_start: str, *, key: bool = False
) -> tuple[str, int, int, str, str]:
    """The finding expected where `needle` is written in the spec `text`: at the value of a
    `key: value` line (or at the key itself), with a message that starts so."""
    document, _ = load.load_text(text, "x")
    assert document is not None
    name = document.data["metadata"]["name"]
    return (f"models/{name}.yaml", *position(text, needle, key=key), rule, message_start)


def position(text: str, needle: str, *, key: bool = False) -> tuple[int, int]:
    """1-based line and column of the value in the one line of `text` holding `needle`
    (`key: value`, possibly inside a flow mapping), or of its key."""
    [line] = [number for number, line in enumerate(text.splitlines(), 1) if needle in line]
    column = text.splitlines()[line - 1].index(needle)
    if key:
        return line, column + 1
    return line, column + needle.index(": ") + 3


def test_the_helpers_find_what_the_loader_finds() -> None:
    """position() is plain text search; the loader agrees with it on the shapes used here."""
    text = "a:\n  b: {c: 1, d: two}\n  e: three\n"
    document, _ = load.load_text(text, "x.yaml")
    assert document is not None
    assert document.locate(["a", "b", "d"]) == position(text, "d: two")
    assert document.locate(["a", "e"]) == position(text, "e: three")
    assert document.locate(["a", "b"]) == position(text, "b: {c", key=True)
