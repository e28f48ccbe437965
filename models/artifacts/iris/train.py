"""Train the example iris classifier from scikit-learn's bundled data set.

Run from the repository root:  python models/artifacts/iris/train.py
The output, model.joblib, is deterministic for a given scikit-learn version, so its
sha256 in models/iris.yaml only changes when the pinned scikit-learn version changes.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

OUTPUT = Path(__file__).with_name("model.joblib")


def train(output: Path = OUTPUT) -> str:
    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    joblib.dump(model, output)
    return hashlib.sha256(output.read_bytes()).hexdigest()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    print(f"{target}  sha256:{train(target)}")
