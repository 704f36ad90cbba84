"""Block features of a PyTorch model, captured in one forward pass per batch."""

import contextlib
import functools
import itertools
import warnings
from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import restore_on_error
from ._torch import BlockCapture, model_run
from ._validation import FLOAT_DTYPES
from .block_outputs import (  # noqa: F401 (REDUCTIONS, TOKEN_REDUCTIONS, Token re-exported)
    REDUCTIONS, TOKEN_REDUCTIONS, Token, make_reducers,
)
from .exceptions import LabelsNotPassedWarning
from .streaming import InputStream, add_note

#: The context manager every model run goes through
#: (:func:`sklearn_ood._torch.model_run`): eval mode, frozen parameters,
#: hooks; flags, ``requires_grad``, ``.grad`` and hooks restored on exit.
eval_mode = model_run


def resolve_blocks(model, blocks):
    """Return ``blocks`` as a list of module names of ``model``, checked to exist."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    names = [blocks] if isinstance(blocks, str) else blocks
    if not isinstance(names, (list, tuple)) or not names:
        raise ValueError(
            f"blocks must be a module name or a non-empty list of names; got {blocks!r}."
        )
    modules = dict(model.named_modules())
    unknown = [name for name in names if not isinstance(name, str) or name not in modules]
    if unknown:
        available = [name for name in modules if name]
        raise ValueError(
            f"Unknown block name(s) {unknown} for {type(model).__name__}. "
            f"Available blocks: {available}."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"blocks contains duplicates: {list(names)}.")
    return list(names)


def _model_dtype_device(model):
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype, tensor.device
    return torch.get_default_dtype(), None


def check_model_device(model, device):
    """Raise if the model's parameters are not on ``device``; return the model dtype."""
    device = torch.device(device)
    dtype, model_device = _model_dtype_device(model)
    if model_device is not None and (
        model_device.type != device.type
        or (device.index is not None and model_device.index != device.index)
    ):
        raise ValueError(
            f"The model's parameters are on {model_device} but device={str(device)!r}. "
            f"Move the model with model.to({str(device)!r}) or pass "
            f"device={str(model_device)!r}."
        )
    return dtype


def iter_block_batches(model, blocks, X, *, reduce="avg", layout=None, select=None,
                       batch_size=128, device="cpu", progress=False, return_labels=False):
    """Yield ``(start, {block: reduced output})`` for consecutive batches of ``X``.

    Every block is captured by a forward hook during ONE forward pass per batch;
    the forward pass stops as soon as the last requested block has run. Each block
    output is reduced inside its hook (so full maps are freed at once) and moved
    to the CPU. The model runs in :func:`eval_mode` (eval mode, parameters
    frozen), the forward pass under ``torch.inference_mode`` (reading the data
    does not); hooks are removed and train/eval flags, ``requires_grad`` and
    ``.grad`` restored when the generator ends, is closed, or anything raises,
    including ``KeyboardInterrupt``.

    Parameters
    ----------
    model : torch.nn.Module
    blocks : list of str
        Names from ``model.named_modules()`` (see :func:`resolve_blocks`).
    X : array-like, torch.Tensor, Dataset, DataLoader or iterable of batches
        Model input, read one batch at a time: see
        :func:`~sklearn_ood.streaming.iter_input_batches`.
    reduce : str, callable, list, dict or None, default="avg"
        See :class:`BlockFeatureExtractor`.
    layout : {"channels_first", "tokens"}, dict or None, default=None
        See :class:`BlockFeatureExtractor`.
    select : str, int, callable, dict or None, default=None
        See :class:`BlockFeatureExtractor`.
    batch_size : int, default=128
        Samples per batch for arrays and datasets; a ``DataLoader`` or an
        iterable of batches is used as it is batched.
    device : str or torch.device, default="cpu"
    progress : bool, default=False
        Show a tqdm progress bar counting images.
    return_labels : bool, default=False
        Yield ``(start, outputs, labels)`` with the batch's labels (``None``
        when the input has none).

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    >>> loader = DataLoader(TensorDataset(torch.ones(5, 1, 2, 2), torch.arange(5)),
    ...                     batch_size=3)
    >>> for start, out, y in iter_block_batches(net, ["1"], loader, return_labels=True):
    ...     print(start, tuple(out["1"].shape), y)
    0 (3, 2) [0 1 2]
    3 (2, 2) [3 4]
    """
    reducers = make_reducers(model, blocks, reduce, layout=layout, select=select)
    dtype = check_model_device(model, device)
    data = InputStream(X)
    batches = _run_blocks(
        model, blocks, data.batches(batch_size=batch_size), reducers=reducers,
        dtype=dtype, device=device, progress=progress, total=data.n,
    )
    with contextlib.closing(batches):
        for start, outputs, labels in batches:
            yield (start, outputs, labels) if return_labels else (start, outputs)


