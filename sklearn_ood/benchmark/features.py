"""The benchmark's features: one extractor pass per image set and model."""

from dataclasses import dataclass

import numpy as np
import torch

from ..extraction import BlockFeatureExtractor

__all__ = ["FEATURES", "Layout", "extract_all", "extract_features", "head_of", "layout_of",
           "stage_channels"]

#: The feature names of :func:`extract_features` (plus ``"images"``).
FEATURES = ("h", "pooled", "maxavg", "maps", "stages", "images")


@dataclass(frozen=True)
class Layout:
    """The blocks of a model the benchmark reads.

    Attributes
    ----------
    stages : tuple of str
        Blocks with a ``(N, C, H, W)`` output, first to last; the last one
        gives the maps (and their ``max``/``avg``), each one a column group of
        the ``"stages"`` feature. Empty: no map-based input.
    feature : str
        The block whose flattened output is the head's input ``h``.
    head : str
        The final ``nn.Linear``.
    channels : tuple of int
        Channels of each stage.
    """

    stages: tuple
    feature: str
    head: str
    channels: tuple

    @property
    def inputs(self):
        """The feature names this layout gives (:data:`FEATURES`)."""
        return FEATURES if self.stages else ("h", "images")


def layout_of(model):
    """The model's :class:`Layout`: its ``benchmark_layout`` attribute (a model of
    the user's), else that of the library's :class:`~sklearn_ood.models.ResNet`
    and :class:`~sklearn_ood.models.SmallCNN` (``block_names``, ``penultimate``,
    ``fc``)."""
    layout = getattr(model, "benchmark_layout", None)
    if layout is not None:
        return layout
    modules = dict(model.named_modules())
    channels = tuple([m.num_features for m in modules[name].modules()
                      if isinstance(m, torch.nn.BatchNorm2d)][-1] for name in model.block_names)
    return Layout(tuple(model.block_names), "penultimate", "fc", channels)


def head_of(model):
    """The model's final ``nn.Linear`` (its layout's ``head``)."""
    return dict(model.named_modules())[layout_of(model).head]


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
    the global average of every stage (the blocks of :func:`layout_of`).

    Returns a dict with ``h`` (fc input), ``pooled`` (global average of the
    last stage), ``maxavg`` (``[max | avg]``, NAP's input), ``maps``
    (``(N, C, H*W, 1)``: the pre-pooling map, for NegativeAwareNorm,
    FeatureNorm, RankFeat, Gram and the distances with
    ``negative_aware_rescale``) and ``stages`` (the global average of every
    stage, first to last, side by side: MultiBlockMahalanobis's input, split
    by :func:`stage_channels`). A layout without stages gives ``h`` only.
    """
    layout = layout_of(model)
    D = head_of(model).in_features
    if not layout.stages:
        extractor = BlockFeatureExtractor(model, [layout.feature], reduce="flatten",
                                          batch_size=batch_size, progress=progress)
        return {"h": np.ascontiguousarray(extractor.fit(X[:1]).transform(X))}
    stage, earlier = layout.stages[-1], list(layout.stages[:-1])
    extractor = BlockFeatureExtractor(
        model, [stage, layout.feature, *earlier],
        reduce={stage: ["max", "avg", "flatten"], layout.feature: "flatten",
                **dict.fromkeys(earlier, "avg")},
        batch_size=batch_size, progress=progress)
    F = extractor.fit(X[:1]).transform(X)
    C = layout.channels[-1]
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
    """Channels of each stage of ``model`` (:func:`layout_of`), first to last.

    For the library's models, the ``num_features`` of the last ``BatchNorm2d``
    inside each stage: the column count of that stage in the ``"stages"``
    feature.
    """
    return list(layout_of(model).channels)
