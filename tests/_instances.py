"""Every detector of the library, built from what its class declares: one instance generator.

The tests' detector tables (``tests/test_base.py``, ``tests/test_memory.py``,
``tests/test_estimator_checks.py``, ``tests/test_tuning_grids.py``) and
``perf/bench_fit_scaling.py`` iterate over the registry
(:func:`sklearn_ood.discovery.all_detectors`) through :func:`make_case` (a
detector that takes arrays, with its data) and :func:`make_model_detector` (a
detector that runs a model), which read each class's
:class:`~sklearn_ood._tags.DetectorTags`:

- the input: 2-D features ``X2`` when the class accepts 2-D rows, else 4-D
  maps ``X4``; ``"max_avg"`` rows are read as ``[max | mean]`` of
  ``D / 2`` channels; ``"blocks"`` get ``block_sizes`` (two blocks); a map
  detector with ``block_shapes`` reads 2-D rows as flattened maps of 2 channels;
- the head ``(coef, intercept)`` when ``head`` is ``"required"`` or
  ``"or_logits"``, cut to the width it reads (``C`` for maps, ``D / 2`` for
  ``[max | mean]`` rows);
- the labels when ``labels`` is not ``None``; when ``ood_rows`` is set, every
  sixth row is marked OOD (label -1), the rows ``fit`` learns its combiner from;
- ``random_state=0`` for a class with that parameter;
- the few parameters tiny data needs (:data:`SMALL_PARAMS`, each with its reason).

A detector that runs a model gets the model and, for a required ``blocks``,
the model's feature layer.

Nothing here is written per detector except :data:`SMALL_PARAMS` and the
extra variants of :data:`VARIANTS`: a new detector module is in every table
without an edit.
"""

import inspect
from dataclasses import dataclass

import numpy as np

from sklearn_ood.discovery import all_detectors, get_detector_tags

#: Parameters tiny data needs (``N = 36`` rows, ``D = 6`` features, 3 classes of
#: 12 rows), and why. Perf and the memory test (thousands of rows) keep the defaults.
SMALL_PARAMS = {
    "KNN": ({"n_neighbors": 3}, "the default 50 neighbours need 51 training rows"),
    "MCDropout": ({"n_passes": 3}, "30 forward passes per image by default: 10x the time "
                                   "for the same contract"),
}


@dataclass
class Case:
    """One detector built for one data set: ``make()`` an unfitted instance, ``X``, ``y``."""

    name: str
    cls: type
    params: dict
    X: np.ndarray
    y: object = None
    head_width: object = None

    def make(self, **params):
        return self.cls(**{**self.params, **params})

    def fit(self, X=None):
        """A fresh instance fitted on ``X`` (default: the case's) and the case's labels."""
        X = self.X if X is None else X
        return self.make().fit(X, self.labels(len(X)))

    def labels(self, n):
        """The case's labels for the first ``n`` rows (``None`` without labels)."""
        return None if self.y is None else self.y[:n]


def array_detectors():
    """``(name, class)`` of every registered detector that takes arrays (not images)."""
    return [(n, c) for n, c in all_detectors() if get_detector_tags(c).input != "images"]


def model_detectors():
    """``(name, class)`` of every registered detector that runs a model on images."""
    return [(n, c) for n, c in all_detectors() if get_detector_tags(c).input == "images"]


#: Why a table of array inputs leaves a model-holding detector out.
IMAGES_REASON = ("takes images and runs its model (tags input='images'): its input and state "
                 "checks are the ModelDetector tests (test_base.py, test_model_detector_input.py) "
                 "and its own test file")


