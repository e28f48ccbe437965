"""Write the small ONNX fraud scorer models/fraud-onnx-small.yaml serves: a logistic
regression over 32 features, `probability = sigmoid(features . weights + bias)`, with fixed
weights (no training, no data): a model of the same format and signature as a real scorer,
small enough for every test run.

It runs in the environment the local target serves Triton models from (the onnx version of
locks/engine-triton.txt), from the repository root:

    python -m validator.cli.environments triton   # prints its directory
    ENV/bin/python models/artifacts/fraud-onnx-small/make.py

The output is the same bytes for one onnx version, so its sha256 in the spec changes only
when that version does.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUTPUT = Path(__file__).with_name("model.onnx")
FEATURES = 32
OPSET = 13
IR_VERSION = 8  # what onnxruntime releases of the last years all read


def weights() -> np.ndarray:
    """-0.3 .. 0.3 in steps of 0.1, over and over: some features raise the score, some lower it."""
    return np.array([[((i % 7) - 3) / 10] for i in range(FEATURES)], dtype=np.float32)


def build() -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "weights"], ["score"]),
            helper.make_node("Add", ["score", "bias"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["probability"]),
        ],
        "fraud-onnx-small",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1])],
        initializer=[
            numpy_helper.from_array(weights(), "weights"),
            numpy_helper.from_array(np.array([-0.5], dtype=np.float32), "bias"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="modelgate"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def make(output: Path = OUTPUT) -> str:
    output.write_bytes(build().SerializeToString())
    return hashlib.sha256(output.read_bytes()).hexdigest()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    print(f"{target}  sha256:{make(target)}")
