"""A custom container: the model's own image serves it (a Deployment, or compose locally)."""

from . import EVERY_FORMAT, IMAGE, WORKLOAD, Engine

ENGINE = Engine(
    name="docker",
    summary="a custom container: the model image serves itself",
    formats=EVERY_FORMAT,
    protocols=("v2", "v1", "openai"),
    port=8080,
    packaging=(IMAGE,),  # the model is an OCI image that serves itself
    cluster=("docker/deployment.yaml.j2", *WORKLOAD),
    # no API key: what an image checks is its own business, which modelgate cannot see
)
