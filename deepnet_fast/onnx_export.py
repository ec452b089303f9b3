"""Export a network to ONNX: one ``Gemm`` and one activation node per layer.

:func:`to_onnx` writes the forward pass of a :class:`~deepnet_fast.DeepNet`,
a fitted :class:`~deepnet_fast.DeepNetClassifier` or a fitted
:class:`~deepnet_fast.DeepNetRegressor` as a standard ONNX graph (default
domain only, opset 13, IR version 7, so onnxruntime 1.7 and later run it)::

    X (N, n0) ─ Gemm(W1, b1, transB=1) ─ g1 ─ ... ─ Gemm(WL, bL, transB=1) ─ gL ─ out

``W[l]`` is stored as trained, ``(n[l], n[l-1])``, hence ``transB=1``; ``b[l]``
flattened. The input ``X`` has the model's dtype (float32 or float64; pass
arrays of exactly that dtype to onnxruntime). The outputs:

=====================  =================================  ==============================
model                  ``label``                          ``probabilities`` /
                                                          ``predictions``
=====================  =================================  ==============================
DeepNet, softmax       argmax, int64 (N,) (or ``classes``  ``probabilities`` (N, nL) =
                       gathered, with ``classes=``)        ``predict_proba``
DeepNet, sigmoid       ``P > 0.5``: int64 (N,) for one     ``probabilities`` (N, nL)
                       unit (or ``classes``), (N, nL)
DeepNet, identity      --                                 ``predictions`` (N, nL)
DeepNetClassifier      ``predict``: ``classes_`` (int64    ``probabilities`` =
                       or string tensor), 0/1 int64        ``predict_proba`` ((N, 2) for
                       matrix for multi-label              two classes)
DeepNetRegressor       --                                 ``predictions``, the shape of
                                                          ``predict``
=====================  =================================  ==============================

``label`` comes first, as in graphs that skl2onnx makes of scikit-learn's
classifiers. Integer and boolean class labels become int64, integral float
labels too (as skl2onnx does), strings a string tensor.

Activations: ``Relu``, ``Tanh``, ``Softmax(axis=1)``, identity (no node);
two are spelled out, measured against onnxruntime 1.32:

- sigmoid is ``Reciprocal(1 + Exp(-Z))``: onnxruntime's ``Sigmoid`` kernels
  keep absolute but not relative accuracy for negative ``Z`` (float32: a
  relative error of 2e-3 at Z = -10, clamped below -18; float64: 5e-8 at -20,
  0 below), and a small probability is all relative accuracy. This form stays
  within 2 ulp of the true value, down to float32's smallest normal number
  (Z of about -87; below it float32 outputs are 0 instead of subnormal).
- leaky ReLU is ``LeakyRelu(alpha=negative_slope)`` in float32 but
  ``Where(Z > 0, Z, Z * slope)`` in float64: onnxruntime has no double kernel
  for ``LeakyRelu`` (nor ``PRelu``), and ``alpha`` is a float32 attribute,
  which would round the slope of a float64 model.

Every op used has float and double kernels in onnxruntime's CPU provider.

scikit-learn pipelines: :func:`deepnet_fast.estimators.register_skl2onnx`
registers :func:`skl2onnx_shapes` and :func:`skl2onnx_convert` for both
estimators with ``skl2onnx.update_registered_converter``
(the classifier declares the ``zipmap`` option, so skl2onnx's own parser adds
its ``ZipMap`` unless ``options={"zipmap": False}``); after it,
``skl2onnx.to_onnx(make_pipeline(StandardScaler(), DeepNetClassifier()), X)``
converts. An input whose dtype is not the network's is cast to it first, as
the estimators' ``validate_data`` does. A float64 classifier needs
``zipmap=False``: ``ZipMap`` takes float32 only, which skl2onnx's
conversions of scikit-learn's own classifiers run into the same way. The
``nocl`` option gives class indices as labels.

Each model's module registers how its models export (:func:`register`), so
that this module imports none of them.

``onnx`` (and ``onnxruntime`` to run the result) are an optional extra,
``pip install "deepnet-fast[onnx]"``, imported only when this module is used.
Left out: dropout (inference needs none), ``predict_log_proba``, and models
past protobuf's 2 GB limit (ONNX's external-data files).
"""

