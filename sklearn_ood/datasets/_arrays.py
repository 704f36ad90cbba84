"""Validation and conversion of image arrays read from disk (shared by the loaders)."""

import numbers
import os

import numpy as np

# ITU-R BT.601 luma weights, the ones Pillow's ``convert("L")`` uses.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def check_size(size):
    if size is None:
        return None
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size, size)
    try:
        size = tuple(size)
    except TypeError:
        size = None
    if (
        size is None
        or len(size) != 2
        or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in size)
        or min(size) < 1
    ):
        raise ValueError(f"size must be None or a pair of positive ints (H, W), got {size!r}.")
    return int(size[0]), int(size[1])


def check_channels(channels):
    if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
        raise ValueError(f"channels must be None, 1 or 3, got {channels!r}.")
    return channels


def as_images(x, source):
    """Validate raw images and return float32 NCHW in [0, 1].

    ``(N, H, W)``, ``(N, H, W, C)`` or, when the last axis (more than 4)
    cannot hold channels, PyTorch's ``(N, C, H, W)``; ``C`` in {1, 3}.
    """
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3):
        x = np.moveaxis(x, -1, 1)
    elif not (x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] > 4):
        raise ValueError(
            f"{source}: expected images of shape (N, H, W), (N, H, W, C) or (N, C, H, W) "
            f"with C in {{1, 3}} (channels first only when the width is above 4), got "
            f"shape {x.shape}."
        )
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"{source}: holds no images (shape {x.shape}).")
    if x.dtype == np.uint8:
        X = np.ascontiguousarray(x, dtype=np.float32)
        X /= 255
        return X
    if np.issubdtype(x.dtype, np.floating):
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise ValueError(
                f"{source}: float images must be finite with values in [0, 1], got "
                f"range [{np.nanmin(x):g}, {np.nanmax(x):g}]; store 0..255 data as uint8."
            )
        return x
    raise ValueError(
        f"{source}: images must be uint8 (0..255) or float (0..1), got dtype "
        f"{x.dtype}; convert with x.astype(np.uint8) if the values are 0..255."
    )


def as_labels(y, n_samples, source):
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"{source}: labels must be a 1-D integer array, got shape {y.shape} "
            f"and dtype {y.dtype}."
        )
    if y.shape[0] != n_samples:
        raise ValueError(f"{source}: {n_samples} images but {y.shape[0]} labels.")
    return y.astype(np.int64)


def resize_matrix(n_in, n_out):
    """(n_out, n_in) weights of a bilinear (triangle) filter, antialiased when shrinking."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centers = (np.arange(n_out) + 0.5) * scale
    dist = np.abs(centers[:, None] - (np.arange(n_in) + 0.5)[None, :]) / support
    weights = np.maximum(1.0 - dist, 0.0)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def adapt(X, size, channels):
    """Resize (H, W) and convert channels of float32 NCHW images in [0, 1]."""
    if channels == 1 and X.shape[1] == 3:
        X = np.einsum("nchw,c->nhw", X, LUMA)[:, None]
        np.clip(X, 0.0, 1.0, out=X)  # the weights' float32 sum may exceed 1
    if size is not None and size != X.shape[2:]:
        rows = resize_matrix(X.shape[2], size[0])
        cols = resize_matrix(X.shape[3], size[1])
        X = np.matmul(np.matmul(rows, X), cols.T)  # convex weights: stays in [0, 1]
        np.clip(X, 0.0, 1.0, out=X)
    if channels == 3 and X.shape[1] == 1:
        X = np.repeat(X, 3, axis=1)
    return X


def check_file(path, what):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such {what} file: '{path}'.")
    return path


def read_npz(path, keys):
    """Read the named arrays from an .npz archive, refusing pickled objects."""
    path = check_file(path, ".npz")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:  # zipfile, pickle and header errors alike
        raise ValueError(f"{path}: cannot be read as a NumPy .npz archive ({exc}).") from exc
    if not hasattr(archive, "files"):
        raise ValueError(
            f"{path}: is a single .npy array, expected an .npz archive with arrays "
            "'x' (images) and 'y' (labels), e.g. np.savez(path, x=x, y=y)."
        )
    with archive:
        missing = [key for key in keys if key not in archive.files]
        if missing:
            raise ValueError(
                f"{path}: missing array(s) {missing}; found {sorted(archive.files)}. "
                "Expected 'x' (images) and 'y' (labels)."
            )
        arrays = {}
        for key in keys:
            try:
                arrays[key] = archive[key]
            except ValueError as exc:
                if "allow_pickle" not in str(exc):
                    raise ValueError(f"{path}: array '{key}' is unreadable ({exc}).") from exc
                raise ValueError(
                    f"{path}: array '{key}' has dtype=object (Python objects), which is "
                    "not loaded because unpickling untrusted files is unsafe "
                    "(allow_pickle=False). Re-save it as a numeric array, e.g. "
                    f"np.savez(path, {key}=np.asarray({key}, dtype=np.uint8), ...)."
                ) from exc
    return arrays
