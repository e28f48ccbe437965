"""A custom container: the model's own image serves it (a Deployment, or compose locally)."""

from . import EVERY_ACCELERATOR, EVERY_FORMAT, IMAGE, WORKLOAD, Engine, Gpus

ENGINE = Engine(
    name="docker",
    summary="a custom container: the model image serves itself",
    formats=EVERY_FORMAT,
    protocols=("v2", "v1", "openai"),
    port=8080,
    packaging=(IMAGE,),  # the model is an OCI image that serves itself
    gpus=Gpus(EVERY_ACCELERATOR),  # the image is the spec's own build, for its vendor or none
    cluster=("docker/deployment.yaml.j2", *WORKLOAD),
    # no API key: what an image checks is its own business, which modelgate cannot see
)