def _run_blocks(model, blocks, batches, *, reducers, dtype, device, progress, total):
    """``(start, outputs, labels)`` for each ``(images, labels)`` of ``batches``.

    The model runs in :func:`~sklearn_ood._torch.model_run`, its blocks
    captured by a :class:`~sklearn_ood._torch.BlockCapture` under
    ``torch.inference_mode``. ``batches`` is a pass of an
    :class:`~sklearn_ood.streaming.InputStream`; it is closed when this
    generator ends, whatever the reason.
    """

    def keep(name, output, n):  # in the hook: the reduced output, on the CPU
        return reducers[name](output, n).detach().to("cpu")

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="extract", unit="img")
    non_blocking = torch.device(device).type != "cpu"  # pinned batches overlap the copy
    start = 0
    try:
        with model_run(model) as hooks:
            capture = BlockCapture(model, blocks, hooks, keep)
            # No enumerate(): it keeps the last item, i.e. a second batch of images.
            for index in itertools.count():
                images, labels = next(batches, (None, None))
                if images is None:
                    break
                n = len(images)
                try:
                    with torch.inference_mode():
                        outputs = capture(images.to(device=device, dtype=dtype,
                                                    non_blocking=non_blocking))
                except BaseException as exc:
                    add_note(exc, f"sklearn_ood: raised while extracting batch {index} "
                                  f"(samples {start} to {start + n - 1}).")
                    raise
                del images  # hold no batch while the next one is read
                yield start, outputs, labels
                del outputs
                start += n
                if bar is not None:
                    bar.update(n)
    finally:
        batches.close()
        if bar is not None:
            bar.close()


