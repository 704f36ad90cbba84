"""The benchmark's features: one extractor pass per image set and model."""

import numpy as np

from ..extraction import BlockFeatureExtractor


def extract_features(model, X, *, progress, batch_size=256):
    """One extractor call: last-stage ``max``/``avg``/flattened map and the fc input.

    Returns a dict with ``h`` (fc input), ``pooled`` (global average of the
    last stage), ``maxavg`` (``[max | avg]``, NAP's input) and ``maps``
    (``(N, C, H*W, 1)``: the pre-pooling map, for NAN, FeatureNorm and the
    NAN-rescaled distances).
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


def head_of(model):
    """The model's final layer as a ``(coef, intercept)`` pair of NumPy copies."""
    fc = model.fc
    return (fc.weight.detach().cpu().numpy().copy(), fc.bias.detach().cpu().numpy().copy())
