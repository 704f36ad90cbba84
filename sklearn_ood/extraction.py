"""Block features of a PyTorch model, captured in one forward pass per batch."""

import contextlib
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import restore_on_error
from ._validation import FLOAT_DTYPES


def _avg(maps):
    return maps.flatten(2).mean(2) if maps.ndim > 2 else maps


def _max(maps):
    return maps.flatten(2).amax(2) if maps.ndim > 2 else maps


def _norm(maps):
    maps = torch.relu(maps)
    return maps.flatten(2).norm(dim=2) if maps.ndim > 2 else maps


def _flatten(maps):
    return maps.flatten(1)


def _negative_aware_norm(maps):
    # ||a||_1 / ||a||_0 of the whole flattened output; 0 without a positive entry.
    a = maps.flatten(1)
    active = (a > 0).sum(1)
    return torch.where(active > 0, a.abs().sum(1) / active.clamp_min(1), 0.0)[:, None]


#: Named per-batch reductions of a block output ``(n, C, *spatial)`` to ``(n, d)``.
REDUCTIONS = {
    "avg": _avg,  # global average pool: (n, C)
    "max": _max,  # global max pool: (n, C)
    "norm": _norm,  # per-channel spatial L2 norm of ReLU(map), FeatureNorm's statistic
    "flatten": _flatten,  # every entry: (n, C*H*W)
    "negative_aware_norm": _negative_aware_norm,  # NAN of the whole output: (n, 1)
}


class _BlockRanTwice(RuntimeError):
    pass


class _StopForward(Exception):
    """Raised from a hook once every requested block is captured."""


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


def resolve_reduce(reduce, blocks):
    """Return ``{block: (callables, names)}`` for a ``reduce`` specification.

    ``reduce`` is one specification for every block, or a dict with one per block.
    """
    if isinstance(reduce, dict):
        missing = [b for b in blocks if b not in reduce]
        extra = [b for b in reduce if b not in blocks]
        if missing or extra:
            raise ValueError(
                f"A reduce dict needs exactly one entry per block {list(blocks)}; "
                f"missing {missing}, unexpected {extra}."
            )
        return {block: _resolve_one(reduce[block]) for block in blocks}
    spec = _resolve_one(reduce)
    return {block: spec for block in blocks}


def _resolve_one(reduce):
    specs = list(reduce) if isinstance(reduce, (list, tuple)) else [reduce]
    if not specs:
        raise ValueError("reduce must not be an empty list.")
    fns, names = [], []
    for spec in specs:
        if spec is None and len(specs) == 1:
            fns.append(None)
            names.append(None)
        elif isinstance(spec, str) and spec in REDUCTIONS:
            fns.append(REDUCTIONS[spec])
            names.append(spec)
        elif callable(spec) and not isinstance(spec, str):
            fns.append(spec)
            names.append(getattr(spec, "__name__", type(spec).__name__))
        else:
            raise ValueError(
                f"reduce must be one of {sorted(REDUCTIONS)}, None, a callable mapping "
                f"a block output to an (n_samples, n_features) tensor, a list of "
                f"those, or a dict of those by block name; got {spec!r}."
            )
    return fns, names


def _apply_reduce(fns, output, name):
    if not isinstance(output, torch.Tensor):
        raise TypeError(
            f"Block {name!r} returned {type(output).__name__}, not a tensor; "
            "choose a block whose output is a single tensor."
        )
    if fns == [None]:
        return output
    parts = []
    for fn in fns:
        part = fn(output)
        if not isinstance(part, torch.Tensor) or part.ndim != 2 or len(part) != len(output):
            raise ValueError(
                f"reduce callable {fn!r} must map block {name!r} output of shape "
                f"{tuple(output.shape)} to a 2-D tensor with {len(output)} rows; got "
                f"{getattr(part, 'shape', type(part).__name__)}."
            )
        parts.append(part)
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


@contextlib.contextmanager
def eval_mode(model):
    """Put every module of ``model`` in eval mode; restore each module's own flag after.

    The flags are restored also when the block raises.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Dropout(), nn.Dropout()).train()
    >>> net[1].eval()
    Dropout(p=0.5, inplace=False)
    >>> with eval_mode(net):
    ...     [m.training for m in net.modules()]
    [False, False, False]
    >>> [m.training for m in net.modules()]
    [True, True, False]
    """
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


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


