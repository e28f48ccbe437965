"""Train the example iris classifier from scikit-learn's bundled data set.

Run from the repository root:  python models/artifacts/iris/train.py
The output, model.joblib, is the same bytes on any machine for a given scikit-learn version,
so its sha256 in models/iris.yaml only changes when the pinned scikit-learn version changes.
Newton's method run to a tight tolerance lands on the one optimum whichever BLAS kernels the
CPU picks (L-BFGS stopped at a different iteration on each), and the coefficients are rounded
to six decimals so that the last bits of that arithmetic do not reach the file.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

OUTPUT = Path(__file__).with_name("model.joblib")
DECIMALS = 6


def train(output: Path = OUTPUT) -> str:
    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(solver="newton-cholesky", tol=1e-10, max_iter=100)
    model.fit(features, labels)
    model.coef_ = np.round(model.coef_, DECIMALS)
    model.intercept_ = np.round(model.intercept_, DECIMALS)
    joblib.dump(model, output)
    return hashlib.sha256(output.read_bytes()).hexdigest()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    print(f"{target}  sha256:{train(target)}")
