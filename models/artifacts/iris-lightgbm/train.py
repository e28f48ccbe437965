"""Train the example LightGBM iris classifier from scikit-learn's bundled data set.

It runs in the environment the local target serves LightGBM models from (the lightgbm and
scikit-learn versions of locks/engine-mlserver-boosting.txt), from the repository root:

    python -m validator.cli.environments mlserver-boosting   # prints its directory
    ENV/bin/python models/artifacts/iris-lightgbm/train.py

MLServer's LightGBM runtime loads a booster saved as text (model.bst). One thread, a fixed
seed and LightGBM's deterministic mode: the file is the same bytes on every machine for
those versions, so its sha256 in models/iris-lightgbm.yaml changes only when they do.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from lightgbm import LGBMClassifier
from sklearn.datasets import load_iris

OUTPUT = Path(__file__).with_name("model.bst")


def train(output: Path = OUTPUT) -> str:
    features, labels = load_iris(return_X_y=True)
    model = LGBMClassifier(
        n_estimators=10,
        num_leaves=4,
        min_child_samples=5,
        n_jobs=1,
        random_state=0,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )
    model.fit(features, labels)
    model.booster_.save_model(output)
    return hashlib.sha256(output.read_bytes()).hexdigest()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    print(f"{target}  sha256:{train(target)}")
