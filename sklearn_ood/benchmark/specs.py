"""The detectors the benchmark runs, described as data: how each is built, fed and tuned.

One name per thing: a row is named after the detector's class (a variant in
parentheses, a combination after ``+``) and its key is the class's module name
(the snake case of the class), with the same variant suffix.
"""

from dataclasses import dataclass

from ..detectors import (
    ASH, DICE, FDBD, GEN, KNN, NAP, NCI, NECO, SCALE, SHE, VRA, Energy, Entropy, FeatureNorm,
    GaussianDensity, GaussianMixture, GradNorm, Gram, KLMatching, LINe, Mahalanobis, MaxLogit,
    MaxSoftmax, MultiBlockMahalanobis, NegativeAwareNorm, NNGuide, OpenMax, RankFeat, ReAct,
    RelativeMahalanobis, ViM,
)
from ..detectors import (
    ash, dice, fdbd, gaussian_density, gaussian_mixture, gram, knn, line, logits, nap, nci,
    neco, nnguide, openmax, react, scale, vra,
)
from ..model_detectors import ODIN, AdaSCALE, BlockSelection, InputPreprocessedMahalanobis
from ..model_detectors import adascale, input_preprocessed_mahalanobis, odin
from .features import head_of, layout_of, stage_channels
from .exceptions import BenchmarkError


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
    fit_set : {"fit", "validation"}, default="fit"
        The ID set ``fit`` learns from: the model's training rows, or the
        held-out validation rows (temperature scaling and KL-Matching, as their
        references: a network fits its own training rows too well).
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
    fit_set: str = "fit"


def _on_head(cls, **params):
    """``make`` of a detector built on the model's final layer."""
    return lambda net: cls(head_of(net), **params)


def _alone(cls, **params):
    """``make`` of a detector that needs nothing of the model."""
    return lambda net: cls(**params)


def _stages(cls, **params):
    """``make`` of a multi-block detector reading the ``"stages"`` feature."""
    return lambda net: cls(block_sizes=stage_channels(net), **params)


def _candidate_blocks(net):
    """BlockSelection over the library model's ``"auto"`` blocks, or over the blocks
    a model of the user's names (stages, then the feature block)."""
    if getattr(net, "benchmark_layout", None) is None:
        return BlockSelection(net)
    layout = layout_of(net)
    return BlockSelection(net, [*layout.stages, layout.feature])


def _temperature_note(detector, n_fit):
    return (f"MaxSoftmax (T fitted): T = {detector.temperature_:.4g}, minimising the NLL of "
            f"the {n_fit} labelled validation rows.")


def _block_note(detector, n_fit):
    return (f"BlockSelection: fitted on {n_fit} training images; selected "
            f"{detector.block_!r} among {detector.blocks_}.")


