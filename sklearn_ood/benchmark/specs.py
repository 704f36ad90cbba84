"""The detectors the benchmark runs: how each is built, fed and tuned."""

from dataclasses import dataclass

from ..detectors.activation import ASH, DICE, LINe, ReAct
from ..detectors.density import KNN, GaussianDensity, Mahalanobis, ViM
from ..detectors.logits import Energy, MaxLogit, MaxSoftmax
from ..detectors.norms import NAP, FeatureNorm, NegativeAwareNorm
from ..model_detectors import BlockSelection
from .exceptions import BenchmarkError
from .features import head_of


@dataclass(frozen=True)
class DetectorSpec:
    """One detector of the benchmark: how to build, feed and tune it.

    Attributes
    ----------
    key : str
        Short name for ``--detectors``.
    name : str
        Row name in the tables.
    make : callable
        ``make(net)`` returns the unfitted detector for the trained model
        ``net`` (a ``torch.nn.Module``). A detector with a ``random_state``
        parameter gets the run's seed.
    features : {"h", "pooled", "maxavg", "maps", "images"}, default="h"
        The input: ``"h"`` (fc input), ``"pooled"`` (global average of the
        last stage, before any L2 normalisation), ``"maxavg"`` (``[max | avg]``
        per channel of the last stage), ``"maps"`` (the last stage's map,
        ``(N, C, H*W, 1)``) or ``"images"`` (for detectors that run the model).
    model : {"plain", "l2"}, default="plain"
        The model whose features (or which, for ``make``) the detector reads.
    labels : bool, default=False
        Whether ``fit`` gets the class labels.
    grid : callable or None, default=None
        ``grid(n_samples)`` returns the pseudo-OOD tuning grid for
        ``n_samples`` ID fit rows; ``None``: nothing to tune.
    max_fit : int or None, default=None
        Fit on a seeded sample of at most this many fit rows; ``None``: all.
    note : callable or None, default=None
        ``note(detector, n_fit)`` returns a line for the report's notes about
        the fitted detector and the number of rows it was fitted on.
    """

    key: str
    name: str
    make: object
    features: str = "h"
    model: str = "plain"
    labels: bool = False
    grid: object = None
    max_fit: object = None
    note: object = None


def _on_head(cls, **params):
    """``make`` of a detector built on the model's final layer."""
    return lambda net: cls(head_of(net), **params)


def _alone(cls, **params):
    """``make`` of a detector that needs nothing of the model."""
    return lambda net: cls(**params)


def _block_note(detector, n_fit):
    return (f"BlockSelection: fitted on {n_fit} training images; selected "
            f"{detector.block_!r} among {detector.blocks_}.")


def _knn_grid(n_bank):
    return {"n_neighbors": [k for k in (1, 5, 10, 20, 50, 100, 200) if k < n_bank]}


# The default reg_covar=0 is DDU's jitter rule; larger values regularise singular
# class covariances (the L2 model's features lie on a sphere).
_GDA_GRID = {"reg_covar": [0.0, 1e-6, 1e-4, 1e-2]}


#: Every detector of the library, with its documented default parameters.
DETECTORS = [
    DetectorSpec("msp", "MSP", _on_head(MaxSoftmax)),
    DetectorSpec("maxlogit", "MaxLogit", _on_head(MaxLogit)),
    DetectorSpec("energy", "Energy", _on_head(Energy)),
    DetectorSpec("react", "ReAct", _on_head(ReAct), grid={"percentile": [80, 85, 90, 95, 99]}),
    DetectorSpec("dice", "DICE", _on_head(DICE), grid={"percentile": [10, 30, 50, 70, 90]}),
    DetectorSpec("ash", "ASH", _on_head(ASH), grid={"percentile": [50, 65, 80, 90, 95]}),
    DetectorSpec("line", "LINe", _on_head(LINe), labels=True, grid={
        "p_w": [10, 50, 90], "p_a": [10, 50, 90], "clip_percentile": [90, 99]}),
    DetectorSpec("vim", "ViM", _on_head(ViM)),
    DetectorSpec("mahalanobis", "Mahalanobis", _alone(Mahalanobis), labels=True),
    DetectorSpec("mahalanobis+nan", "Mahalanobis+NAN", _alone(Mahalanobis, nan_rescale=True),
                 "maps", labels=True),
    DetectorSpec("knn", "KNN", _alone(KNN, n_neighbors=50), grid=_knn_grid),
    DetectorSpec("knn+nan", "KNN+NAN", _alone(KNN, n_neighbors=50, nan_rescale=True), "maps"),
    DetectorSpec("gda", "GaussianDensity", _alone(GaussianDensity), labels=True,
                 grid=_GDA_GRID),
    # Haas et al.: whether the GDA sees the normalised feature is unverified: both.
    DetectorSpec("gda-l2", "GaussianDensity (L2 model)", _alone(GaussianDensity),
                 "h", "l2", labels=True, grid=_GDA_GRID),
    DetectorSpec("gda-l2-prenorm", "GaussianDensity (L2 model, pre-norm h)",
                 _alone(GaussianDensity), "pooled", "l2", labels=True, grid=_GDA_GRID),
    DetectorSpec("featurenorm", "FeatureNorm (last block)", _alone(FeatureNorm), "maps"),
    DetectorSpec("blockselection", "BlockSelection", BlockSelection, "images", max_fit=2000,
                 note=_block_note),
    DetectorSpec("nan", "NAN", _alone(NegativeAwareNorm), "maps"),
    DetectorSpec("nan-l2", "NAN (L2 model)", _alone(NegativeAwareNorm), "maps", "l2"),
    DetectorSpec("nap", "NAP", _alone(NAP), "maxavg"),
    DetectorSpec("nap-e", "NAP-E (w=0.4)", _on_head(NAP, weight=0.4), "maxavg",
                 grid={"weight": [0.2, 0.4, 0.6, 0.8]}),
]


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
        raise BenchmarkError(
            f"Unknown detector(s) {unknown}. Known detectors (key: name): "
            + "; ".join(f"{s.key}: {s.name}" for s in DETECTORS) + "."
        )
    wanted = {lookup[n.lower()].key for n in names}
    return [spec for spec in DETECTORS if spec.key in wanted]