def detector_params(cls, *, X=None, head=None, small=True):
    """The constructor parameters of ``cls`` from its tags, for the input ``X``.

    ``random_state=0`` where the class has one; for 2-D ``X``, ``block_sizes``
    of a ``"blocks"`` detector (two blocks) and ``block_shapes`` of a map
    detector (flattened maps of 2 channels); ``head`` when given;
    :data:`SMALL_PARAMS` with ``small``. ``X=None``: the defaults for any width.
    """
    tags = get_detector_tags(cls)
    signature = inspect.signature(cls).parameters
    params = {}
    if head is not None:
        params["head"] = head
    if "random_state" in signature:
        params["random_state"] = 0
    if X is not None and X.ndim == 2:
        d = X.shape[1]
        if tags.input == "blocks":
            params["block_sizes"] = [d // 2, d - d // 2]
        if "block_shapes" in signature:
            params["block_shapes"] = [(2, d // 2)]
    if small:  # by the registered class's name (cls may be a test-only subclass)
        name = next(c for c in cls.__mro__ if "_detector_tags" in vars(c)).__name__
        params.update(SMALL_PARAMS.get(name, ({},))[0])
    return params


def make_case(cls, X2, X4, y, head, *, ndim=None, small=True, with_head=None, name=None,
              params=None):
    """Build ``cls`` for the data, as its tags declare.

    Parameters
    ----------
    cls : type
        A registered detector class that takes arrays.
    X2 : ndarray of shape (n, D)
        2-D features (``D`` even: ``[max | mean]`` rows and two blocks).
    X4 : ndarray of shape (n, C, H, W) or None
        4-D maps, ``C <= D``; ``None``: the 2-D input only.
    y : ndarray of shape (n,)
        Class labels ``0 .. K - 1``.
    head : tuple (coef (K, D), intercept (K,))
    ndim : {2, 4} or None
        The input rank; ``None``: 2 when the class accepts 2-D rows, else 4.
    small : bool
        Apply :data:`SMALL_PARAMS`.
    with_head : bool or None
        Pass the head (``None``: when the tags say ``"required"`` or ``"or_logits"``).
    name, params :
        A variant's name and its extra parameters.
    """
    tags = get_detector_tags(cls)
    if tags.input == "images":
        raise ValueError(f"{cls.__name__}: {IMAGES_REASON}")
    ndim = ndim or (2 if 2 in tags.ndim else 4)
    if ndim not in tags.ndim:
        raise ValueError(f"{cls.__name__} takes {tags.ndim}-D input, not {ndim}-D")
    X = X2 if ndim == 2 else X4
    width = X.shape[1]
    if ndim == 2 and tags.input == "max_avg":
        width //= 2  # the head reads the channel means, the mean half of [max | mean]
    elif ndim == 2 and "block_shapes" in inspect.signature(cls).parameters:
        width = 2  # the channel means of the flattened maps of 2 channels (below)
    if with_head is None:
        with_head = tags.head in ("required", "or_logits")
    kwargs = detector_params(cls, X=X, head=(head[0][:, :width], head[1]) if with_head else None,
                             small=small)
    kwargs.update(params or {})
    labels = None
    if tags.labels is not None:
        labels = np.asarray(y).copy()
        if tags.ood_rows:
            labels[5::6] = -1
    return Case(name or cls.__name__, cls, kwargs, X, labels,
                head_width=width if with_head else None)


def make_model_detector(cls, model, feature_block, *, small=True, **params):
    """A detector that runs ``model``, as its tags and signature declare.

    A required ``blocks`` parameter gets ``[feature_block]`` (the layer whose
    output the head reads), as the benchmark builds it.
    """
    if get_detector_tags(cls).input != "images":
        raise ValueError(f"{cls.__name__} takes arrays, not images")
    kwargs = detector_params(cls, small=small)
    blocks = inspect.signature(cls).parameters.get("blocks")
    if blocks is not None and blocks.default is inspect.Parameter.empty:
        kwargs["blocks"] = [feature_block]
    return cls(model, **{**kwargs, **params})


#: Variants beyond one instance per class, for a code path the default instance does
#: not run: name -> (class name, parameters, pass the head).
VARIANTS = {
    # NAP-E: the head reads the channel means (the mean half of [max | mean] rows, the
    # spatial means of maps), a width of its own.
    "NAP-E": ("NAP", {"weight": 0.4}, True),
}


def cases(X2, X4, y, head, *, ndim=None, small=True, variants=True):
    """``name -> Case`` for every array detector of the registry accepting ``ndim``.

    With ``ndim=None`` each class gets its preferred rank (2-D rows when
    accepted); with ``ndim=4`` only the classes that accept 4-D maps.
    """
    classes = dict(array_detectors())
    out = {}
    for name, cls in classes.items():
        if ndim is not None and ndim not in get_detector_tags(cls).ndim:
            continue
        out[name] = make_case(cls, X2, X4, y, head, ndim=ndim, small=small)
    if variants:
        for name, (base, params, with_head) in VARIANTS.items():
            if base in out:
                out[name] = make_case(classes[base], X2, X4, y, head, ndim=ndim, small=small,
                                      with_head=with_head, name=name, params=params)
    return out


# ------------------------------------------------------------- the tests' tiny data
RNG = np.random.default_rng(0)
N, D, K = 36, 6, 3
X2 = np.abs(RNG.normal(size=(N, D))) * (RNG.random((N, D)) > 0.2)  # post-ReLU-like
Y = np.arange(N) % K
W = RNG.normal(size=(K, D))
B = RNG.normal(size=K) * 0.1
HEAD = (W, B)
X4 = np.abs(RNG.normal(size=(N, 4, 3, 3)))
