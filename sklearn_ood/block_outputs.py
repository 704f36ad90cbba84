"""What a block returns, and how it becomes features: layouts, selectors, reductions.

A block output is reduced per batch to an ``(n, d)`` tensor. Which axis holds
the features depends on the block's *layout*:

- ``"channels_first"``: ``(n, C, *spatial)``, e.g. ``(n, C, H, W)`` maps of a
  CNN or ``(n, C, L)`` of a 1-D convolution; the features are the channels.
- ``"tokens"``: ``(n, T, D)``, a sequence of ``T`` tokens of ``D`` features
  (a ``batch_first`` transformer); the features are the last axis.

A 2-D output ``(n, d)`` is unambiguous, and a 4-D or larger one is
channels-first. A 3-D output is both a 1-D CNN map and a token sequence:
its layout is taken from the module when the module fixes it (see
:func:`known_layout`), and must be stated otherwise.

Blocks that return a tuple, a dict, a namedtuple or an object with tensor
attributes (e.g. ``last_hidden_state``) need a selector that picks the
tensor: see :func:`select_output`.
"""

import dataclasses
from collections.abc import Mapping

import torch
from torch import nn

#: The block layouts a user can state.
LAYOUTS = ("channels_first", "tokens")


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


#: Named per-batch reductions of a channels-first block output ``(n, C, *spatial)``
#: to ``(n, d)``.
REDUCTIONS = {
    "avg": _avg,  # global average pool: (n, C)
    "max": _max,  # global max pool: (n, C)
    "norm": _norm,  # per-channel spatial L2 norm of ReLU(map), FeatureNorm's statistic
    "flatten": _flatten,  # every entry: (n, C*H*W)
    "negative_aware_norm": _negative_aware_norm,  # NAN of the whole output: (n, 1)
}


class Token:
    """Reduction that keeps one token of a token sequence ``(n, T, D)``: ``(n, D)``.

    ``reduce="cls"`` is ``Token(0)``, the class token of a ViT or BERT; another
    index picks e.g. a distillation token (DeiT: ``Token(1)``) or the last
    token (``Token(-1)``). It needs a block with the ``"tokens"`` layout.

    Parameters
    ----------
    index : int, default=0
        Position of the token along the token axis; negative counts from the end.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.block_outputs import Token
    >>> tokens = torch.arange(12.0).reshape(1, 3, 4)  # 1 sample, 3 tokens, 4 features
    >>> Token(-1)(tokens)
    tensor([[ 8.,  9., 10., 11.]])
    """

    def __init__(self, index=0):
        self.index = index

    @property
    def __name__(self):
        return "cls" if self.index == 0 else f"token{self.index}"

    def __call__(self, tokens):
        if not -tokens.shape[1] <= self.index < tokens.shape[1]:
            raise ValueError(
                f"{self!r} needs a token at index {self.index}; the block output "
                f"{tuple(tokens.shape)} has {tokens.shape[1]} tokens."
            )
        return tokens[:, self.index]

    def __repr__(self):
        return f"Token({self.index})"

    def __eq__(self, other):
        return type(other) is Token and other.index == self.index

    def __hash__(self):
        return hash((Token, self.index))


def _channels_first(fn):
    def reduction(tokens):
        return fn(tokens.transpose(1, 2))  # (n, T, D) -> (n, D, T): tokens as spatial axis

    return reduction


#: Named per-batch reductions of a token sequence ``(n, T, D)`` to ``(n, d)``.
#: The map statistics ("norm", "negative_aware_norm") see the block as
#: channels-first ``(n, D, T)``: the token axis is their spatial axis.
TOKEN_REDUCTIONS = {
    "avg": lambda tokens: tokens.mean(1),  # mean over tokens: (n, D)
    "max": lambda tokens: tokens.amax(1),  # max over tokens: (n, D)
    "cls": Token(0),  # the class token (index 0): (n, D)
    "flatten": _flatten,  # every entry, token by token: (n, T*D)
    "norm": _channels_first(_norm),  # per-feature L2 norm over tokens of ReLU: (n, D)
    "negative_aware_norm": _channels_first(_negative_aware_norm),  # (n, 1)
}


def known_layout(module):
    """The layout of a module's 3-D output when the module type fixes it, else ``None``.

    One-dimensional convolutions and batch/instance norms are channels-first
    ``(n, C, L)``; torch's transformer layers and stacks are ``"tokens"`` when
    built with ``batch_first=True``. A ``batch_first=False`` transformer
    (sequence first, ``(T, n, D)``) is an error. Any other module (``Sequential``,
    activations, ``Linear``, ``LayerNorm``, custom blocks, ...) returns ``None``:
    its layout must be stated.

    Examples
    --------
    >>> from torch import nn
    >>> known_layout(nn.Conv1d(2, 3, 1)), known_layout(nn.ReLU())
    ('channels_first', None)
    >>> layer = nn.TransformerEncoderLayer(8, 2, batch_first=True)
    >>> known_layout(layer), known_layout(nn.TransformerEncoder(layer, 2))
    ('tokens', 'tokens')
    """
    if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d, nn.BatchNorm1d, nn.InstanceNorm1d)):
        return "channels_first"
    if isinstance(module, nn.Transformer):
        batch_first = module.batch_first
    elif isinstance(module, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
        batch_first = module.self_attn.batch_first
    elif isinstance(module, (nn.TransformerEncoder, nn.TransformerDecoder)):
        batch_first = module.layers[0].self_attn.batch_first
    else:
        return None
    if not batch_first:
        raise ValueError(
            f"{type(module).__name__} was built with batch_first=False: its output is "
            "(tokens, samples, features), the samples on the second axis. Build it "
            "with batch_first=True, or pass select=<a function returning "
            "output.transpose(0, 1)> and layout='tokens'."
        )
    return "tokens"


def describe_output(output):
    """One line per entry of a structured block output: its key/field and shape.

    Examples
    --------
    >>> import torch
    >>> print(describe_output((torch.zeros(2, 3), None)))
    tuple of 2 items:
      [0]: tensor of shape (2, 3)
      [1]: None
    """
    if isinstance(output, Mapping):
        head, items = f"{type(output).__name__} with keys:", [(repr(k), v) for k, v in
                                                               output.items()]
    elif isinstance(output, tuple) and hasattr(output, "_fields"):
        head = f"namedtuple {type(output).__name__} with fields:"
        items = [(f"{name!r} / [{i}]", v) for i, (name, v) in enumerate(zip(output._fields,
                                                                           output))]
    elif isinstance(output, (tuple, list)):
        head = f"{type(output).__name__} of {len(output)} items:"
        items = [(f"[{i}]", v) for i, v in enumerate(output)]
    elif dataclasses.is_dataclass(output):
        head = f"dataclass {type(output).__name__} with fields:"
        items = [(repr(f.name), getattr(output, f.name)) for f in dataclasses.fields(output)]
    else:
        head = f"{type(output).__name__} with attributes:"
        items = [(repr(k), v) for k, v in vars(output).items()
                 if not k.startswith("_")] if hasattr(output, "__dict__") else []
    lines = [head] + [f"  {key}: {_short(value)}" for key, value in items]
    return "\n".join(lines if items else [f"{type(output).__name__} (no entries found)"])


def _short(value):
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}"
    if value is None:
        return "None"
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} of {len(value)} items"
    return type(value).__name__


def select_output(output, select, block):
    """The tensor ``select`` picks from a block ``output`` (the output itself for ``None``).

    ``select`` is ``None`` (the output must be a tensor), a key (for a dict
    or another mapping) or an attribute name (a namedtuple field, a dataclass
    field, an attribute such as ``last_hidden_state``), an integer index (a
    tuple or list), or a callable that receives the output and returns the
    tensor.

    Examples
    --------
    >>> import torch
    >>> out = {"hidden": torch.zeros(2, 5, 8), "pooled": torch.zeros(2, 8)}
    >>> select_output(out, "pooled", "enc").shape
    torch.Size([2, 8])
    >>> select_output((torch.zeros(2, 3), None), 0, "attn").shape
    torch.Size([2, 3])
    """
    if select is None:
        if isinstance(output, torch.Tensor):
            return output
        raise TypeError(
            f"Block {block!r} returned a structured output, not a tensor; choose the "
            f"tensor with select= (a key, an attribute name, an index or a callable; "
            f"one for every block, or a dict by block name). The output is a "
            f"{describe_output(output)}"
        )
    try:
        if isinstance(select, str):
            value = output[select] if isinstance(output, Mapping) else getattr(output, select)
        elif isinstance(select, int) and not isinstance(select, bool):
            value = output[select]
        else:
            value = select(output)
    except (KeyError, IndexError, AttributeError, TypeError) as exc:
        raise ValueError(
            f"select={select!r} found nothing in the output of block {block!r} "
            f"({type(exc).__name__}: {exc}). The output is a {describe_output(output)}"
        ) from exc
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"select={select!r} picked {type(value).__name__} from the output of block "
            f"{block!r}; it must pick a tensor. The output is a {describe_output(output)}"
        )
    return value


def _resolve_one(reduce):
    """``[(name, spec)]`` for one block's ``reduce``; spec a str, a callable or None."""
    specs = list(reduce) if isinstance(reduce, (list, tuple)) else [reduce]
    if not specs:
        raise ValueError("reduce must not be an empty list.")
    names = sorted(set(REDUCTIONS) | set(TOKEN_REDUCTIONS))
    resolved = []
    for spec in specs:
        if spec is None and len(specs) == 1:
            resolved.append((None, None))
        elif isinstance(spec, str) and spec in names:
            resolved.append((spec, spec))
        elif callable(spec) and not isinstance(spec, str):
            resolved.append((getattr(spec, "__name__", type(spec).__name__), spec))
        else:
            raise ValueError(
                f"reduce must be one of {names}, None, Token(index), a callable mapping "
                f"a block output to an (n_samples, n_features) tensor, a list of "
                f"those, or a dict of those by block name; got {spec!r}."
            )
    return resolved


def _per_block(value, blocks, what, check):
    """``{block: value}`` from one value for all blocks or a dict by block (missing: None)."""
    if isinstance(value, dict):
        extra = [b for b in value if b not in blocks]
        if extra:
            raise ValueError(
                f"A {what} dict maps block names to {what}s; {extra} are not among the "
                f"blocks {list(blocks)}."
            )
        spec = {block: value.get(block) for block in blocks}
    else:
        spec = {block: value for block in blocks}
    for block, one in spec.items():
        check(one, block)
    return spec


def _check_layout(layout, block):
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(
            f"layout must be None, one of {list(LAYOUTS)} or a dict of those by block "
            f"name; got {layout!r} for block {block!r}."
        )


def _check_select(select, block):
    if not (select is None or isinstance(select, (str, int)) or callable(select)) or (
        isinstance(select, bool)
    ):
        raise ValueError(
            f"select must be None, a key or attribute name (str), an index (int), a "
            f"callable, or a dict of those by block name; got {select!r} for block "
            f"{block!r}."
        )


