"""The KServe model server (its Python SDK) serving one scikit-learn model, on loopback only.

    python kserve_server.py SETTINGS.json --http_port P --grpc_port G [--host ADDRESS]

SETTINGS.json is what modelgate renders into rendered/local/NAME/ (templates/kserve/): the
model's name and its artifact, relative to the settings file. KServe's own scikit-learn
server is not published as a package; this is the same `kserve.Model` it is, with KServe's
own request and response conversions, so the v1 (`:predict`) and v2 (`/infer`) protocols
answer as they would in a cluster.

The SDK binds REST to 0.0.0.0 and gRPC to [::]; both are bound to 127.0.0.1 here instead,
or to --host (a container image binds 0.0.0.0 of its own network namespace, which Docker
publishes on the host's loopback only).
The model is loaded before the server starts: /v1/models/NAME and /v2/models/NAME/ready
answer 200 only once it can predict.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import grpc
import joblib
import kserve
from kserve import model_server
from kserve.protocol.rest import server as rest_server
from kserve.utils.utils import get_predict_input, get_predict_response

LOOPBACK = "127.0.0.1"
HOST = LOOPBACK  # the address both servers bind (--host)


class SKLearnModel(kserve.Model):
    def __init__(self, name: str, artifact: Path) -> None:
        super().__init__(name)
        self.artifact = artifact
        self.model = None

    def load(self) -> bool:
        path = self.artifact
        if path.is_dir():  # a folder artifact: the model file inside it
            found = sorted(p for p in path.iterdir() if p.suffix in (".joblib", ".pkl"))
            if len(found) != 1:
                raise RuntimeError(f"expected one .joblib or .pkl file in {path}, found {found}")
            path = found[0]
        self.model = joblib.load(path)
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        instances = get_predict_input(payload)
        return get_predict_response(payload, self.model.predict(instances), self.name)


class LoopbackRESTServer(rest_server.RESTServer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.config.host = HOST


def _loopback_grpc(make_server):
    def server(*args, **kwargs):
        made = make_server(*args, **kwargs)
        add_port = made.add_insecure_port
        made.add_insecure_port = lambda address: add_port(HOST + ":" + address.rsplit(":", 1)[1])
        return made

    return server


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("settings", type=Path)
    parser.add_argument("--http_port", type=int, required=True)
    parser.add_argument("--grpc_port", type=int, required=True)
    parser.add_argument("--host", default=LOOPBACK)
    options, _ = parser.parse_known_args(argv)
    global HOST
    HOST = options.host
    settings = json.loads(options.settings.read_text(encoding="utf-8"))
    artifact = (options.settings.parent / settings["uri"]).resolve()
    model_server.RESTServer = LoopbackRESTServer
    grpc.aio.server = _loopback_grpc(grpc.aio.server)
    model = SKLearnModel(settings["name"], artifact)
    model.load()
    kserve.ModelServer(http_port=options.http_port, grpc_port=options.grpc_port).start([model])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