import numpy as np

from .serialization import write_atomically

__all__ = ["to_onnx", "register", "Plan", "OPSET"]

OPSET = 13   # Softmax's per-axis meaning, Squeeze-free graph: every op here as of 13
# The install hint of every ImportError of ONNX export (the estimators' too).
EXTRA = 'pip install "deepnet-fast[onnx]"'


def _onnx():
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(f"ONNX export needs the onnx package: {EXTRA}") from exc
    return onnx


# ---------------------------------------------------------------- graph builders
#
# The network is written through a small builder interface (constant, node) so
# that one function emits it both into a standalone ModelProto and into
# skl2onnx's container.


class _ModelGraph:
    """Nodes and initializers of a standalone model, with unique names."""

    def __init__(self, reserved=()):
        self.nodes, self.initializers, self._taken = [], [], set(reserved)

    def _name(self, hint):
        name, i = hint, 1
        while name in self._taken:
            name, i = f"{hint}_{i}", i + 1
        self._taken.add(name)
        return name

    def constant(self, hint, array):
        from onnx import numpy_helper
        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, hint, out=None, **attrs):
        from onnx import helper
        out = out or self._name(hint)
        self._taken.add(out)
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=self._name(op), **attrs))
        return out


class _ContainerGraph:
    """The same interface over skl2onnx's scope and container."""

    def __init__(self, scope, container):
        self.scope, self.container = scope, container

    def constant(self, hint, array):
        from onnx import TensorProto
        from onnx.helper import np_dtype_to_tensor_dtype
        array = np.asarray(array)
        name = self.scope.get_unique_variable_name(hint)
        if array.dtype == object:
            elem, content = TensorProto.STRING, [s.encode("utf-8") for s in array.ravel()]
        else:
            elem, content = np_dtype_to_tensor_dtype(array.dtype), array.ravel()
        self.container.add_initializer(name, elem, list(array.shape), content)
        return name

    def node(self, op, inputs, hint, out=None, **attrs):
        out = out or self.scope.get_unique_variable_name(hint)
        self.container.add_node(op, list(inputs), [out],
                                name=self.scope.get_unique_operator_name(op), **attrs)
        return out


# ---------------------------------------------------------------- activations


def _leaky_relu(g, Z, slope, dtype, out):
    if dtype == np.float32:
        return g.node("LeakyRelu", [Z], "A", out, alpha=float(slope))
    # No double LeakyRelu kernel in onnxruntime; this is the kernels' own rule
    # (z if z > 0 else z * slope) with the slope in float64.
    positive = g.node("Greater", [Z, g.constant("zero", dtype.type(0))], "positive")
    scaled = g.node("Mul", [Z, g.constant("slope", dtype.type(slope))], "scaled")
    return g.node("Where", [positive, Z, scaled], "A", out)


def _sigmoid(g, Z, slope, dtype, out):
    # 1 / (1 + exp(-z)), not the Sigmoid op: onnxruntime's Sigmoid kernels lose
    # relative accuracy for negative z (float32: 2e-3 at z = -10, clamped below
    # -18; float64: 5e-8 at z = -20, 0 below), which is all a small probability
    # has. Exp keeps this form within 2 ulp of the true value.
    e = g.node("Exp", [g.node("Neg", [Z], "minus_Z")], "exp_minus_Z")
    denominator = g.node("Add", [e, g.constant("one", dtype.type(1))], "denominator")
    return g.node("Reciprocal", [denominator], "A", out)


def _unary(op, **attrs):
    return lambda g, Z, slope, dtype, out: g.node(op, [Z], "A", out, **attrs)


# Activation name -> writer(g, Z, slope, dtype, out) -> name of A; None: no node.
ACTIVATION_NODES = {
    "identity": None,
    "relu": _unary("Relu"),
    "leaky_relu": _leaky_relu,
    "tanh": _unary("Tanh"),
    "sigmoid": _sigmoid,
    "softmax": _unary("Softmax", axis=1),
}


