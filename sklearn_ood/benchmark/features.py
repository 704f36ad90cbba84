"""The benchmark's features: one extractor pass per image set and model."""

import numpy as np
import torch

from ..extraction import BlockFeatureExtractor

__all__ = ["extract_all", "extract_features", "stage_channels"]


def extract_all(nets, image_sets, *, progress, log):
    """Run every image set once through every model.

    Parameters
    ----------
    nets : dict
        Model kind -> ``torch.nn.Module``.
    image_sets : dict
        Set name -> images.
    progress : bool
        Show progress bars on stderr.
    log : callable
        Called with one progress message at a time.

    Returns
    -------
    features : dict
        Model kind -> set name -> the features of :func:`extract_features`,
        plus ``"images"``: the images themselves, for the detectors that run
        the model.
    """
    features = {}
    for kind, net in nets.items():
        features[kind] = {}
        for set_name, X in image_sets.items():
            log(f"extracting features: {kind} model, {set_name} ({len(X)} images)")
            features[kind][set_name] = {**extract_features(net, X, progress=progress),
                                        "images": X}
    return features


def extract_features(model, X, *, progress, batch_size=256):
    """One extractor call: last-stage ``max``/``avg``/flattened map, the fc input, and
    the global average of every stage.

    Returns a dict with ``h`` (fc input), ``pooled`` (global average of the
    last stage), ``maxavg`` (``[max | avg]``, NAP's input), ``maps``
    (``(N, C, H*W, 1)``: the pre-pooling map, for NegativeAwareNorm,
    FeatureNorm, RankFeat, Gram and the distances with
    ``negative_aware_rescale``) and ``stages`` (the global average of every
    stage, first to last, side by side: MultiBlockMahalanobis's input, split
    by :func:`stage_channels`).
    """
    stage, earlier = model.block_names[-1], list(model.block_names[:-1])
    extractor = BlockFeatureExtractor(
        model, [stage, "penultimate", *earlier],
        reduce={stage: ["max", "avg", "flatten"], "penultimate": "flatten",
                **dict.fromkeys(earlier, "avg")},
        batch_size=batch_size, progress=progress)
    F = extractor.fit(X[:1]).transform(X)
    C, D = model.feature_dim, model.fc.in_features
    n_last = extractor.block_shapes_[stage][0]
    n_map = n_last - 2 * C
    n_earlier = F.shape[1] - n_last - D
    return {
        "h": np.ascontiguousarray(F[:, n_last:n_last + D]),
        "pooled": np.ascontiguousarray(F[:, C:2 * C]),
        "maxavg": np.ascontiguousarray(F[:, :2 * C]),
        "maps": np.ascontiguousarray(F[:, 2 * C:2 * C + n_map]).reshape(len(F), C, -1, 1),
        "stages": np.ascontiguousarray(
            np.hstack([F[:, n_last + D:n_last + D + n_earlier], F[:, C:2 * C]])),
    }


def stage_channels(model):
    """Channels of each stage of ``model`` (its ``block_names``), first to last.

    The ``num_features`` of the last ``BatchNorm2d`` inside each stage: the
    column count of that stage in the ``"stages"`` feature.
    """
    modules = dict(model.named_modules())
    return [[m.num_features for m in modules[name].modules()
             if isinstance(m, torch.nn.BatchNorm2d)][-1] for name in model.block_names]
