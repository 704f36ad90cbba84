"""The detectors the benchmark runs: how each is built, fed and tuned."""

from dataclasses import dataclass

from ..detectors.activation import ASH, DICE, LINe, ReAct
from ..detectors.density import KNN, GaussianDensity, Mahalanobis, ViM
from ..detectors.logits import Energy, MaxLogit, MaxSoftmax
from ..detectors.norms import NAP, FeatureNorm, NegativeAwareNorm
from .exceptions import BenchmarkError


@dataclass(frozen=True)
class DetectorSpec:
    """One row of the benchmark: how to build, feed and tune a detector.

    ``make(head)`` returns an unfitted detector given the final layer as a
    ``(coef, intercept)`` pair; ``features`` names the input: ``"h"`` (fc
    input), ``"pooled"`` (global average of the last stage, before any L2
    normalisation), ``"maxavg"`` (``[max | avg]`` per channel of the last
    stage), ``"maps"`` (the last stage's map, ``(N, C, H*W, 1)``) or
    ``"images"``; ``model`` is ``"plain"`` or ``"l2"``; ``labels`` says
    whether ``fit`` gets the class labels; ``grid`` is the pseudo-OOD tuning
    grid (``None``: nothing to tune).
    """

    key: str
    name: str
    make: object
    features: str = "h"
    model: str = "plain"
    labels: bool = False
    grid: object = None


def _knn_grid(n_bank):
    return {"n_neighbors": [k for k in (1, 5, 10, 20, 50, 100, 200) if k < n_bank]}


# The default reg_covar=0 is DDU's jitter rule; larger values regularise singular
# class covariances (the L2 model's features lie on a sphere).
_GDA_GRID = {"reg_covar": [0.0, 1e-6, 1e-4, 1e-2]}


#: Every detector of the library, with its documented default parameters.
DETECTORS = [
    DetectorSpec("msp", "MSP", MaxSoftmax),
    DetectorSpec("maxlogit", "MaxLogit", MaxLogit),
    DetectorSpec("energy", "Energy", Energy),
    DetectorSpec("react", "ReAct", ReAct, grid={"percentile": [80, 85, 90, 95, 99]}),
    DetectorSpec("dice", "DICE", DICE, grid={"percentile": [10, 30, 50, 70, 90]}),
    DetectorSpec("ash", "ASH", ASH, grid={"percentile": [50, 65, 80, 90, 95]}),
    DetectorSpec("line", "LINe", LINe, labels=True, grid={
        "p_w": [10, 50, 90], "p_a": [10, 50, 90], "clip_percentile": [90, 99]}),
    DetectorSpec("vim", "ViM", ViM),
    DetectorSpec("mahalanobis", "Mahalanobis", lambda head: Mahalanobis(), labels=True),
    DetectorSpec("mahalanobis+nan", "Mahalanobis+NAN",
                 lambda head: Mahalanobis(nan_rescale=True), "maps", labels=True),
    DetectorSpec("knn", "KNN", lambda head: KNN(n_neighbors=50), grid=_knn_grid),
    DetectorSpec("knn+nan", "KNN+NAN", lambda head: KNN(n_neighbors=50, nan_rescale=True),
                 "maps"),
    DetectorSpec("gda", "GaussianDensity", lambda head: GaussianDensity(), labels=True,
                 grid=_GDA_GRID),
    # Haas et al.: whether the GDA sees the normalised feature is unverified: both.
    DetectorSpec("gda-l2", "GaussianDensity (L2 model)", lambda head: GaussianDensity(),
                 "h", "l2", labels=True, grid=_GDA_GRID),
    DetectorSpec("gda-l2-prenorm", "GaussianDensity (L2 model, pre-norm h)",
                 lambda head: GaussianDensity(), "pooled", "l2", labels=True, grid=_GDA_GRID),
    DetectorSpec("featurenorm", "FeatureNorm (last block)", lambda head: FeatureNorm(),
                 "maps"),
    DetectorSpec("blockselection", "BlockSelection", None, "images"),
    DetectorSpec("nan", "NAN", lambda head: NegativeAwareNorm(), "maps"),
    DetectorSpec("nan-l2", "NAN (L2 model)", lambda head: NegativeAwareNorm(), "maps", "l2"),
    DetectorSpec("nap", "NAP", lambda head: NAP(), "maxavg"),
    DetectorSpec("nap-e", "NAP-E (w=0.4)", lambda head: NAP(head, weight=0.4), "maxavg",
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