def iter_block_batches(model, blocks, X, *, reduce="avg", batch_size=128, device="cpu",
                       progress=False):
    """Yield ``(start, {block: reduced output})`` for consecutive batches of ``X``.

    Every block is captured by a forward hook during ONE forward pass per batch;
    the forward pass stops as soon as the last requested block has run. Each block
    output is reduced inside its hook (so full maps are freed at once) and moved
    to the CPU. The model runs in eval mode under ``torch.inference_mode``; hooks
    are removed and train/eval flags restored even when the forward pass raises.

    Parameters
    ----------
    model : torch.nn.Module
    blocks : list of str
        Names from ``model.named_modules()`` (see :func:`resolve_blocks`).
    X : torch.Tensor
        Validated input, first dimension = samples.
    reduce : str, callable, list or None, default="avg"
        See :class:`BlockFeatureExtractor`.
    batch_size : int, default=128
    device : str or torch.device, default="cpu"
    progress : bool, default=False
        Show a tqdm progress bar.
    """
    reducers = resolve_reduce(reduce, blocks)
    dtype = check_model_device(model, device)
    modules = dict(model.named_modules())
    captured = {}

    def make_hook(name):
        def hook(module, inputs, output):
            if name in captured:
                raise _BlockRanTwice(name)
            reduced = _apply_reduce(reducers[name][0], output, name)
            captured[name] = reduced.detach().to("cpu")
            if len(captured) == len(blocks):
                raise _StopForward

        return hook

    handles = []
    starts = range(0, len(X), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="extract", unit="batch")
    try:
        for name in blocks:
            handles.append(modules[name].register_forward_hook(make_hook(name)))
        with eval_mode(model), torch.inference_mode():
            for start in starts:
                captured.clear()
                batch = X[start : start + batch_size].to(device=device, dtype=dtype)
                try:
                    model(batch)
                except _StopForward:
                    pass
                except _BlockRanTwice as exc:
                    raise ValueError(
                        f"Block {exc.args[0]!r} runs more than once in one forward pass "
                        "(a shared module), so its output is ambiguous; choose a block "
                        "that runs once."
                    ) from None
                missing = [name for name in blocks if name not in captured]
                if missing:
                    raise ValueError(
                        f"Block(s) {missing} did not run during the forward pass of "
                        f"{type(model).__name__}; choose modules that forward() calls."
                    )
                yield start, dict(captured)
    finally:
        captured.clear()
        for handle in handles:
            handle.remove()


def as_input_tensor(X):
    """Validate model input (array or tensor, first dim = samples) as a CPU/any tensor."""
    if isinstance(X, torch.Tensor):
        tensor = X
    else:
        array = np.asarray(X)
        if array.dtype == object or not (
            np.issubdtype(array.dtype, np.number) or array.dtype == bool
        ):
            raise TypeError(f"X must be a numeric array or tensor; got dtype {array.dtype}.")
        with warnings.catch_warnings():
            # Read-only arrays (memmaps) are fine: the input is never written to.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.ndim < 2:
        raise ValueError(
            f"X must have a sample dimension and at least one feature dimension, e.g. "
            f"images (n_samples, channels, height, width); got shape {tuple(tensor.shape)}."
        )
    if len(tensor) == 0:
        raise ValueError(f"X is empty: shape {tuple(tensor.shape)}; need at least 1 sample.")
    if tensor.is_complex():
        raise TypeError("X must be real-valued; got a complex tensor.")
    # Checked in chunks: a mask of the whole input would cost a quarter of its size.
    if tensor.is_floating_point() and not all(
        torch.isfinite(chunk).all() for chunk in torch.split(tensor, 1024)
    ):
        raise ValueError("Input X contains NaN or infinity.")
    return tensor


