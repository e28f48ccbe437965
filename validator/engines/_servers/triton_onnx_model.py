"""An ONNX model in Triton's Python backend, run by onnxruntime on the CPU.

Triton loads this file as the model's model.py (triton_server.py lays the repository out,
with model.onnx beside it). Triton checks each request against the model's config.pbtxt
before it reaches `execute`; the outputs are those the config names, in its data types.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        folder = Path(args["model_repository"]) / args["model_version"]
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        config = json.loads(args["model_config"])
        self.inputs = [tensor["name"] for tensor in config["input"]]
        self.outputs = {
            tensor["name"]: pb_utils.triton_string_to_numpy(tensor["data_type"])
            for tensor in config["output"]
        }

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            feed = {
                name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()
                for name in self.inputs
            }
            results = self.session.run(list(self.outputs), feed)
            tensors = [
                pb_utils.Tensor(name, np.asarray(value).astype(dtype))
                for (name, dtype), value in zip(self.outputs.items(), results, strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses
