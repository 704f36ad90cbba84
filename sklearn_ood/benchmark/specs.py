"""The detectors the benchmark runs, described as data: how each is built, fed and tuned.

The rows are derived from the registry (:func:`sklearn_ood.discovery.all_detectors`):
every detector class gives one row with its documented defaults, built, fed
and tuned as its :class:`~sklearn_ood._tags.DetectorTags` declare, so a new
detector module is benchmarked without an edit here. This module adds only
the benchmark's own choices: the few changes to a default row, the variants
the papers report (:data:`VARIANTS`) and the detectors it cannot run
(:data:`NOT_RUN`).

One name per thing: a row is named after the detector's class (a variant in
parentheses, a combination after ``+``) and its key is the snake case of the
class (its module's name), with the same variant suffix.
"""

import difflib
import inspect
import re
from dataclasses import dataclass, field

from .._tags import get_detector_tags
from ..detectors import (
    KNN, NAP, GaussianDensity, Gram, Mahalanobis, MaxSoftmax, NegativeAwareNorm,
)
from ..discovery import all_detectors
from .exceptions import BenchmarkError
from .features import head_of, layout_of, stage_channels


@dataclass(frozen=True)
class DetectorSpec:
    """One detector of the benchmark: how to build, feed and tune it.

    Attributes
    ----------
    key : str
        Short name for ``--detectors``: the module of the class (e.g.
        ``"max_softmax"``), with a variant suffix (e.g. ``"-l2"``).
    name : str
        Row name in the tables: the class name (e.g. ``"MaxSoftmax"``), with
        the variant in parentheses or the combination after ``+``.
    make : callable
        ``make(net)`` returns the unfitted detector for the trained model
        ``net`` (a ``torch.nn.Module``). A detector with a ``random_state``
        parameter gets the run's seed.
    features : {"h", "pooled", "maxavg", "maps", "stages", "images"}, default="h"
        The input: ``"h"`` (fc input), ``"pooled"`` (global average of the
        last stage, before any L2 normalisation), ``"maxavg"`` (``[max | avg]``
        per channel of the last stage), ``"maps"`` (the last stage's map,
        ``(N, C, H*W, 1)``), ``"stages"`` (the global average of every stage,
        side by side) or ``"images"`` (for detectors that run the model).
    model : {"plain", "l2"}, default="plain"
        The model whose features (or which, for ``make``) the detector reads.
    labels : bool, default=False
        Whether ``fit`` gets the class labels.
    grid : callable or None, default=None
        ``grid(n_samples)`` returns the pseudo-OOD tuning grid for
        ``n_samples`` ID fit rows; ``None``: nothing to tune.
    max_fit : int or None, default=None
        Fit on a seeded sample of at most this many fit rows; ``None``: all.
    max_eval : int or None, default=None
        Score a seeded sample of at most this many rows of each set (the ID
        test and OOD sets, and in the search the validation rows and their
        puzzles); ``None``: all.
    note : callable or None, default=None
        ``note(detector, n_fit)`` returns a line for the report's notes about
        the fitted detector and the number of rows it was fitted on.
    calibrate : bool, default=False
        Whether ``fit`` also gets the validation images (their labels with
        ``labels``) as held-out calibration rows ``X_cal``: for the detectors
        whose tags declare calibrating statistics (a temperature, a
        standardisation, templates, a normaliser), fitted on rows neither the
        models nor their modelling statistics saw, as their references do.
    """

    key: str
    name: str
    make: object
    features: str = "h"
    model: str = "plain"
    labels: bool = False
    grid: object = None
    max_fit: object = None
    max_eval: object = None
    note: object = None
    calibrate: bool = False


#: The benchmark's input of each declared input kind (:data:`~.features.FEATURES`).
FEATURE_OF = {"features": "h", "maps": "maps", "max_avg": "maxavg", "blocks": "stages",
              "images": "images"}
#: Detectors that run the model (a gradient pass or several forward passes per image)
#: fit on at most this many fit images.
MAX_FIT_IMAGES = 2000


def _key(cls):
    """The class's module name, or its snake case in a module of several detectors."""
    module = cls.__module__.rsplit(".", 1)[-1]
    if sum(c.__module__ == cls.__module__ for _, c in all_detectors()) == 1:
        return module
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", cls.__name__).lower()


def _maker(cls, *, head, params):
    """``make(net)``: the detector for the trained model ``net``.

    A feature detector gets the model's final layer when it needs it (``head``)
    and the channels of each block when it reads several (``block_sizes``). A
    detector that runs the model gets the model, its head's name and, for a
    required ``blocks`` parameter, the feature block; BlockSelection chooses
    among the stages and the feature block of a model of the user's (the
    library's models: its ``"auto"`` blocks).
    """
    signature = inspect.signature(cls).parameters

    def make(net):
        kwargs = dict(params)
        if get_detector_tags(cls).input == "images":
            layout = layout_of(net)
            if "head" in signature:
                kwargs["head"] = layout.head
            blocks = signature.get("blocks")
            if blocks is not None and blocks.default is inspect.Parameter.empty:
                kwargs["blocks"] = [layout.feature]
            elif blocks is not None and getattr(net, "benchmark_layout", None) is not None:
                kwargs["blocks"] = [*layout.stages, layout.feature]
            return cls(net, **kwargs)
        if head:
            kwargs["head"] = head_of(net)
        if "block_sizes" in signature and get_detector_tags(cls).input == "blocks":
            kwargs["block_sizes"] = stage_channels(net)
        return cls(**kwargs)

    return make


@dataclass(frozen=True)
class Variant:
    """A row beyond a detector's default row: other parameters, input or model.

    Fields left ``None`` are the default row's; ``grid=False`` turns tuning off.
    """

    key: str
    name: str
    cls: type
    params: dict = field(default_factory=dict)
    features: object = None
    model: object = None
    head: object = None
    labels: object = None
    grid: object = None


def _temperature_note(detector, n_fit):
    return (f"MaxSoftmax (T fitted): T = {detector.temperature_:.4g}, minimising the NLL of "
            "the labelled validation images.")


def _block_note(detector, n_fit):
    return (f"BlockSelection: fitted on {n_fit} training images; selected "
            f"{detector.block_!r} among {detector.blocks_}.")


#: The papers' variants the benchmark reports beside the default rows.
VARIANTS = [
    Variant("max_softmax-t", "MaxSoftmax (T fitted)", MaxSoftmax, {"temperature": "fit"}),
    Variant("mahalanobis+negative_aware_norm", "Mahalanobis+NegativeAwareNorm", Mahalanobis,
            {"negative_aware_rescale": True}, features="maps"),
    Variant("mahalanobis-normalize", "Mahalanobis (normalize, Mahalanobis++)", Mahalanobis,
            {"normalize": True}),
    Variant("knn+negative_aware_norm", "KNN+NegativeAwareNorm", KNN,
            {"negative_aware_rescale": True}, features="maps", grid=False),
    # Haas et al.: whether GaussianDensity sees the normalised feature is unverified:
    # both rows. Larger reg_covar values regularise singular class covariances (the L2
    # model's features lie on a sphere).
    Variant("gaussian_density-l2", "GaussianDensity (L2 model)", GaussianDensity, model="l2"),
    Variant("gaussian_density-l2-prenorm", "GaussianDensity (L2 model, pre-norm h)",
            GaussianDensity, features="pooled", model="l2"),
    # Park et al.'s Table 5 ablation: NAN without its sparsity term, the plain L1 norm.
    Variant("negative_aware_norm-l1", "NegativeAwareNorm (L1 only)", NegativeAwareNorm,
            {"divide_by_active": False}),
    Variant("negative_aware_norm-l2", "NegativeAwareNorm (L2 model)", NegativeAwareNorm,
            model="l2"),
    Variant("nap-e", "NAP-E (w=0.4)", NAP, {"weight": 0.4}, head=True),
    # Sastry & Oore's recipe: the bounds of the class the network predicts, deviations
    # over the max softmax (the default row: the nearest class's bounds, no network).
    Variant("gram-paper", "Gram (paper: predicted class)", Gram, head=True),
]

#: Changes to a detector's default row. The benchmark's fit set holds no OOD rows, so
#: MultiBlockMahalanobis averages its block scores instead of fitting its logistic
#: combiner; NAP's grid tunes NAP-E's weight, which needs the head (row "nap-e").
DEFAULT_CHANGES = {
    "multi_block_mahalanobis": dict(name="MultiBlockMahalanobis (mean)",
                                    params={"combiner": "mean"}),
    "nap": dict(grid=False),
}

#: Registered detectors the benchmark does not run, and why.
NOT_RUN = {"mc_dropout": "the benchmark's models have no dropout layer"}

#: Report notes about a fitted row: ``note(detector, n_fit)``, by key.
NOTES = {"max_softmax-t": _temperature_note, "block_selection": _block_note}


def _spec(cls, variant=None):
    tags = get_detector_tags(cls)
    v = variant or Variant(**{"key": _key(cls), "name": cls.__name__, "cls": cls,
                              **DEFAULT_CHANGES.get(_key(cls), {})})
    head = v.head if v.head is not None else tags.head in ("required", "or_logits")
    grid = None if v.grid is False else v.grid if v.grid is not None else tags.grid
    return DetectorSpec(
        v.key, v.name, _maker(cls, head=head, params=v.params),
        features=v.features or FEATURE_OF[tags.input], model=v.model or "plain",
        labels=v.labels if v.labels is not None else tags.labels is not None,
        grid=(lambda n, g=grid: g(n) if callable(g) else g) if grid else None,
        max_fit=MAX_FIT_IMAGES if tags.input == "images" else None, note=NOTES.get(v.key),
        calibrate=bool(tags.calibrated))


def _all_specs():
    specs = []
    for _, cls in all_detectors():
        if _key(cls) in NOT_RUN:
            continue
        specs.append(_spec(cls))
        specs += [_spec(cls, v) for v in VARIANTS if v.cls is cls]
    return specs


#: Every detector of the library (but :data:`NOT_RUN`), its default row and its variants.
DETECTORS = _all_specs()


def select_detectors(names=None):
    """Return the specs named in ``names`` (keys or display names, any case).

    Examples
    --------
    >>> from sklearn_ood.benchmark.specs import select_detectors
    >>> [spec.name for spec in select_detectors(["knn", "Energy"])]
    ['Energy', 'KNN']
    """
    if not names:
        return list(DETECTORS)
    lookup = {}
    for spec in DETECTORS:
        lookup[spec.key] = lookup[spec.name.lower()] = spec
    unknown = [n for n in names if n.lower() not in lookup]
    if unknown:
        close = {n: list(dict.fromkeys(lookup[m].key for m in difflib.get_close_matches(
            n.lower(), lookup, n=5)))[:3] for n in unknown}
        hints = "".join(f" {n!r}: did you mean {' or '.join(map(repr, c))}?"
                        for n, c in close.items() if c)
        raise BenchmarkError(
            f"Unknown detector(s) {unknown}.{hints} Known detectors (key: name): "
            + "; ".join(f"{s.key}: {s.name}" for s in DETECTORS) + "."
        )
    wanted = {lookup[n.lower()].key for n in names}
    return [spec for spec in DETECTORS if spec.key in wanted]
