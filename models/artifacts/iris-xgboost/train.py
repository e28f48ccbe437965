"""Train the example XGBoost iris classifier from scikit-learn's bundled data set.

It runs in the environment the local target serves XGBoost models from (the xgboost and
scikit-learn versions of locks/engine-mlserver-boosting.txt), from the repository root:

    python -m validator.cli.environments mlserver-boosting   # prints its directory
    ENV/bin/python models/artifacts/iris-xgboost/train.py

One thread and a fixed seed: model.json is the same bytes on every machine for those
versions, so its sha256 in models/iris-xgboost.yaml changes only when they do.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from sklearn.datasets import load_iris
from xgboost import XGBClassifier

OUTPUT = Path(__file__).with_name("model.json")


def train(output: Path = OUTPUT) -> str:
    features, labels = load_iris(return_X_y=True)
    model = XGBClassifier(n_estimators=10, max_depth=2, learning_rate=0.5, n_jobs=1, random_state=0)
    model.fit(features, labels)
    model.save_model(output)
    return hashlib.sha256(output.read_bytes()).hexdigest()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    print(f"{target}  sha256:{train(target)}")
