"""Prediction: one forward pass over a workload's samples, nothing kept for backprop."""

from .common import (
    TRAINING_PARAM_NAMES,
    TRAINING_PARAMS,
    WORKLOADS,
    Benchmark,
    get_data,
    memoized,
    new_trainer,
    split_case,
)


def _predictor(workload, dtype, backend):
    X, y = get_data(workload, dtype)
    # Predictions cost the same trained or not: fit a single batch (scikit-
    # learn needs a fitted model), then predict once to compile.
    batch = WORKLOADS[workload].batch_size or X.shape[0]
    trainer = new_trainer(workload, dtype, backend, X[:batch], y[:batch])
    trainer.predict(X)
    return trainer


class Predict(Benchmark):
    """Seconds to predict the classes of all of a workload's samples."""

    params = TRAINING_PARAMS
    param_names = TRAINING_PARAM_NAMES

    def setup(self, backend, case):
        workload, dtype = split_case(case)
        self.X, _ = get_data(workload, dtype)
        self.trainer = memoized("predict", (workload, dtype, backend),
                                lambda: _predictor(workload, dtype, backend))

    def time_predict(self, backend, case):
        """Seconds of one ``predict`` over all of the workload's samples."""
        self.trainer.predict(self.X)

    time_predict.pretty_name = "Predict: seconds for all of a workload's samples"
