"""FeatureNorm with the block chosen by the jigsaw NormRatio (Yu et al., CVPR 2023)."""

import contextlib
import warnings
from numbers import Integral

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval

from ..detectors.feature_norm import feature_norm
from ..extraction import iter_block_batches, resolve_blocks
from ..pseudo_ood import jigsaw
from .._tags import DetectorTags
from ._base import ModelDetector

__all__ = ["BlockSelection", "candidate_blocks"]

_CONV_TYPES = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


def _has_conv(module):
    return any(isinstance(m, _CONV_TYPES) for m in module.modules())


def _is_block(module):
    """A composite module (it has sub-modules) containing a convolution."""
    return next(module.children(), None) is not None and _has_conv(module)


def candidate_blocks(model):
    """Names of the blocks of ``model`` that ``BlockSelection(blocks="auto")`` compares.

    The rule looks at the top-level children of ``model``, in registration
    order (assumed to be the forward order):

    1. children that are not blocks are skipped -- a block is a composite
       module (with sub-modules) that contains a convolution, so a bare stem
       convolution, BatchNorm, activations, pooling, flattening and the
       classifier are never candidates;
    2. a block wrapping exactly one sub-module is looked through (e.g. a
       wide-ResNet ``NetworkBlock`` holding one ``nn.Sequential``);
    3. if the (unwrapped) block has at least two sub-modules that are blocks
       themselves, those are the candidates (a ResNet stage ``layer1`` gives
       ``layer1.0``, ``layer1.1``, ...); otherwise the top-level child is
       one candidate (``block1`` of a VGG-style ``conv-BN-ReLU`` stack).

    For a flat network (one ``nn.Sequential`` of single layers, e.g. VGG's
    ``features``) this gives a single candidate: pass the module names to
    compare (e.g. its ReLU layers) as ``blocks`` instead.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    names : list of str
        Names from ``model.named_modules()``.

    Examples
    --------
    >>> from torch import nn
    >>> stage = lambda: nn.Sequential(
    ...     nn.Sequential(nn.Conv2d(4, 4, 3), nn.ReLU()),
    ...     nn.Sequential(nn.Conv2d(4, 4, 3), nn.ReLU()))
    >>> net = nn.Sequential()
    >>> net.add_module("stem", nn.Conv2d(1, 4, 3))
    >>> net.add_module("layer1", stage())
    >>> net.add_module("layer2", stage())
    >>> net.add_module("pool", nn.AdaptiveAvgPool2d(1))
    >>> candidate_blocks(net)
    ['layer1.0', 'layer1.1', 'layer2.0', 'layer2.1']
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    names = []
    for name, child in model.named_children():
        if not _is_block(child):
            continue
        stage, prefix = child, name
        while True:
            inner = list(stage.named_children())
            if len(inner) != 1 or not _is_block(inner[0][1]):
                break
            prefix, stage = f"{prefix}.{inner[0][0]}", inner[0][1]
        subs = [sub for sub, module in stage.named_children() if _is_block(module)]
        if len(subs) >= 2:
            names += [f"{prefix}.{sub}" for sub in subs]
        else:
            names.append(name)
    if not names:
        available = [name for name, _ in model.named_modules() if name]
        raise ValueError(
            f"blocks='auto' found no candidate block in {type(model).__name__}: no "
            f"top-level child is a composite module containing a convolution. Pass "
            f"the module names to compare as blocks=[...]; available: {available}."
        )
    return names


class BlockSelection(ModelDetector):
    """FeatureNorm of the block with the largest jigsaw NormRatio (Yu et al., 2023).

    An end-to-end detector on images. ``fit`` (on in-distribution training
    images) builds the 3x3 jigsaw puzzle of every image (:func:`jigsaw`),
    computes the FeatureNorm ``FN_b`` of every candidate block ``b`` on the
    images and on their puzzles, and selects

        ``block_ = argmax_b  NormRatio_b``,
        ``NormRatio_b = mean_i FN_b(x_i) / FN_b(jigsaw(x_i))``

    (a per-sample ratio, then the mean). The score is
    ``FN_{block_}(x) = mean_c ||ReLU(F_c(x))||_2`` of the selected block;
    higher means more in-distribution, as in the paper.

    Memory: the model runs once per batch over the images and once over the
    puzzles, with a forward hook on every candidate block reducing its output
    at once to per-channel norms (``iter_block_batches(..., reduce="norm")``):
    feature maps are never held, only ``n_samples x n_blocks`` numbers.
    Scoring runs the model up to the selected block only. The model is not
    modified; it runs in eval mode and its train/eval flags are restored.

    ``X`` may be an array or tensor, a lazily sliced array-like, a
    ``Dataset``, a ``DataLoader`` (not shuffling) or an iterable of batches,
    read in batches of ``batch_size`` (see
    :class:`~sklearn_ood.model_detectors.ModelDetector`); ``fit`` reads it once
    (each batch followed by its puzzles; the training scores that set
    ``offset_`` are the selected block's norms from that pass).

    Parameters
    ----------
    model : torch.nn.Module
        The trained classifier.
    blocks : "auto", str or list of str, default="auto"
        Candidate block names (from ``model.named_modules()``); ``"auto"``
        applies :func:`candidate_blocks` (every BasicBlock of a ResNet).
    grid : int, default=3
        Tiles per side of the jigsaw puzzles.
    batch_size : int, default=128
        Images per forward pass.
    device : str or torch.device, default="cpu"
        Where batches are sent; must be where the model's parameters are.
    random_state : int, RandomState instance or None, default=None
        Seeds the jigsaw permutations.
    contamination : float, default=0.05
        Fraction of training images below the threshold ``offset_``.

    Attributes
    ----------
    blocks_ : list of str
        The candidate blocks compared.
    norm_ratios_ : dict
        Block name -> NormRatio. A pair whose puzzle has FeatureNorm 0 has no
        ratio and is left out of that block's mean; a block where that holds
        for every image gets NaN and is never selected.
    block_ : str
        The selected block.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Channels of the images.

    See Also
    --------
    sklearn_ood.detectors.feature_norm.FeatureNorm : FeatureNorm of a block you choose.
    sklearn_ood.pseudo_ood.jigsaw : the pseudo-OOD images.
    candidate_blocks : the ``blocks="auto"`` rule.

    Notes
    -----
    Pass ``X`` with the model's usual preprocessing (normalisation included);
    the puzzles are made from these images (the official code forgets the
    normalisation there; see the methods page of the documentation). Fit on the ID *training* images.

    References
    ----------
    Yu, Shin, Lee, Jun & Lee, "Block Selection Method for Using Feature Norm
    in Out-of-distribution Detection", CVPR 2023.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from torch import nn
    >>> from sklearn_ood.model_detectors import BlockSelection
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(
    ...     nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()),
    ...     nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU()),
    ...     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    >>> X = np.random.default_rng(0).random((20, 1, 9, 9), dtype=np.float32)
    >>> det = BlockSelection(net, random_state=0).fit(X)
    >>> det.blocks_
    ['0', '1']
    >>> det.score_samples(X).shape
    (20,)
    """

    _detector_tags = DetectorTags(
        input="images", paper="Yu et al., CVPR 2023")

    _parameter_constraints = {
        **ModelDetector._parameter_constraints,
        "blocks": [str, list, tuple],
        "grid": [Interval(Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, model, blocks="auto", *, grid=3, batch_size=128, device="cpu",
                 random_state=None, contamination=0.05):
        self.model = model
        self.blocks = blocks
        self.grid = grid
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.contamination = contamination

    def _fit_images(self, data):
        if self.blocks == "auto":
            blocks = candidate_blocks(self.model)
        else:
            blocks = resolve_blocks(self.model, self.blocks)
        # Each batch is followed by its puzzles (never a full copy of X); one
        # RandomState across the batches draws exactly what jigsaw(X) would.
        rng = check_random_state(self.random_state)

        def images_then_puzzles():
            for batch in data.batches():
                yield batch
                yield torch.from_numpy(jigsaw(batch.detach().cpu().numpy(), self.grid, rng))

        both = self._feature_norms(images_then_puzzles(), blocks, parts=True)
        norms, puzzle_norms = np.concatenate(both[0::2]), np.concatenate(both[1::2])
        ratios = _norm_ratios(norms, puzzle_norms)
        if np.isnan(ratios).all():
            raise ValueError(
                f"Every jigsaw image has FeatureNorm 0 in every block {blocks}, so no "
                "NormRatio is defined; check the model and the candidate blocks."
            )
        self.blocks_ = blocks
        self.norm_ratios_ = dict(zip(blocks, ratios.tolist()))
        self.block_ = blocks[int(np.nanargmax(ratios))]
        # The training scores are the selected block's norms: no second pass.
        return norms[data.offset_rows(), blocks.index(self.block_)]

    def _score_batches(self, batches):
        """FeatureNorm of the selected block: the higher, the more in-distribution."""
        return self._feature_norms(batches, [self.block_])[:, 0]

    def _feature_norms(self, batches, blocks, parts=False):
        """``(n_samples, n_blocks)`` FeatureNorms (one array per batch with ``parts``)."""
        out = []
        run = iter_block_batches(self.model, blocks, batches, reduce="norm",
                                 batch_size=self.batch_size, device=self.device)
        with contextlib.closing(run):
            for _, batch in run:
                out.append(np.stack([feature_norm(batch[block].numpy()) for block in blocks],
                                    axis=1))
        return out if parts else np.concatenate(out)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags


def _norm_ratios(norms, puzzle_norms):
    """Mean over samples of ``norms / puzzle_norms``, skipping zero denominators."""
    valid = puzzle_norms > 0
    ratios = np.divide(norms, puzzle_norms, out=np.zeros_like(norms), where=valid)
    counts = valid.sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.where(counts > 0, ratios.sum(axis=0) / counts, np.nan)