#: Every detector of the library, with its documented default parameters.
DETECTORS = [
    DetectorSpec("max_softmax", "MaxSoftmax", _on_head(MaxSoftmax)),
    DetectorSpec("max_softmax-t", "MaxSoftmax (T fitted)",
                 _on_head(MaxSoftmax, temperature="fit"), labels=True, note=_temperature_note,
                 fit_set="validation"),
    DetectorSpec("max_logit", "MaxLogit", _on_head(MaxLogit)),
    DetectorSpec("energy", "Energy", _on_head(Energy)),
    DetectorSpec("entropy", "Entropy", _on_head(Entropy)),
    DetectorSpec("gen", "GEN", _on_head(GEN), grid=logits.tuning_grid),
    DetectorSpec("kl_matching", "KLMatching", _on_head(KLMatching), fit_set="validation"),
    DetectorSpec("react", "ReAct", _on_head(ReAct), grid=react.tuning_grid),
    DetectorSpec("dice", "DICE", _on_head(DICE), grid=dice.tuning_grid),
    DetectorSpec("ash", "ASH", _on_head(ASH), grid=ash.tuning_grid),
    DetectorSpec("scale", "SCALE", _on_head(SCALE), grid=scale.tuning_grid),
    DetectorSpec("vra", "VRA", _on_head(VRA), grid=vra.tuning_grid),
    DetectorSpec("rankfeat", "RankFeat", _on_head(RankFeat), features="maps"),
    DetectorSpec("line", "LINe", _on_head(LINe), labels=True, grid=line.tuning_grid),
    DetectorSpec("vim", "ViM", _on_head(ViM)),
    DetectorSpec("mahalanobis", "Mahalanobis", _alone(Mahalanobis), labels=True),
    DetectorSpec("mahalanobis+negative_aware_norm", "Mahalanobis+NegativeAwareNorm",
                 _alone(Mahalanobis, negative_aware_rescale=True), features="maps",
                 labels=True),
    # Without OOD rows in the fit set the logistic combiner cannot be fitted: the mean.
    DetectorSpec("multi_block_mahalanobis", "MultiBlockMahalanobis (mean)",
                 _stages(MultiBlockMahalanobis, combiner="mean"), features="stages",
                 labels=True),
    DetectorSpec("gram", "Gram (last block)", _alone(Gram), features="maps", labels=True,
                 grid=gram.tuning_grid),
    DetectorSpec("knn", "KNN", _alone(KNN, n_neighbors=50), grid=knn.tuning_grid),
    DetectorSpec("knn+negative_aware_norm", "KNN+NegativeAwareNorm",
                 _alone(KNN, n_neighbors=50, negative_aware_rescale=True), features="maps"),
    DetectorSpec("gaussian_density", "GaussianDensity", _alone(GaussianDensity), labels=True,
                 grid=gaussian_density.tuning_grid),
    # Haas et al.: whether GaussianDensity sees the normalised feature is unverified:
    # both rows. Larger reg_covar values regularise singular class covariances (the L2
    # model's features lie on a sphere).
    DetectorSpec("gaussian_density-l2", "GaussianDensity (L2 model)", _alone(GaussianDensity),
                 model="l2", labels=True, grid=gaussian_density.tuning_grid),
    DetectorSpec("gaussian_density-l2-prenorm", "GaussianDensity (L2 model, pre-norm h)",
                 _alone(GaussianDensity), features="pooled", model="l2", labels=True,
                 grid=gaussian_density.tuning_grid),
    DetectorSpec("mahalanobis-normalize", "Mahalanobis (normalize, Mahalanobis++)",
                 _alone(Mahalanobis, normalize=True), labels=True),
    DetectorSpec("relative_mahalanobis", "RelativeMahalanobis", _alone(RelativeMahalanobis),
                 labels=True),
    DetectorSpec("gaussian_mixture", "GaussianMixture", _alone(GaussianMixture), labels=True,
                 grid=gaussian_mixture.tuning_grid),
    DetectorSpec("she", "SHE", _on_head(SHE), labels=True),
    DetectorSpec("nnguide", "NNGuide", _on_head(NNGuide), grid=nnguide.tuning_grid),
    DetectorSpec("fdbd", "FDBD", _on_head(FDBD), grid=fdbd.tuning_grid),
    DetectorSpec("nci", "NCI", _on_head(NCI), grid=nci.tuning_grid),
    DetectorSpec("neco", "NECO", _alone(NECO), grid=neco.tuning_grid),
    DetectorSpec("gradnorm", "GradNorm", _on_head(GradNorm)),
    DetectorSpec("openmax", "OpenMax", _on_head(OpenMax), labels=True, grid=openmax.tuning_grid),
    DetectorSpec("feature_norm", "FeatureNorm (last block)", _alone(FeatureNorm),
                 features="maps"),
    DetectorSpec("block_selection", "BlockSelection", _candidate_blocks, features="images",
                 max_fit=2000, note=_block_note),
    # Detectors that run the model on images (gradients w.r.t. the input); MCDropout
    # is not run: the benchmark's models have no dropout layer.
    DetectorSpec("odin", "ODIN", ODIN, features="images", max_fit=2000,
                 grid=odin.tuning_grid),
    DetectorSpec("input_preprocessed_mahalanobis", "InputPreprocessedMahalanobis",
                 lambda net: InputPreprocessedMahalanobis(net, [layout_of(net).feature]),
                 features="images", labels=True, max_fit=2000,
                 grid=input_preprocessed_mahalanobis.tuning_grid),
    DetectorSpec("adascale", "AdaSCALE", lambda net: AdaSCALE(net, head=layout_of(net).head),
                 features="images", max_fit=2000,
                 grid=adascale.tuning_grid),
    DetectorSpec("negative_aware_norm", "NegativeAwareNorm", _alone(NegativeAwareNorm),
                 features="maps"),
    # Park et al.'s Table 5 ablation: NAN without its sparsity term, the plain L1 norm.
    DetectorSpec("negative_aware_norm-l1", "NegativeAwareNorm (L1 only)",
                 _alone(NegativeAwareNorm, divide_by_active=False), features="maps"),
    DetectorSpec("negative_aware_norm-l2", "NegativeAwareNorm (L2 model)",
                 _alone(NegativeAwareNorm), features="maps", model="l2"),
    DetectorSpec("nap", "NAP", _alone(NAP), features="maxavg"),
    DetectorSpec("nap-e", "NAP-E (w=0.4)", _on_head(NAP, weight=0.4), features="maxavg",
                 grid=nap.tuning_grid),
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