class BlockReducer:
    """How one block's output becomes features: select, find the layout, reduce.

    Built per block by :func:`make_reducers`; called inside the forward hook
    with the block output and the batch size.
    """

    def __init__(self, block, module, reductions, layout, select):
        self.block = block
        self.module = module
        self.reductions = reductions
        self.layout = layout
        self.select = select

    @property
    def raw(self):
        return [spec for _, spec in self.reductions] == [None]

    def pick(self, output, n_samples):
        """The selected tensor, checked to have one row per sample."""
        tensor = select_output(output, self.select, self.block)
        if tensor.ndim == 0 or len(tensor) != n_samples:
            raise ValueError(
                f"Block {self.block!r} output (selected: {self.select!r}) has shape "
                f"{tuple(tensor.shape)}, whose first axis is not the {n_samples} samples "
                "of the batch. A sequence-first output (e.g. of a batch_first=False "
                "transformer or RNN) needs select=<a function returning "
                "output.transpose(0, 1)>, or a model built with batch_first=True."
            )
        return tensor

    def resolve_layout(self, tensor, needed=False):
        """The layout of ``tensor`` ("channels_first", "tokens" or None for 2-D)."""
        if self.layout is not None:
            if self.layout == "tokens" and tensor.ndim not in (2, 3):
                raise ValueError(
                    f"layout='tokens' expects block {self.block!r} to output (n, T, D) "
                    f"token sequences; got shape {tuple(tensor.shape)}."
                )
            return self.layout if tensor.ndim > 2 else None
        if tensor.ndim != 3:
            return "channels_first" if tensor.ndim > 3 else None
        layout = known_layout(self.module) if self.select is None else None
        if layout is None and needed:
            raise ValueError(
                f"Block {self.block!r} ({type(self.module).__name__}) outputs 3-D "
                f"tensors of shape {tuple(tensor.shape)}, which are either channels-"
                "first maps (n, C, L) of a 1-D CNN, reduced over L, or token "
                "sequences (n, T, D) of a transformer, reduced over the T tokens. "
                "State which: layout='tokens' or layout='channels_first' (or a dict "
                "by block name, e.g. layout={" + repr(self.block) + ": 'tokens'})."
            )
        return layout

    def reduce(self, tensor):
        """Reduce a selected tensor to ``(n, d)`` (the tensor itself for ``reduce=None``)."""
        if self.raw:
            return tensor
        parts = self.reduce_parts(tensor)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def reduce_parts(self, tensor):
        """One ``(n, d_i)`` tensor per reduction of the list."""
        layout = self.resolve_layout(
            tensor, needed=any(isinstance(spec, (str, Token)) for _, spec in self.reductions)
        )
        parts = []
        for _, spec in self.reductions:
            fn = self._function(spec, layout, tensor)
            part = fn(tensor)
            if not isinstance(part, torch.Tensor) or part.ndim != 2 or len(part) != len(tensor):
                raise ValueError(
                    f"reduce callable {fn!r} must map block {self.block!r} output of shape "
                    f"{tuple(tensor.shape)} to a 2-D tensor with {len(tensor)} rows; got "
                    f"{getattr(part, 'shape', type(part).__name__)}."
                )
            parts.append(part)
        return parts

    def _function(self, spec, layout, tensor):
        tokens = layout == "tokens"
        if isinstance(spec, Token) or spec == "cls":
            if not tokens:
                raise ValueError(
                    f"reduce={spec!r} keeps one token and needs a token sequence "
                    f"(n, T, D); block {self.block!r} outputs {tuple(tensor.shape)} with "
                    f"layout {layout!r}. Pass layout='tokens' for a token sequence."
                )
            return spec if isinstance(spec, Token) else TOKEN_REDUCTIONS[spec]
        if isinstance(spec, str):
            return TOKEN_REDUCTIONS[spec] if tokens else REDUCTIONS[spec]
        return spec

    def __call__(self, output, n_samples):
        return self.reduce(self.pick(output, n_samples))


def make_reducers(model, blocks, reduce, *, layout=None, select=None):
    """``{block: BlockReducer}`` from the ``reduce``, ``layout`` and ``select`` specifications.

    ``reduce`` is one specification for every block, or a dict with exactly one
    per block; ``layout`` and ``select`` are one value for every block or a
    dict by block name (a block left out gets ``None``).
    """
    if isinstance(reduce, dict):
        missing = [b for b in blocks if b not in reduce]
        extra = [b for b in reduce if b not in blocks]
        if missing or extra:
            raise ValueError(
                f"A reduce dict needs exactly one entry per block {list(blocks)}; "
                f"missing {missing}, unexpected {extra}."
            )
        reductions = {block: _resolve_one(reduce[block]) for block in blocks}
    else:
        one = _resolve_one(reduce)
        reductions = {block: one for block in blocks}
    layouts = _per_block(layout, blocks, "layout", _check_layout)
    selects = _per_block(select, blocks, "select", _check_select)
    modules = dict(model.named_modules())
    return {
        block: BlockReducer(block, modules[block], reductions[block], layouts[block],
                            selects[block])
        for block in blocks
    }