def _forward(g, X, architecture, parameters, out=None):
    """Emit A[L] = g_L(... g_1(X W1ᵀ + b1) ...) in rows; returns its name."""
    dtype = architecture.dtype
    A = X
    L = architecture.n_layers
    for l, activation in enumerate(architecture.activations, start=1):
        if activation not in ACTIVATION_NODES:
            raise NotImplementedError(f"no ONNX export for activation {activation!r}; "
                                      f"known: {list(ACTIVATION_NODES)}")
        W = g.constant(f"W{l}", np.asarray(parameters[f"W{l}"], dtype=dtype))
        b = g.constant(f"b{l}", np.asarray(parameters[f"b{l}"], dtype=dtype).ravel())
        write = ACTIVATION_NODES[activation]
        last_out = out if l == L else None
        Z = g.node("Gemm", [A, W, b], f"Z{l}", None if write else last_out, transB=1)
        A = write(g, Z, architecture.negative_slope, dtype, last_out) if write else Z
    return A


def _label(g, P, head, n_units, dtype, classes, out):
    """Emit the decision of ``head`` on outputs P, as ``DeepNet.predict`` (and
    mapped through ``classes`` when given)."""
    from onnx import TensorProto
    if head == "softmax":
        index = g.node("ArgMax", [P], "index", None if classes is not None else out,
                       axis=1, keepdims=0)
    else:   # sigmoid: a unit says 1 where its output exceeds 0.5
        above = g.node("Greater", [P, g.constant("half", dtype.type(0.5))], "above")
        if n_units > 1:
            return g.node("Cast", [above], "indicator", out, to=TensorProto.INT64)
        bit = g.node("Cast", [above], "bit", to=TensorProto.INT64)
        index = g.node("Reshape", [bit, g.constant("rows", np.array([-1], np.int64))],
                       "index", None if classes is not None else out)
    if classes is None:
        return index
    return g.node("Gather", [g.constant("classes", classes), index], "label", out, axis=0)


def label_tensor(classes, n_needed):
    """Class labels as an int64 or string (object) array of ``n_needed`` labels."""
    classes = np.asarray(classes)
    if classes.ndim != 1 or classes.shape[0] != n_needed:
        raise ValueError(f"classes must hold {n_needed} labels, one per class; got shape "
                         f"{classes.shape}")
    kind = classes.dtype.kind
    if kind in "iub":
        return classes.astype(np.int64)
    if kind == "f":
        if not np.all(np.isfinite(classes)) or np.any(classes != np.round(classes)):
            raise ValueError(f"float class labels must be integers to export (ONNX labels are "
                             f"int64 or strings); got {classes}")
        return classes.astype(np.int64)
    if kind in "US" or (kind == "O" and all(isinstance(c, (str, bytes)) for c in classes)):
        return np.array([_text(c) for c in classes], dtype=object)
    raise TypeError(f"class labels must be integers or strings to export; got dtype "
                    f"{classes.dtype}")


def _text(label):
    """A string label as ONNX holds it: text (bytes are read as UTF-8, not as their repr)."""
    if isinstance(label, bytes):
        try:
            return label.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"class label {bytes(label)!r} is not UTF-8 text; ONNX string labels "
                             "are UTF-8") from None
    return str(label)


# ---------------------------------------------------------------- what each model exports


def net_plan(net, classes=None, class_indices=False):
    """The :class:`Plan` of a :class:`~deepnet_fast.DeepNet`, labels mapped
    through ``classes`` if given (what ``deepnet_fast.network`` registers)."""
    head, nL = net.output_activation, net.layer_dims[-1]
    if classes is not None:
        if net.head.score_name != "accuracy":
            raise ValueError("classes apply to classification outputs; this network's output "
                             f"is {head}")
        if head == "sigmoid" and nL > 1:
            raise ValueError(f"classes do not apply to a multi-label sigmoid output ({nL} "
                             "units): its label is the 0/1 matrix")
        classes = label_tensor(classes, 2 if head == "sigmoid" else nL)
    return Plan(net.architecture, net.parameters, classes, sklearn_proba=False,
                 flat_predictions=False)


