"""scikit-learn estimators: the API contract, real use and parity with MLPClassifier."""

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_digits, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from deepnet_fast import DeepNetClassifier, DeepNetRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# Small networks and a brisk learning rate keep the ~60 checks per estimator
# fast while still reaching the scores some checks demand.
_CHECKED = [
    DeepNetClassifier(hidden_layer_sizes=(10,), learning_rate=0.01, max_iter=50, random_state=0),
    DeepNetRegressor(hidden_layer_sizes=(10,), learning_rate=0.01, batch_size=32, max_iter=50,
                     random_state=0),
]


def _expected_failed_checks(estimator):
    return {}


@parametrize_with_checks(_CHECKED, expected_failed_checks=_expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