class BlockFeatureExtractor(TransformerMixin, BaseEstimator):
    """Activations of named blocks of a PyTorch model, as a scikit-learn transformer.

    Each batch runs through the model ONCE; forward hooks on the requested
    blocks capture their outputs, which are reduced per batch (so memory grows
    with the reduced size, not with the feature maps) and concatenated.

    The input ``X`` of ``fit``, ``transform`` and :meth:`transform_with_labels`
    is read one batch at a time and never held whole in memory. It may be an
    array or tensor of shape ``(n_samples, ...)``; an array-like that slices
    lazily (``np.memmap``, an h5py dataset, a zarr array); a map-style
    ``torch.utils.data.Dataset`` whose items are an image or a tuple ``(image,
    label, ...)``; a ``DataLoader`` (its batches are used as it yields them,
    with its transforms, workers and pinned memory); or any iterable of
    batches, each images or a tuple ``(images, labels, ...)`` (see
    :func:`~sklearn_ood.streaming.iter_input_batches`). Values and shapes are
    checked batch by batch; an error names the batch and its samples. Labels
    the input yields are returned by :meth:`transform_with_labels`.

    Parameters
    ----------
    model : torch.nn.Module
        Any module; it is not copied, trained or moved. It runs in eval mode
        under ``torch.inference_mode`` and every submodule's train/eval flag,
        every parameter's ``requires_grad`` and ``.grad`` are restored
        afterwards.
    blocks : str or list of str
        Names from ``model.named_modules()`` (e.g. ``"layer4"`` or
        ``["layer3", "layer4"]``).
    reduce : {"avg", "max", "norm", "negative_aware_norm", "flatten", "cls"}, \
            callable, list, dict or None, default="avg"
        What each block contributes per sample, computed per batch on
        ``device``. For a channels-first block ``(n, C, *spatial)``:
        ``"avg"``/``"max"`` global average/max pool over the spatial
        dimensions (``(C,)``), ``"norm"`` the per-channel spatial L2 norm of
        ``ReLU(map)`` (FeatureNorm's statistic), ``"negative_aware_norm"`` one
        number, the negative-aware norm ``||a||_1 / ||a||_0`` of the whole
        output (NAN's score), ``"flatten"`` every entry. For a token sequence
        ``(n, T, D)`` (``layout="tokens"``): ``"avg"``/``"max"`` the mean/max
        over the tokens (``(D,)``), ``"cls"`` the class token (index 0;
        :class:`~sklearn_ood.block_outputs.Token` picks another index),
        ``"flatten"`` every entry, token by token (``(T*D,)``); the map
        statistics ``"norm"`` and ``"negative_aware_norm"`` see the block as
        channels-first ``(n, D, T)``, the token axis as their spatial axis (so
        ``"norm"`` is the per-feature L2 norm over tokens, and ``["max",
        "avg"]`` gives NAP its within-feature max and mean over tokens).
        Also: a callable mapping the block output tensor to an ``(n, d)``
        tensor, or a list of these, concatenated. ``None`` returns the block
        output itself (e.g. ``(N, C, H, W)`` maps) and needs a single block. A
        dict gives each block its own specification. A 2-D block output is
        left as it is by ``"avg"``, ``"max"`` and ``"flatten"``.
    layout : {"channels_first", "tokens"}, dict or None, default=None
        Which axis of a block output holds the features: ``"channels_first"``
        ``(n, C, *spatial)`` or ``"tokens"`` ``(n, T, D)``; one value for
        every block or a dict by block name (blocks left out get ``None``).
        With ``None``, 2-D outputs need no layout, 4-D and larger ones are
        channels-first, and a 3-D output takes the layout its module fixes
        (1-D convolutions and batch norms: channels-first; torch's
        ``batch_first`` transformer layers and stacks: tokens; see
        :func:`~sklearn_ood.block_outputs.known_layout`). Any other 3-D output
        is ambiguous, and ``fit`` raises unless its layout is given (or it is
        reduced only by callables or ``None``, which see the raw output).
    select : str, int, callable, dict or None, default=None
        Which tensor to take from a block that returns a tuple, a dict, a
        namedtuple or another object (e.g. ``nn.MultiheadAttention``'s
        ``(output, weights)``, or an object with ``last_hidden_state``): a key
        or attribute name, an index, or a callable receiving the output and
        returning a tensor; one for every block or a dict by block name. With
        ``None`` a block must return a tensor; a structured output raises an
        error listing what it holds. The block ``""`` is the model itself.
    batch_size : int, default=128
        Samples per forward pass for arrays, tensors and datasets. Ignored for
        a ``DataLoader`` or an iterable of batches, which are used as they
        are batched (set the ``DataLoader``'s own ``batch_size``).
    device : str or torch.device, default="cpu"
        Where batches are sent; must be where the model's parameters are.
    progress : bool, default=False
        Show a tqdm progress bar counting images (with images/s), out of the
        total when the input's length is known.

    Attributes
    ----------
    blocks_ : list of str
        The resolved block names.
    block_shapes_ : dict
        Block name -> shape of one sample's reduced output.
    block_layouts_ : dict
        Block name -> layout of its (selected) output: ``"channels_first"``,
        ``"tokens"``, or ``None`` for a 2-D output or an undetermined 3-D one.
    n_features_in_ : int
        Second dimension of the input (channels for images).
    input_shape_ : tuple
        Shape of one input sample seen in ``fit``.

    See Also
    --------
    iter_block_batches : the generator behind ``transform``, for custom loops.
    sklearn_ood.streaming.iter_input_batches : how each kind of input is batched.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sklearn_ood import BlockFeatureExtractor
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU())
    >>> X = np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32)
    >>> ext = BlockFeatureExtractor(net, blocks="1").fit(X)
    >>> ext.transform(X).shape
    (5, 4)
    >>> ext.get_feature_names_out()[:2]
    array(['1__0', '1__1'], dtype=object)

    From a ``Dataset`` of ``(image, label)`` items, labels included:

    >>> from torch.utils.data import TensorDataset
    >>> data = TensorDataset(torch.from_numpy(X), torch.tensor([0, 1, 0, 1, 1]))
    >>> features, labels = ext.transform_with_labels(data)
    >>> features.shape, labels
    ((5, 4), array([0, 1, 0, 1, 1]))

    A transformer's blocks output token sequences ``(n, T, D)``: say so with
    ``layout="tokens"`` (a ``batch_first`` ``nn.TransformerEncoder`` block is
    recognised without it), then pool the tokens or keep the class token:

    >>> layer = torch.nn.TransformerEncoderLayer(8, 2, batch_first=True)
    >>> encoder = torch.nn.Sequential(torch.nn.Linear(3, 8),
    ...                               torch.nn.TransformerEncoder(layer, 1), torch.nn.GELU())
    >>> tokens = torch.rand(5, 10, 3)  # 5 samples, 10 tokens, 3 features
    >>> ext = BlockFeatureExtractor(encoder, "2", reduce=["cls", "avg"], layout="tokens")
    >>> ext.fit(tokens).transform(tokens).shape
    (5, 16)

    A block that returns a tuple, a dict or an object needs ``select``; without
    it the error lists what the output holds:

    >>> attn = torch.nn.MultiheadAttention(3, 1, batch_first=True)
    >>> class SelfAttention(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.attn = attn
    ...     def forward(self, x):
    ...         return self.attn(x, x, x)[0]
    >>> ext = BlockFeatureExtractor(SelfAttention(), "attn", select=0, layout="tokens")
    >>> ext.fit(tokens).transform(tokens).shape
    (5, 3)
    """

    _parameter_constraints = {
        "model": [torch.nn.Module],
        "blocks": [str, list, tuple],
        "reduce": "no_validation",  # checked by make_reducers, with a message per case
        "layout": "no_validation",
        "select": "no_validation",
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "progress": ["boolean"],
    }

    def __init__(self, model, blocks, *, reduce="avg", layout=None, select=None,
                 batch_size=128, device="cpu", progress=False):
        self.model = model
        self.blocks = blocks
        self.reduce = reduce
        self.layout = layout
        self.select = select
        self.batch_size = batch_size
        self.device = device
        self.progress = progress

    def fit(self, X, y=None):
        """Check the model, blocks and input, and record the output shapes.

        Only the first sample is read (the first batch for a ``DataLoader`` or
        an iterable of batches) and run through the model; the other samples
        are checked when ``transform`` reads them. A one-shot iterator (a
        generator) thus loses its first batch to ``fit``: use ``fit_transform``
        for it, or pass ``transform`` a fresh one.

        Parameters
        ----------
        X : array-like, torch.Tensor, Dataset, DataLoader or iterable of batches
            Model input (see the class description).
        y : array-like of shape (n_samples,), default=None
            Not used by the extractor (a ``Pipeline`` passes it on to the
            next step); when the data yields labels too, those of the first
            batch must agree with it.

        Returns
        -------
        self : object
        """
        with restore_on_error(self):
            self._fit(X, y)
        return self

    # Decorated here rather than on fit: fit_transform reaches _fit without fit.
    @_fit_context(prefer_skip_nested_validation=True)
    def _fit(self, X, y):
        """Fit on the first sample of ``X``; return ``X`` as a stream for the transform."""
        blocks = resolve_blocks(self.model, self.blocks)
        reducers = make_reducers(self.model, blocks, self.reduce, layout=self.layout,
                                 select=self.select)
        if len(blocks) > 1 and any(reducer.raw for reducer in reducers.values()):
            raise ValueError(
                "reduce=None returns one block's raw output; pass a single block or "
                "choose a reduction to concatenate several blocks."
            )
        data = self._input(X, y, reset=True)
        probe = data.first()[0][:1]
        dtype = check_model_device(self.model, self.device)
        with contextlib.closing(_run_blocks(
            self.model, blocks, (batch for batch in [(probe, None)]), dtype=dtype,
            device=self.device,
            reducers=make_reducers(self.model, blocks, None, layout=self.layout,
                                   select=self.select),
            progress=False, total=1,
        )) as run:
            _, raw, _ = next(run)
        shapes, layouts, names = {}, {}, []
        for block in blocks:
            reducer = reducers[block]
            layouts[block] = reducer.resolve_layout(raw[block])
            if reducer.raw:
                shapes[block] = tuple(raw[block].shape[1:])
                continue
            parts = reducer.reduce_parts(raw[block])
            shapes[block] = (sum(part.shape[1] for part in parts),)
            for (reduction, _), part in zip(reducer.reductions, parts):
                prefix = block if len(parts) == 1 else f"{block}__{reduction}"
                names += [f"{prefix}__{i}" for i in range(part.shape[-1])]
        raw_output = len(blocks) == 1 and reducers[blocks[0]].raw
        self.blocks_ = blocks
        self.block_shapes_ = shapes
        self.block_layouts_ = layouts
        self.n_features_in_ = probe.shape[1]
        self.input_shape_ = tuple(probe.shape[1:])
        self._feature_names = None if raw_output else np.asarray(names, dtype=object)
        return data

    def transform(self, X):
        """Run the model over ``X`` in batches and return the block features.

        Parameters
        ----------
        X : array-like, torch.Tensor, Dataset, DataLoader or iterable of batches
            Model input (see the class description), read one batch at a time.

        Returns
        -------
        features : ndarray
            ``(n_samples, n_features)`` for reductions (blocks concatenated in
            the order given), or the raw block output when ``reduce=None``.
        """
        check_is_fitted(self)
        return self._extract(self._input(X, reset=False), with_labels=False)[0]

    def transform_with_labels(self, X):
        """Block features and the labels the input yields, in one pass.

        For inputs that carry labels (a ``Dataset`` of ``(image, label)``
        items, a ``DataLoader`` or an iterable of ``(images, labels)``
        batches), the labels are collected batch by batch along with the
        features, so no second pass over the data is needed to read them. The
        extractor is not changed. Labels are returned as the data gives them:
        under sklearn-ood's convention a negative label marks an OOD row.

        Parameters
        ----------
        X : array-like, torch.Tensor, Dataset, DataLoader or iterable of batches
            Model input (see the class description).

        Returns
        -------
        features : ndarray
            As returned by :meth:`transform`.
        labels : ndarray of shape (n_samples, ...) or None
            The labels of the samples in the order of ``features``; ``None``
            when the input has none (arrays, tensors, bare images).

        Examples
        --------
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> from sklearn_ood import BlockFeatureExtractor, Mahalanobis
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU())
        >>> images = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> loader = DataLoader(TensorDataset(images, torch.arange(40) % 2), batch_size=16)
        >>> ext = BlockFeatureExtractor(net, "1").fit(loader)
        >>> features, labels = ext.transform_with_labels(loader)
        >>> features.shape, labels[:4]
        ((40, 4), array([0, 1, 0, 1]))
        >>> detector = Mahalanobis().fit(features, labels)
        >>> detector.score_samples(features).shape
        (40,)
        """
        check_is_fitted(self)
        return self._extract(self._input(X, reset=False), with_labels=True)

    def fit_transform(self, X, y=None):
        """Fit to ``X`` and return its features, reading a one-shot iterator once.

        Equivalent to ``fit(X, y).transform(X)``. A generator or another
        one-shot iterator is read once: its first batch serves both to fit and
        as the first rows of the output. If anything fails, the extractor is
        left as it was before the call.

        The features leave without the labels the data may yield, so in a
        ``Pipeline`` the next step sees only the ``y`` given to ``fit``. When
        the data yields labels and ``y`` is None, a
        :class:`~sklearn_ood.exceptions.LabelsNotPassedWarning` says so: pass
        them as ``y`` (``pipe.fit(loader, labels_of(loader))``, with
        :func:`~sklearn_ood.streaming.labels_of`), or extract with
        :meth:`transform_with_labels` and fit the detector on its output.

        Parameters
        ----------
        X : array-like, torch.Tensor, Dataset, DataLoader or iterable of batches
            Model input (see the class description).
        y : array-like of shape (n_samples,), default=None
            Not used by the extractor; when the data yields labels too, they
            must agree with it, batch by batch.

        Returns
        -------
        features : ndarray
            As returned by :meth:`transform`.

        Examples
        --------
        >>> import torch
        >>> from sklearn.pipeline import make_pipeline
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> from sklearn_ood import BlockFeatureExtractor, Mahalanobis
        >>> from sklearn_ood.streaming import labels_of
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU())
        >>> images = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> loader = DataLoader(TensorDataset(images, torch.arange(40) % 2), batch_size=16)
        >>> pipe = make_pipeline(BlockFeatureExtractor(net, "1"), Mahalanobis())
        >>> pipe.fit(loader, labels_of(loader))[-1].classes_
        array([0, 1])
        """
        with restore_on_error(self):
            data = self._fit(X, y)
            features = self._extract(data, with_labels=False)[0]
            if y is None and data.has_labels:
                warnings.warn(
                    f"X yields labels, but y is None: {type(self).__name__}.fit_transform "
                    "returns the features without them, so the next step of a Pipeline "
                    "is fitted without labels. Pass them as y, e.g. pipe.fit(X, "
                    "labels_of(X)) with sklearn_ood.streaming.labels_of, or extract with "
                    "transform_with_labels and fit the detector on features and labels. "
                    "If the next step uses no labels, pass y anyway or ignore this warning.",
                    LabelsNotPassedWarning, stacklevel=3,  # the caller of set_output's wrapper
                )
            return features

    def _extract(self, data, *, with_labels):
        n = data.n
        run = _run_blocks(
            self.model, self.blocks_, data.batches(batch_size=self.batch_size,
                                                   labels=with_labels),
            reducers=make_reducers(self.model, self.blocks_, self.reduce, layout=self.layout,
                                   select=self.select),
            dtype=check_model_device(self.model, self.device), device=self.device,
            progress=self.progress, total=n,
        )
        out, parts, stop = None, [], 0
        with contextlib.closing(run):
            for start, batch, _ in run:
                blocks = [batch[name] for name in self.blocks_]
                part = (blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)).numpy()
                stop = start + len(part)
                if n is None:
                    parts.append(part)
                else:
                    if out is None:  # allocate once: no list of batches to concatenate
                        out = np.empty((n,) + part.shape[1:], dtype=part.dtype)
                    if stop > n:
                        raise ValueError(
                            f"X yielded more samples than its length ({n}) announces."
                        )
                    out[start:stop] = part
        if n is None:
            features = np.concatenate(parts)
        else:
            features = out if stop == n else out[:stop]
        return features, (data.labels if with_labels else None)

    def get_feature_names_out(self, input_features=None):
        """Names ``"<block>__<i>"`` (``"<block>__<reduction>__<i>"`` for a list).

        Parameters
        ----------
        input_features : ignored

        Returns
        -------
        names : ndarray of str objects
        """
        check_is_fitted(self)
        if self._feature_names is None:
            raise ValueError("reduce=None returns maps, which have no feature names.")
        return self._feature_names.copy()

    def _input(self, X, y=None, *, reset):
        """``X`` as a stream; tabular input goes through scikit-learn's checks first.

        2-D arrays, lists and DataFrames go through ``validate_data`` (standard
        messages, feature-name tracking); images, tensors and streams are
        checked batch by batch as they are read, against the sample shape seen
        in ``fit``.
        """
        return InputStream(
            X, y, owner=type(self).__name__, same_shape=reset,
            sample_shape=None if reset else self.input_shape_,
            tabular=functools.partial(validate_data, self, reset=reset, dtype=FLOAT_DTYPES),
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        tags.input_tags.allow_nan = False
        # The output has the model's parameter dtype, whatever the input dtype.
        tags.transformer_tags.preserves_dtype = []
        return tags