class Plan:
    """What to emit: the network, and how its output becomes the model's outputs.

    ``sklearn_proba``: one sigmoid unit gives ``[1 - p, p]`` (scikit-learn's
    ``predict_proba``); ``flat_predictions``: one identity unit gives (N,).
    """

    def __init__(self, architecture, parameters, classes, sklearn_proba, flat_predictions):
        self.architecture, self.parameters, self.classes = architecture, parameters, classes
        self.sklearn_proba, self.flat_predictions = sklearn_proba, flat_predictions

    @property
    def head(self):
        return self.architecture.activations[-1]

    @property
    def n_units(self):
        return self.architecture.layer_dims[-1]

    @property
    def classifies(self):
        # The head says what the output means (classes or values).
        return self.architecture.head.score_name == "accuracy"

    @property
    def output_names(self):
        return ("label", "probabilities") if self.classifies else ("predictions",)

    @property
    def n_proba(self):
        two_columns = self.sklearn_proba and self.head == "sigmoid" and self.n_units == 1
        return 2 if two_columns else self.n_units

    @property
    def label_is_matrix(self):
        return self.head == "sigmoid" and self.n_units > 1

    @property
    def label_is_string(self):
        return self.classes is not None and self.classes.dtype == object

    def emit(self, g, X, outs):
        """Write the graph from input ``X`` to the outputs named ``outs``
        (:attr:`output_names` order)."""
        arch, dtype = self.architecture, self.architecture.dtype
        if not self.classifies:
            if not self.flat_predictions:
                return _forward(g, X, arch, self.parameters, outs[0])
            A = _forward(g, X, arch, self.parameters)
            return g.node("Reshape", [A, g.constant("rows", np.array([-1], np.int64))],
                          "predictions", outs[0])
        label_out, proba_out = outs
        two_columns = self.n_proba != self.n_units
        P = _forward(g, X, arch, self.parameters, None if two_columns else proba_out)
        _label(g, P, self.head, self.n_units, dtype, self.classes, label_out)
        if two_columns:
            q = g.node("Sub", [g.constant("one", dtype.type(1)), P], "q")
            g.node("Concat", [q, P], "probabilities", proba_out, axis=1)


# Model type -> plan(model, classes, class_indices): each model's module
# registers its own (deepnet_fast.network the DeepNet, deepnet_fast.estimators
# the estimators), so that this module imports none of them.
_PLANS = {}


def register(model_type, plan):
    """Make :func:`to_onnx` export ``model_type``.

    Parameters
    ----------
    model_type : type
    plan : callable
        ``plan(model, classes, class_indices)`` returns the :class:`Plan` of a
        model of that type: ``classes`` is :func:`to_onnx`'s argument (None when
        not given), ``class_indices`` skl2onnx's ``nocl`` option.
    """
    _PLANS[model_type] = plan


def _plan(model, classes, class_indices=False):
    for model_type, plan in _PLANS.items():
        if isinstance(model, model_type):
            return plan(model, classes, class_indices)
    raise TypeError(f"to_onnx exports a DeepNet, DeepNetClassifier or DeepNetRegressor; got "
                    f"{type(model).__name__}")


# ---------------------------------------------------------------- public API