class BlockFeatureExtractor(TransformerMixin, BaseEstimator):
    """Activations of named blocks of a PyTorch model, as a scikit-learn transformer.

    Each batch runs through the model ONCE; forward hooks on the requested
    blocks capture their outputs, which are reduced per batch (so memory grows
    with the reduced size, not with the feature maps) and concatenated.

    Parameters
    ----------
    model : torch.nn.Module
        Any module; it is not copied, trained or moved. It runs in eval mode
        under ``torch.inference_mode`` and every submodule's train/eval flag is
        restored afterwards.
    blocks : str or list of str
        Names from ``model.named_modules()`` (e.g. ``"layer4"`` or
        ``["layer3", "layer4"]``).
    reduce : {"avg", "max", "norm", "negative_aware_norm", "flatten"}, callable, list, \
            dict or None, default="avg"
        What each block contributes per sample: ``"avg"``/``"max"`` global
        average/max pool over the spatial dimensions (``(C,)``), ``"norm"`` the
        per-channel spatial L2 norm of ``ReLU(map)`` (FeatureNorm's statistic),
        ``"negative_aware_norm"`` one number, the negative-aware norm
        ``||a||_1 / ||a||_0`` of the whole output (NAN's score), ``"flatten"`` every entry, a callable
        mapping a block output tensor to an ``(n, d)`` tensor (computed per
        batch, on ``device``), or a list of these, concatenated. ``None`` returns the block output itself (e.g.
        ``(N, C, H, W)`` maps) and needs a single block. A dict gives each
        block its own specification. A 2-D block output is left as it is by
        ``"avg"``, ``"max"`` and ``"flatten"``.
    batch_size : int, default=128
        Samples per forward pass.
    device : str or torch.device, default="cpu"
        Where batches are sent; must be where the model's parameters are.
    progress : bool, default=False
        Show a progress bar over batches.

    Attributes
    ----------
    blocks_ : list of str
        The resolved block names.
    block_shapes_ : dict
        Block name -> shape of one sample's reduced output.
    n_features_in_ : int
        Second dimension of the input (channels for images).
    input_shape_ : tuple
        Shape of one input sample seen in ``fit``.

    See Also
    --------
    iter_block_batches : the generator behind ``transform``, for custom loops.

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
    """

    def __init__(self, model, blocks, *, reduce="avg", batch_size=128, device="cpu",
                 progress=False):
        self.model = model
        self.blocks = blocks
        self.reduce = reduce
        self.batch_size = batch_size
        self.device = device
        self.progress = progress

    def fit(self, X, y=None):
        """Check the model, blocks and input, and record the output shapes.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, ...)
            Model input; one sample is run to learn the output shapes.
        y : ignored

        Returns
        -------
        self : object
        """
        with restore_on_error(self):
            self._fit(X)
        return self

    def _fit(self, X):
        blocks = resolve_blocks(self.model, self.blocks)
        reducers = resolve_reduce(self.reduce, blocks)
        if len(blocks) > 1 and any(fns == [None] for fns, _ in reducers.values()):
            raise ValueError(
                "reduce=None returns one block's raw output; pass a single block or "
                "choose a reduction to concatenate several blocks."
            )
        if not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {self.batch_size!r}.")
        X = self._validate_input(X, reset=True)
        with contextlib.closing(iter_block_batches(
            self.model, blocks, X[:1], reduce={b: None for b in blocks}, device=self.device
        )) as batches:
            _, raw = next(batches)
        shapes, names = {}, []
        for block in blocks:
            fns, reduce_names = reducers[block]
            parts = [_apply_reduce([fn], raw[block], block) for fn in fns]
            reduced = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            shapes[block] = tuple(reduced.shape[1:])
            for reduction, part in zip(reduce_names, parts):
                prefix = block if len(fns) == 1 else f"{block}__{reduction}"
                names += [f"{prefix}__{i}" for i in range(part.shape[-1])]
        raw_output = len(blocks) == 1 and reducers[blocks[0]][0] == [None]
        self.blocks_ = blocks
        self.block_shapes_ = shapes
        self.n_features_in_ = X.shape[1]
        self.input_shape_ = tuple(X.shape[1:])
        self._feature_names = None if raw_output else np.asarray(names, dtype=object)

    def transform(self, X):
        """Run the model over ``X`` in batches and return the block features.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, ...)

        Returns
        -------
        features : ndarray
            ``(n_samples, n_features)`` for reductions (blocks concatenated in
            the order given), or the raw block output when ``reduce=None``.
        """
        check_is_fitted(self)
        X = self._validate_input(X, reset=False)
        out = None
        batches = iter_block_batches(
            self.model, self.blocks_, X, reduce=self.reduce,
            batch_size=self.batch_size, device=self.device, progress=self.progress,
        )
        with contextlib.closing(batches):
            for start, batch in batches:
                parts = [batch[name] for name in self.blocks_]
                part = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
                if out is None:  # allocate once: no list of batches to concatenate
                    out = np.empty((len(X),) + tuple(part.shape[1:]),
                                   dtype=_numpy_dtype(part))
                out[start : start + len(part)] = part.numpy()
        return out

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

    def _validate_input(self, X, *, reset):
        if not isinstance(X, torch.Tensor) and (
            hasattr(X, "columns") or np.asarray(X).ndim <= 2
        ):
            # Tabular input: scikit-learn's own checks and feature-name tracking.
            X = validate_data(self, X, reset=reset, dtype=FLOAT_DTYPES)
        tensor = as_input_tensor(X)
        if not reset and tuple(tensor.shape[1:]) != self.input_shape_:
            if tensor.ndim == 2:
                raise ValueError(
                    f"X has {tensor.shape[1]} features, but {type(self).__name__} is "
                    f"expecting {self.n_features_in_} features as input."
                )
            raise ValueError(
                f"X has samples of shape {tuple(tensor.shape[1:])}, but "
                f"{type(self).__name__} was fitted on samples of shape {self.input_shape_}."
            )
        return tensor

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        tags.input_tags.allow_nan = False
        # The output has the model's parameter dtype, whatever the input dtype.
        tags.transformer_tags.preserves_dtype = []
        return tags


def _numpy_dtype(tensor):
    return torch.empty(0, dtype=tensor.dtype).numpy().dtype
