"""The benchmark's features: one extractor pass per image set and model."""

import numpy as np

from ..extraction import BlockFeatureExtractor

__all__ = ["extract_all", "extract_features"]


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
    """One extractor call: last-stage ``max``/``avg``/flattened map and the fc input.

    Returns a dict with ``h`` (fc input), ``pooled`` (global average of the
    last stage), ``maxavg`` (``[max | avg]``, NAP's input) and ``maps``
    (``(N, C, H*W, 1)``: the pre-pooling map, for NegativeAwareNorm,
    FeatureNorm and the distances with ``negative_aware_rescale``).
    """
    stage = model.block_names[-1]
    extractor = BlockFeatureExtractor(
        model, [stage, "penultimate"],
        reduce={stage: ["max", "avg", "flatten"], "penultimate": "flatten"},
        batch_size=batch_size, progress=progress)
    F = extractor.fit(X[:1]).transform(X)
    C, D = model.feature_dim, model.fc.in_features
    n_map = extractor.block_shapes_[stage][0] - 2 * C
    return {
        "h": np.ascontiguousarray(F[:, -D:]),
        "pooled": np.ascontiguousarray(F[:, C:2 * C]),
        "maxavg": np.ascontiguousarray(F[:, :2 * C]),
        "maps": np.ascontiguousarray(F[:, 2 * C:2 * C + n_map]).reshape(len(F), C, -1, 1),
    }

