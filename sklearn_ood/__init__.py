"""sklearn-ood: out-of-distribution detection for PyTorch models, the scikit-learn way.

Every detector follows scikit-learn's outlier-detector API: ``fit`` on
in-distribution data, then ``score_samples`` (higher means more
in-distribution), ``decision_function`` and ``predict`` (+1 ID, -1 OOD).
"""

import importlib
import importlib.util

#: Public name -> the submodule defining it. The submodules are imported on first
#: access (PEP 562), so ``import sklearn_ood`` and the command line's ``--help``
#: import neither PyTorch nor scikit-learn.
_EXPORTS = {
    **dict.fromkeys(["ODIN", "AdaSCALE", "BlockSelection", "InputPreprocessedMahalanobis",
                     "MCDropout"], "model_detectors"),
    **dict.fromkeys(["ASH", "DICE", "Energy", "Entropy", "FDBD", "FeatureNorm",
                     "GaussianDensity", "GaussianMixture", "GEN", "GradNorm", "Gram",
                     "KLMatching", "KNN", "LINe", "LTS", "Mahalanobis", "MaxLogit",
                     "MaxSoftmax", "MultiBlockMahalanobis", "NAP", "NCI", "NECO",
                     "NegativeAwareNorm", "NNGuide", "OpenMax", "RankFeat", "ReAct",
                     "RelativeMahalanobis", "SCALE", "SHE", "ViM", "VRA"], "detectors"),
    "ConformalDetector": "conformal",
    **dict.fromkeys(["ClassSubsetDetector", "HeldOutClassSplit"], "held_out_classes"),
    "neural_collapse": "diagnostics",
    **dict.fromkeys(["ScoreDistributionDisplay", "plot_precision_recall", "plot_roc"],
                    "display"),
    "BlockFeatureExtractor": "extraction",
    **dict.fromkeys(["Jigsaw", "jigsaw", "make_pseudo_ood"], "pseudo_ood"),
    **dict.fromkeys(["PseudoOODSplit", "tune_on_pseudo_ood"], "tuning"),
}


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    elif importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_EXPORTS})


__version__ = "0.1.0"

__all__ = [
    "AdaSCALE",
    "ASH",
    "BlockFeatureExtractor",
    "BlockSelection",
    "ClassSubsetDetector",
    "ConformalDetector",
    "DICE",
    "Energy",
    "Entropy",
    "FDBD",
    "FeatureNorm",
    "GaussianDensity",
    "GaussianMixture",
    "GEN",
    "GradNorm",
    "Gram",
    "HeldOutClassSplit",
    "InputPreprocessedMahalanobis",
    "Jigsaw",
    "jigsaw",
    "KLMatching",
    "KNN",
    "LINe",
    "LTS",
    "Mahalanobis",
    "make_pseudo_ood",
    "MaxLogit",
    "MaxSoftmax",
    "MCDropout",
    "MultiBlockMahalanobis",
    "NAP",
    "NCI",
    "NECO",
    "NegativeAwareNorm",
    "neural_collapse",
    "NNGuide",
    "ODIN",
    "OpenMax",
    "plot_precision_recall",
    "plot_roc",
    "PseudoOODSplit",
    "RankFeat",
    "ReAct",
    "RelativeMahalanobis",
    "SCALE",
    "ScoreDistributionDisplay",
    "SHE",
    "tune_on_pseudo_ood",
    "ViM",
    "VRA",
]
