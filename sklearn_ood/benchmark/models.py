"""The benchmark's models: build, train with skorch, save and load.

(Not to be confused with :mod:`sklearn_ood.models`, the architectures and the
skorch training helper this module uses.)
"""

import os
import re
import sys
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import default_collate

from ..models import ResNet, SmallCNN, make_classifier
from .exceptions import BenchmarkError
from .features import layout_of
from .own_model import load_own_model
from .settings import ARCHITECTURES

__all__ = [
    "Models", "build_model", "flip_crop_collate",
    "get_models", "load_state_dict_model", "load_weights", "save_weights", "train_model",
]

#: Architecture name -> module class (ResNet has the ResNet-18 layout by default).
MODULES = dict(zip(ARCHITECTURES, (SmallCNN, ResNet), strict=True))
WEIGHTS_FORMAT = "sklearn-ood-benchmark-weights/1"


@dataclass(frozen=True)
class Models:
    """The models of one run.

    Attributes
    ----------
    nets : dict
        ``"plain"`` (and ``"l2"``: L2-normalised penultimate feature) ->
        ``torch.nn.Module`` in eval mode.
    arch : str
        Their architecture (a weights file may set it).
    width : int
        Channels of their first block (a weights file may set it).
    notes : tuple of str
        Remarks for the report (a weights file trained on another split).
    """

    nets: dict
    arch: str
    width: object
    notes: tuple = ()


def get_models(settings, data, log):
    """Train the models the detectors need, or load them; save them when asked.

    Parameters
    ----------
    settings : Settings
        ``model_files`` or ``weights`` set: load instead of training;
        ``save_weights_to`` set: save the models there.
    data : Data
        The fit set trains the models.
    log : callable
        Called with one progress message at a time.

    Returns
    -------
    Models
    """
    if settings.own_model:
        models = _load_own(settings, data, log)
    elif settings.model_files:
        models = _load_pretrained(settings, data, log)
    elif settings.weights is None:
        models = _train(settings, data, log)
    else:
        models = _load(settings, data, log)
    if settings.save_weights_to is not None:
        save_weights(settings.save_weights_to, models.nets, dict(
            arch=models.arch, width=models.width, id_set=settings.id_set,
            input_shape=list(data.X_fit.shape[1:]), num_classes=data.n_classes,
            epochs=settings.epochs, batch_size=settings.batch_size, augment=settings.augment,
            seed=settings.seed, max_train=settings.max_train, n_fit=len(data.X_fit)))
        log(f"saved the model weights to {settings.save_weights_to}")
    return models


def _train(settings, data, log):
    s = settings
    nets = {}
    for kind in s.model_kinds:
        log(f"training the {kind} {s.model} (width {s.width}, {s.epochs} epochs, "
            f"{len(data.X_fit)} images, augmentation {s.augment})")
        nets[kind] = train_model(
            s.model, data.X_fit, data.y_fit, num_classes=data.n_classes, width=s.width,
            epochs=s.epochs, batch_size=s.batch_size, lr=s.lr, seed=s.seed,
            l2_normalize=kind == "l2", progress=s.progress, augment=s.augment)
    return Models(nets, s.model, s.width)


def _load_own(settings, data, log):
    """The user's model (:mod:`~sklearn_ood.benchmark.own_model`); notes for skipped rows."""
    s = settings
    net = load_own_model(s.model, weights=s.weights, blocks=s.blocks, head=s.head,
                         probe=data.X_fit[:8], n_classes=data.n_classes)
    layout = layout_of(net)
    source = f"from {s.weights}" if s.weights else "with the factory's own parameters"
    log(f"loaded {s.model} {source}; feature block {layout.feature!r}, head {layout.head!r}")
    notes = [f"Model {s.model} loaded {source}, not trained here; h is the output of "
             f"{layout.feature!r}, the head {layout.head!r}"
             + (f", the maps those of {layout.stages[-1]!r}." if layout.stages else ".")
             + " If it was trained on images of the ID set, its test and validation splits "
             "hold training images of the model, and the metrics are optimistic."]
    return Models({"plain": net}, s.model, None, tuple(notes))


def _load_pretrained(settings, data, log):
    """The preset's trained models, one plain state dict per file."""
    s = settings
    nets = {kind: load_state_dict_model(
        path, s.model, num_classes=data.n_classes, in_channels=data.X_fit.shape[1],
        width=s.width, l2_normalize=kind == "l2") for kind, path in s.model_files.items()}
    log(f"loaded {', '.join(nets)} model(s) from {s.models_dir}")
    note = (f"Models loaded from {s.models_dir}, not trained here. They were trained on all "
            "the ID training images, so the validation images of pseudo-OOD tuning come "
            + ("from --val." if s.val_path else "from the test set."))
    return Models(nets, s.model, s.width, (note,))


def load_state_dict_model(path, arch, *, num_classes, in_channels, width, l2_normalize=False):
    """Build a model with :func:`build_model` and load a plain state dict into it.

    Parameters
    ----------
    path : str
        A file holding ``model.state_dict()`` (read with ``weights_only=True``).
    arch : {"smallcnn", "resnet18"}
    num_classes, in_channels, width : int
    l2_normalize : bool, default=False

    Returns
    -------
    model : torch.nn.Module
        In eval mode.

    Raises
    ------
    BenchmarkError
        If the file is missing, unreadable, or not a state dict of that model
        (the message names the file).
    """
    if not os.path.isfile(path):
        raise BenchmarkError(f"model file {path!r} does not exist or is not a file.")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error
        raise BenchmarkError(f"model file {path!r} cannot be read by torch.load: {exc}") from exc
    model = build_model(arch, num_classes=num_classes, in_channels=in_channels, width=width,
                        l2_normalize=l2_normalize)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise BenchmarkError(
            f"model file {path!r} is not a state dict of {arch} (width {width}, "
            f"{in_channels} input channels, {num_classes} classes): {exc}") from exc
    return model.eval()


def _load(settings, data, log):
    s = settings
    loaded, payload = load_weights(s.weights, id_set=s.id_set, input_shape=data.X_fit.shape[1:],
                                   num_classes=data.n_classes)
    notes = []
    if (payload.get("seed"), payload.get("max_train")) != (s.seed, s.max_train):
        notes.append(
            f"{s.weights} was trained with seed {payload.get('seed')} and max-train "
            f"{payload.get('max_train')}; this run uses seed {s.seed} and max-train "
            f"{s.max_train}, so its validation split may hold training images of the "
            "model (pseudo-OOD tuning is then optimistic).")
    nets = {kind: loaded[kind] for kind in s.model_kinds if kind in loaded}
    log(f"loaded {', '.join(nets)} model(s) from {s.weights}")
    return Models(nets, payload["arch"], payload["width"], tuple(notes))


def build_model(arch, *, num_classes, in_channels, width, l2_normalize=False):
    """An untrained :class:`SmallCNN` or ResNet-18 layout :class:`ResNet`."""
    return MODULES[arch](num_classes, in_channels=in_channels, width=width,
                         l2_normalize=l2_normalize)


def _stderr_print(*args, **kwargs):
    """skorch's epoch table on stderr; its colours (ANSI codes) only on a terminal."""
    if not sys.stderr.isatty():
        args = [_ANSI.sub("", str(a)) for a in args]
    print(*args, file=sys.stderr, **kwargs)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def flip_crop_collate(batch):
    """Collate a training batch and augment it: random flip and padded crop.

    Each image is flipped horizontally with probability 1/2, zero-padded by 4
    pixels and cropped back to its size at a random offset (the usual CIFAR
    augmentation). Uses the torch RNG, which the seeded skorch net seeds in
    every fit, so training stays reproducible.
    """
    X, y = default_collate(batch)
    n, _, height, width = X.shape
    flip = torch.rand(n) < 0.5
    X = torch.where(flip[:, None, None, None], X.flip(3), X)
    padded = torch.nn.functional.pad(X, (4, 4, 4, 4))
    offsets = torch.randint(0, 9, (n, 2)).tolist()
    X = torch.stack([padded[i, :, a:a + height, b:b + width]
                     for i, (a, b) in enumerate(offsets)])
    return X, y


def train_model(arch, X, y, *, num_classes, width, epochs, batch_size, lr, seed,
                l2_normalize, progress, augment="none"):
    """Train with :func:`~sklearn_ood.models.make_classifier`; return the module (eval).

    ``progress``: print the epoch table on stderr, with a progress bar when
    stderr is a terminal.
    """
    extra = {"callbacks__print_log__sink": _stderr_print} if progress else {}
    if augment == "flip-crop":
        extra["iterator_train__collate_fn"] = flip_crop_collate
    net = make_classifier(
        MODULES[arch], max_epochs=epochs, batch_size=batch_size, lr=lr, random_state=seed,
        progress=progress and sys.stderr.isatty(), verbose=int(progress), num_classes=num_classes,
        in_channels=X.shape[1], width=width, l2_normalize=l2_normalize, **extra)
    net.fit(X, y.astype(np.int64))
    return net.module_.eval()


def save_weights(path, models, meta):
    """Save both models' state dicts and the settings needed to rebuild them."""
    payload = {"format": WEIGHTS_FORMAT, **meta}
    payload.update({kind: model.state_dict() for kind, model in models.items()})
    torch.save(payload, path)


def load_weights(path, *, id_set, input_shape, num_classes):
    """Rebuild the models saved by :func:`save_weights` (``weights_only=True``).

    Returns ``(models, payload)``: ``{"plain": model, "l2": model}`` (the kinds
    the file holds, in eval mode) and the file's contents (settings included).
    """
    if not os.path.isfile(path):
        raise BenchmarkError(f"--weights {path!r} does not exist or is not a file.")
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error
        raise BenchmarkError(f"--weights {path!r} cannot be read by torch.load: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise BenchmarkError(
            f"--weights {path!r} is not a file written by --save-weights (format "
            f"{WEIGHTS_FORMAT!r})."
        )
    expected = dict(id_set=id_set, input_shape=list(input_shape), num_classes=num_classes)
    saved = {k: payload.get(k) for k in expected}
    if saved != expected:
        raise BenchmarkError(
            f"--weights {path!r} was saved for {saved}, but this run has {expected}."
        )
    models = {}
    for kind in ("plain", "l2"):
        if kind not in payload:
            continue
        model = build_model(payload["arch"], num_classes=num_classes,
                            in_channels=input_shape[0], width=payload["width"],
                            l2_normalize=kind == "l2")
        model.load_state_dict(payload[kind])
        models[kind] = model.eval()
    return models, payload