def to_onnx(model, path=None, *, classes=None):
    """The ONNX model of a network (see the module docstring for its outputs).

    Parameters
    ----------
    model : DeepNet, DeepNetClassifier or DeepNetRegressor
        A fitted estimator, or a network (trained or not).
    path : str or os.PathLike, optional
        Also write the model there (atomically).
    classes : array-like, optional
        DeepNet only: labels that ``label`` reports instead of indices, one per
        softmax unit, or two (for 0 and 1) for one sigmoid unit.

    Returns
    -------
    onnx.ModelProto
        Checked with ``onnx.checker.check_model(full_check=True)``.

    Raises
    ------
    ImportError
        When ``onnx`` is missing (``pip install "deepnet-fast[onnx]"``).
    TypeError
        For another kind of model.
    ValueError
        If ``path`` exists and is not a regular file (a device, a FIFO).
    """
    plan = _plan(model, classes)
    onnx = _onnx()
    from onnx import TensorProto, helper

    from . import __version__

    arch = plan.architecture
    elem = helper.np_dtype_to_tensor_dtype(arch.dtype)
    g = _ModelGraph(reserved=("X", *plan.output_names))
    plan.emit(g, "X", plan.output_names)

    if plan.classifies:
        label_elem = TensorProto.STRING if plan.label_is_string else TensorProto.INT64
        label_shape = ["N", plan.n_units] if plan.label_is_matrix else ["N"]
        outputs = [helper.make_tensor_value_info("label", label_elem, label_shape),
                   helper.make_tensor_value_info("probabilities", elem, ["N", plan.n_proba])]
    else:
        shape = ["N"] if plan.flat_predictions else ["N", plan.n_units]
        outputs = [helper.make_tensor_value_info("predictions", elem, shape)]
    described = (f"{'-'.join(map(str, arch.layer_dims))} {'/'.join(arch.activations)}, "
                 f"{arch.dtype.name}")
    graph = helper.make_graph(g.nodes, f"{type(model).__name__} {described}",
                              [helper.make_tensor_value_info("X", elem, ["N", arch.layer_dims[0]])],
                              outputs, g.initializers)
    opsets = [helper.make_opsetid("", OPSET)]
    onnx_model = helper.make_model(graph, opset_imports=opsets, producer_name="deepnet_fast",
                                   producer_version=__version__,
                                   ir_version=helper.find_min_ir_version_for(opsets),
                                   doc_string=f"{type(model).__name__}: {described}")
    onnx.checker.check_model(onnx_model, full_check=True)
    if path is not None:
        data = onnx_model.SerializeToString()
        write_atomically(path, lambda fh: fh.write(data))
    return onnx_model


# ---------------------------------------------------------------- skl2onnx


def skl2onnx_shapes(operator):
    """skl2onnx shape calculator: the outputs' types from the fitted estimator."""
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )
    plan = _plan(operator.raw_operator, None, _nocl(operator.scope_inst, operator))
    N = operator.inputs[0].get_first_dimension()
    tensor = FloatTensorType if plan.architecture.dtype == np.float32 else DoubleTensorType
    if plan.classifies:
        label = StringTensorType if plan.label_is_string else Int64TensorType
        operator.outputs[0].type = label([N, plan.n_units] if plan.label_is_matrix else [N])
        operator.outputs[1].type = tensor([N, plan.n_proba])
    else:
        operator.outputs[0].type = tensor([N] if plan.flat_predictions else [N, plan.n_units])


def skl2onnx_convert(scope, operator, container):
    """skl2onnx converter: the same graph as :func:`to_onnx`, in the container."""
    from onnx.helper import np_dtype_to_tensor_dtype
    from skl2onnx.common.data_types import guess_numpy_type
    if container.target_opset < OPSET:
        raise RuntimeError(f"deepnet_fast's ONNX graphs need opset >= {OPSET}; "
                           f"target_opset is {container.target_opset}")
    plan = _plan(operator.raw_operator, None, _nocl(scope, operator))
    g = _ContainerGraph(scope, container)
    X = operator.inputs[0].full_name
    dtype = plan.architecture.dtype
    if guess_numpy_type(operator.inputs[0].type) != dtype:
        X = g.node("Cast", [X], "X_cast", to=np_dtype_to_tensor_dtype(dtype))
    plan.emit(g, X, [v.full_name for v in operator.outputs])


def _nocl(scope, operator):
    """skl2onnx's ``nocl`` option: class indices instead of ``classes_``."""
    if not hasattr(operator.raw_operator, "classes_"):
        return False
    return bool(scope.get_options(operator.raw_operator, dict(nocl=False))["nocl"])
