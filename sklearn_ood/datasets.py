"""Image data sets for OOD-detection experiments.

Every loader returns images as ``float32`` arrays of shape ``(N, C, H, W)``
(NCHW, the layout PyTorch expects) with values in ``[0, 1]`` (``uint8 / 255``)
and labels as ``int64`` arrays of shape ``(N,)``.

* :func:`load_digits_ood` builds a small, complete benchmark only from data
  that installed packages ship (scikit-learn's digits and sample photos), so
  examples and tests run without any download.
* :func:`load_npz`, :func:`load_idx` and :func:`load_image_folder` read real
  data from disk and validate what they read.
* :func:`load_benchmark` loads the shared benchmark sets listed in
  :data:`BENCHMARKS` by name.

This module is a leaf: it imports NumPy and scikit-learn only (Pillow lazily,
when image files have to be decoded).
"""

import gzip
import math
import numbers
import os
import struct

import numpy as np
from sklearn.datasets import load_digits, load_sample_images
from sklearn.model_selection import train_test_split
from sklearn.utils import Bunch, check_random_state

__all__ = [
    "BENCHMARKS",
    "list_benchmarks",
    "load_benchmark",
    "load_digits_ood",
    "load_idx",
    "load_image_folder",
    "load_npz",
]

# ITU-R BT.601 luma weights, the ones Pillow's ``convert("L")`` uses.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

BENCHMARKS = {
    "mnist": {
        "files": {"train": "mnist_train.npz", "test": "mnist_test.npz"},
        "image_size": (28, 28),
        "channels": 1,
        "n_classes": 10,
        "description": "MNIST handwritten digits; the ID set of gray 28x28 benchmarks.",
    },
    "fashion_mnist": {
        "files": {"test": "fashion_mnist_test.npz"},
        "image_size": (28, 28),
        "channels": 1,
        "n_classes": 10,
        "description": "Fashion-MNIST test set (Zalando); far-OOD for MNIST.",
    },
    "usps": {
        "files": {"train": "usps.npz", "test": "usps.npz"},
        "split_key": "split",
        "split_codes": {"train": 0, "test": 1},
        "image_size": (28, 28),
        "channels": 1,
        "n_classes": 10,
        "description": (
            "USPS digits, 16x16 upsampled to 28x28; near-OOD (covariate shift) "
            "for MNIST. Both splits live in one file, told apart by its 'split' array."
        ),
    },
    "cifar10": {
        "files": {"train": "cifar10_train4k.npz", "test": "cifar10_test1k.npz"},
        "image_size": (32, 32),
        "channels": 3,
        "n_classes": 10,
        "description": "CIFAR-10: first 4000 training and first 1000 test images.",
    },
    "dtd": {
        "files": {"test": "dtd10_32.npz"},
        "image_size": (32, 32),
        "channels": 3,
        "n_classes": 10,
        "description": "Describable Textures, 10 classes x 120 images; OOD for CIFAR-10.",
    },
    "textures": {
        "files": {"test": "skimage_texture_patches.npz"},
        "image_size": (32, 32),
        "channels": 1,
        "n_classes": 3,
        "description": (
            "32x32 gray crops of scikit-image's brick, grass and gravel photos; "
            "OOD for MNIST (load with size=(28, 28)). Low diversity: 3 photos."
        ),
    },
}
"""Registry of the shared benchmark sets read by :func:`load_benchmark`.

Maps a name to a dict with ``files`` (split -> file name inside ``data_dir``),
``image_size`` ``(H, W)`` and ``channels`` as stored, ``n_classes`` and a
``description``. OOD-only sets have a single ``"test"`` split.
"""


# --------------------------------------------------------------------------
# validation and conversion helpers


def _check_size(size):
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


def _check_channels(channels):
    if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
        raise ValueError(f"channels must be None, 1 or 3, got {channels!r}.")
    return channels


def _as_images(x, source):
    """Validate raw images and return float32 NCHW in [0, 1]."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3):
        x = np.moveaxis(x, -1, 1)
    else:
        raise ValueError(
            f"{source}: expected images of shape (N, H, W) or (N, H, W, C) with "
            f"C in {{1, 3}}, got shape {x.shape}."
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


def _as_labels(y, n_samples, source):
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"{source}: labels must be a 1-D integer array, got shape {y.shape} "
            f"and dtype {y.dtype}."
        )
    if y.shape[0] != n_samples:
        raise ValueError(f"{source}: {n_samples} images but {y.shape[0]} labels.")
    return y.astype(np.int64)


def _resize_matrix(n_in, n_out):
    """(n_out, n_in) weights of a bilinear (triangle) filter, antialiased when shrinking."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centers = (np.arange(n_out) + 0.5) * scale
    dist = np.abs(centers[:, None] - (np.arange(n_in) + 0.5)[None, :]) / support
    weights = np.maximum(1.0 - dist, 0.0)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def _adapt(X, size, channels):
    """Resize (H, W) and convert channels of float32 NCHW images in [0, 1]."""
    if channels == 1 and X.shape[1] == 3:
        X = np.einsum("nchw,c->nhw", X, _LUMA)[:, None]
        np.clip(X, 0.0, 1.0, out=X)  # the weights' float32 sum may exceed 1
    if size is not None and size != X.shape[2:]:
        rows = _resize_matrix(X.shape[2], size[0])
        cols = _resize_matrix(X.shape[3], size[1])
        X = np.matmul(np.matmul(rows, X), cols.T)  # convex weights: stays in [0, 1]
        np.clip(X, 0.0, 1.0, out=X)
    if channels == 3 and X.shape[1] == 1:
        X = np.repeat(X, 3, axis=1)
    return X


def _check_file(path, what):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such {what} file: '{path}'.")
    return path


def _read_npz(path, keys):
    """Read the named arrays from an .npz archive, refusing pickled objects."""
    path = _check_file(path, ".npz")
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


# --------------------------------------------------------------------------
# embedded default


def _photo_patches(n_patches, rng, window=32, pool=4, min_contrast=0.1):
    """Gray patches of scikit-learn's sample photos, pooled to digit size."""
    grays = [img.astype(np.float32) @ _LUMA / 255 for img in load_sample_images().images]
    counts = [n_patches // len(grays) + (i < n_patches % len(grays)) for i in range(len(grays))]
    offsets = np.arange(window)
    side = window // pool
    patches = []
    for gray, count in zip(grays, counts):
        n_cols = gray.shape[1] - window + 1
        order = rng.permutation((gray.shape[0] - window + 1) * n_cols)  # no window twice
        step = min(2 * count + 16, 4096)  # about half the windows pass the contrast test
        kept, n_kept = [np.empty((0, side, side), np.float32)], 0
        for start in range(0, len(order), step):
            if n_kept >= count:
                break
            r, c = np.divmod(order[start : start + step], n_cols)
            crops = gray[r[:, None, None] + offsets[:, None], c[:, None, None] + offsets]
            pooled = crops.reshape(len(r), side, pool, side, pool).mean(axis=(2, 4))
            lo, hi = pooled.min(axis=(1, 2)), pooled.max(axis=(1, 2))
            keep = hi - lo >= min_contrast  # skip flat sky / blurred background
            kept.append((pooled[keep] - lo[keep, None, None]) / (hi - lo)[keep, None, None])
            n_kept += int(keep.sum())
        if n_kept < count:
            raise ValueError(
                f"n_far={n_patches} asks for more textured patches than the sample "
                f"photos hold ({n_kept} in one photo)."
            )
        patches.append(np.concatenate(kept)[:count])
    patches = np.concatenate(patches)[:, None].astype(np.float32)
    return patches[rng.permutation(len(patches))]


def load_digits_ood(
    *, id_classes=(0, 1, 2, 3, 4, 5, 6, 7), test_size=0.3, random_state=0, n_far=500
):
    """Load a small OOD benchmark built only from data scikit-learn ships.

    In-distribution (ID) data are scikit-learn's 8x8 digits of ``id_classes``,
    split into a stratified train and test set. Near-OOD data are the digits of
    the held-out classes; far-OOD data are 8x8 patches of scikit-learn's two
    sample photos (``china.jpg``, ``flower.jpg``): random 32x32 gray windows,
    average-pooled 4x4 to 8x8, with flat (low-contrast) windows skipped and each
    patch min-max rescaled to [0, 1] so that its contrast matches the digits'.

    Parameters
    ----------
    id_classes : sequence of int, default=(0, 1, 2, 3, 4, 5, 6, 7)
        Digits (0..9) that are in-distribution; between 1 and 9 distinct values.
        The remaining digits form the near-OOD set.
    test_size : float or int, default=0.3
        Fraction (or number) of ID samples in the test split, as in
        :func:`~sklearn.model_selection.train_test_split`.
    random_state : int, RandomState instance or None, default=0
        Seeds the train/test split and the choice of photo patches.
    n_far : int, default=500
        Number of far-OOD photo patches (half from each photo, no window twice).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        X_train, X_test : ndarray of shape (n, 1, 8, 8), float32 in [0, 1]
            ID images (digit values 0..16 divided by 16).
        y_train, y_test : ndarray of shape (n,), int64
            Labels ``0..len(classes) - 1``; ``classes[y]`` is the digit.
        ood : dict of str -> ndarray of shape (m, 1, 8, 8), float32 in [0, 1]
            ``"digits_<held-out digits>"`` (near-OOD, e.g. ``"digits_8_9"``)
            and ``"photo_patches"`` (far-OOD).
        classes : ndarray of shape (n_classes,), int64
            The ID digits, sorted.
        description : str
            What the data are and how they were made.

    Raises
    ------
    ValueError
        If ``id_classes`` or ``n_far`` is invalid.
    ImportError
        If Pillow, which scikit-learn needs to decode the sample photos, is missing.

    See Also
    --------
    load_benchmark : Load real benchmark sets (MNIST, CIFAR-10, ...) from disk.

    Examples
    --------
    >>> from sklearn_ood.datasets import load_digits_ood
    >>> data = load_digits_ood()
    >>> data.X_train.shape, data.X_test.shape, data.X_train.dtype
    ((1010, 1, 8, 8), (433, 1, 8, 8), dtype('float32'))
    >>> {name: images.shape for name, images in data.ood.items()}
    {'digits_8_9': (354, 1, 8, 8), 'photo_patches': (500, 1, 8, 8)}
    >>> data.classes
    array([0, 1, 2, 3, 4, 5, 6, 7])
    """
    try:
        classes = np.asarray(id_classes)
        valid = classes.ndim == 1 and np.issubdtype(classes.dtype, np.integer)
    except (TypeError, ValueError):
        valid = False
    if not valid or len(np.unique(classes)) != len(classes) or not 1 <= len(classes) <= 9 or (
        classes.min() < 0 or classes.max() > 9
    ):
        raise ValueError(
            "id_classes must hold 1 to 9 distinct digits in 0..9 (the rest are "
            f"near-OOD), got {id_classes!r}."
        )
    if not isinstance(n_far, numbers.Integral) or isinstance(n_far, bool) or n_far < 1:
        raise ValueError(f"n_far must be a positive int, got {n_far!r}.")
    classes = np.sort(classes).astype(np.int64)
    rng = check_random_state(random_state)

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    target = digits.target.astype(np.int64)
    is_id = np.isin(target, classes)
    y_id = np.searchsorted(classes, target[is_id]).astype(np.int64)
    X_train, X_test, y_train, y_test = train_test_split(
        images[is_id], y_id, test_size=test_size, stratify=y_id, random_state=rng
    )
    held_out = np.setdiff1d(np.arange(10), classes)
    near_name = "digits_" + "_".join(str(d) for d in held_out)
    ood = {near_name: images[~is_id], "photo_patches": _photo_patches(int(n_far), rng)}
    description = (
        f"ID: scikit-learn digits {classes.tolist()} (8x8, values/16), "
        f"{len(X_train)} train / {len(X_test)} test, stratified; labels index `classes`. "
        f"Near-OOD '{near_name}': all {len(ood[near_name])} digits {held_out.tolist()}. "
        f"Far-OOD 'photo_patches': {n_far} distinct random 32x32 gray windows of scikit-learn's "
        "china.jpg and flower.jpg, average-pooled to 8x8, low-contrast windows "
        "skipped, each min-max rescaled to [0, 1]."
    )
    return Bunch(
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        ood=ood,
        classes=classes,
        description=description,
    )


# --------------------------------------------------------------------------
# real data from disk


def load_npz(path, *, size=None, channels=None):
    """Load images and labels from a NumPy ``.npz`` archive.

    The archive must hold ``x``, images of shape ``(N, H, W)`` or
    ``(N, H, W, C)`` with ``C`` in {1, 3}, either ``uint8`` (0..255) or float
    (0..1), and ``y``, a 1-D integer array of length ``N``. Other arrays are
    ignored. The file is opened with ``allow_pickle=False``.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file.
    size : int or (int, int), default=None
        Resize images to ``(H, W)`` with a bilinear (triangle) filter that is
        antialiased when shrinking, like Pillow's ``BILINEAR`` and
        ``torch.nn.functional.interpolate(..., antialias=True)``. ``None`` keeps
        the stored size.
    channels : {1, 3}, default=None
        Convert to gray (luma ``0.299 R + 0.587 G + 0.114 B``) or to RGB
        (gray repeated). ``None`` keeps the stored channels.

    Returns
    -------
    X : ndarray of shape (N, C, H, W), float32 in [0, 1]
    y : ndarray of shape (N,), int64

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not an ``.npz`` archive, lacks ``x`` or ``y``, holds
        object arrays, or the arrays have the wrong shape, dtype or length.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_ood.datasets import load_npz
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.npz")
    >>> x = np.zeros((5, 4, 4, 3), dtype=np.uint8)
    >>> np.savez(path, x=x, y=np.arange(5))
    >>> X, y = load_npz(path, size=(8, 8), channels=1)
    >>> X.shape, X.dtype, y.dtype
    ((5, 1, 8, 8), dtype('float32'), dtype('int64'))
    """
    size, channels = _check_size(size), _check_channels(channels)
    arrays = _read_npz(path, ("x", "y"))
    source = os.fspath(path)
    X = _as_images(arrays["x"], source)
    y = _as_labels(arrays["y"], len(X), source)
    return _adapt(X, size, channels), y


_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_idx(path):
    path = _check_file(path, "IDX")
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: corrupt gzip data ({exc}).") from exc
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()}; expected 0x0000TTDD with "
            "type byte TT in {08, 09, 0B, 0C, 0D, 0E} and DD >= 1 the number of "
            "dimensions (0x00000803 for MNIST images, 0x00000801 for labels)."
        )
    ndim, header = raw[3], 4 + 4 * raw[3]
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes for {ndim} dims).")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: header declares shape {dims} of {dtype.name} ({expected} data "
            f"bytes) but the file holds {len(raw) - header} data bytes."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def load_idx(images_path, labels_path=None, *, size=None, channels=None):
    """Load images (and labels) from MNIST-style IDX files.

    The IDX header (``0x0000``, a type byte, the number of dimensions, then
    each dimension as a big-endian uint32) is parsed and checked against the
    data length. Gzip-compressed files (``.gz``) are detected by content.

    Parameters
    ----------
    images_path : str or path-like
        IDX file of images, shape ``(N, H, W)`` or ``(N, H, W, C)`` with ``C``
        in {1, 3}; ``uint8`` (0..255) or float (0..1).
    labels_path : str or path-like, default=None
        IDX file of ``N`` integer labels, shape ``(N,)``.
    size : int or (int, int), default=None
        Resize to ``(H, W)``; see :func:`load_npz`.
    channels : {1, 3}, default=None
        Convert channels; see :func:`load_npz`.

    Returns
    -------
    X : ndarray of shape (N, C, H, W), float32 in [0, 1]
        Returned alone when ``labels_path`` is None.
    y : ndarray of shape (N,), int64
        Only when ``labels_path`` is given.

    Raises
    ------
    FileNotFoundError
        If a file does not exist.
    ValueError
        On a bad magic number, a header that disagrees with the data length,
        wrong shapes or dtypes, or different image and label counts.

    Examples
    --------
    >>> import os, struct, tempfile
    >>> from sklearn_ood.datasets import load_idx
    >>> folder = tempfile.mkdtemp()
    >>> images = os.path.join(folder, "images-idx3-ubyte")
    >>> labels = os.path.join(folder, "labels-idx1-ubyte")
    >>> with open(images, "wb") as f:
    ...     _ = f.write(struct.pack(">I3I", 0x0803, 2, 3, 3) + bytes(range(18)))
    >>> with open(labels, "wb") as f:
    ...     _ = f.write(struct.pack(">II", 0x0801, 2) + bytes([4, 7]))
    >>> X, y = load_idx(images, labels)
    >>> X.shape, y.tolist()
    ((2, 1, 3, 3), [4, 7])
    """
    size, channels = _check_size(size), _check_channels(channels)
    X = _adapt(_as_images(_read_idx(images_path), os.fspath(images_path)), size, channels)
    if labels_path is None:
        return X
    source = f"{os.fspath(labels_path)} (for images {os.fspath(images_path)})"
    return X, _as_labels(_read_idx(labels_path), len(X), source)


_IMAGE_EXTENSIONS = (
    ".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp"
)


def load_image_folder(root, *, size=(32, 32), channels=3):
    """Load a folder of images with one subfolder per class.

    Class names are the subfolder names, sorted; label ``i`` is
    ``classes[i]``. Files with an image extension (``.png``, ``.jpg``, ...)
    are read with Pillow, converted to gray (``"L"``, luma weights as in
    :func:`load_npz`) or RGB (alpha dropped) and resized with Pillow's
    bilinear filter. Hidden files and folders are skipped.

    Parameters
    ----------
    root : str or path-like
        Folder holding ``<class>/<image>`` files.
    size : int or (int, int), default=(32, 32)
        Output ``(H, W)`` of every image.
    channels : {1, 3}, default=3
        1 for gray, 3 for RGB.

    Returns
    -------
    X : ndarray of shape (N, channels, H, W), float32 in [0, 1]
    y : ndarray of shape (N,), int64
    classes : ndarray of shape (n_classes,), str

    Raises
    ------
    ImportError
        If Pillow is not installed.
    FileNotFoundError
        If ``root`` is not a folder.
    ValueError
        If there are no class subfolders, a class folder holds no images, or
        a file cannot be decoded.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from sklearn_ood.datasets import load_image_folder
    >>> root = tempfile.mkdtemp()
    >>> for name in ["cat", "dog"]:
    ...     os.mkdir(os.path.join(root, name))
    ...     Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(
    ...         os.path.join(root, name, "0.png"))
    >>> X, y, classes = load_image_folder(root, size=(16, 16))
    >>> X.shape, y.tolist(), classes.tolist()
    ((2, 3, 16, 16), [0, 1], ['cat', 'dog'])
    """
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError(
            "load_image_folder reads image files with Pillow, which is not "
            "installed; install it with `pip install pillow`."
        ) from exc
    size = _check_size(size)
    if size is None or _check_channels(channels) is None:
        raise ValueError(
            f"size and channels are required, got size={size!r}, channels={channels!r}."
        )
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"No such image folder: '{root}'.")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise ValueError(f"{root}: no class subfolders; expected <root>/<class>/<image>.png.")
    bilinear = getattr(Image, "Resampling", Image).BILINEAR
    mode = "L" if channels == 1 else "RGB"
    images, labels = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        files = sorted(
            e.name
            for e in os.scandir(folder)
            if e.is_file()
            and not e.name.startswith(".")
            and os.path.splitext(e.name)[1].lower() in _IMAGE_EXTENSIONS
        )
        if not files:
            raise ValueError(
                f"{folder}: class folder '{name}' holds no image files "
                f"(looked for {', '.join(_IMAGE_EXTENSIONS)})."
            )
        for file in files:
            path = os.path.join(folder, file)
            try:
                with Image.open(path) as img:
                    img = img.convert(mode).resize((size[1], size[0]), bilinear)
                    images.append(np.asarray(img, dtype=np.uint8))
            except OSError as exc:  # includes PIL.UnidentifiedImageError
                raise ValueError(f"{path}: cannot be decoded as an image ({exc}).") from exc
            labels.append(label)
    X = _as_images(np.stack(images), root)
    return X, np.asarray(labels, dtype=np.int64), np.asarray(classes)


def list_benchmarks():
    """Return the names :func:`load_benchmark` accepts, sorted.

    Examples
    --------
    >>> from sklearn_ood.datasets import list_benchmarks
    >>> list_benchmarks()
    ['cifar10', 'dtd', 'fashion_mnist', 'mnist', 'textures', 'usps']
    """
    return sorted(BENCHMARKS)


def load_benchmark(name, data_dir, *, split="test", size=None, channels=None):
    """Load a shared benchmark set by name from ``data_dir``.

    The sets and their files are listed in :data:`BENCHMARKS`. ``size`` and
    ``channels`` match an OOD set to the ID set's geometry, e.g. ``textures``
    (32x32 gray) with ``size=(28, 28)`` next to MNIST, or ``mnist`` with
    ``size=(32, 32), channels=3`` next to CIFAR-10.

    Parameters
    ----------
    name : str
        A key of :data:`BENCHMARKS` (case-insensitive, ``-`` read as ``_``).
    data_dir : str or path-like
        Folder holding the ``.npz`` files.
    split : str, default="test"
        ``"train"`` or ``"test"``; OOD-only sets have only ``"test"``.
    size : int or (int, int), default=None
        Resize to ``(H, W)``; see :func:`load_npz`.
    channels : {1, 3}, default=None
        Convert channels; see :func:`load_npz`.

    Returns
    -------
    X : ndarray of shape (N, C, H, W), float32 in [0, 1]
    y : ndarray of shape (N,), int64

    Raises
    ------
    ValueError
        For an unknown name or split, or a file whose images do not have the
        registered geometry.
    FileNotFoundError
        If the file is not in ``data_dir``.

    Examples
    --------
    >>> from sklearn_ood.datasets import BENCHMARKS, load_benchmark
    >>> BENCHMARKS["textures"]["files"], BENCHMARKS["textures"]["image_size"]
    ({'test': 'skimage_texture_patches.npz'}, (32, 32))
    >>> X, y = load_benchmark("textures", "../shared/data", size=(28, 28))  # doctest: +SKIP
    >>> X.shape  # doctest: +SKIP
    (2883, 1, 28, 28)
    """
    key = str(name).lower().replace("-", "_")
    if key not in BENCHMARKS:
        raise ValueError(
            f"Unknown benchmark {name!r}; known benchmarks: {', '.join(list_benchmarks())}."
        )
    spec = BENCHMARKS[key]
    if split not in spec["files"]:
        raise ValueError(
            f"Benchmark {key!r} has no split {split!r}; available: {sorted(spec['files'])}."
        )
    size, channels = _check_size(size), _check_channels(channels)
    path = os.path.join(os.fspath(data_dir), spec["files"][split])
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Benchmark {key!r} (split {split!r}) needs '{path}', which does not exist. "
            "Point data_dir (--data-dir on the command line) at the folder holding "
            "the shared .npz files."
        )
    split_key = spec.get("split_key")
    arrays = _read_npz(path, ("x", "y") + ((split_key,) if split_key else ()))
    X = _as_images(arrays["x"], path)
    y = _as_labels(arrays["y"], len(X), path)
    if split_key:
        codes = np.asarray(arrays[split_key])
        if codes.shape != y.shape:
            raise ValueError(
                f"{path}: '{split_key}' must have shape {y.shape}, got {codes.shape}."
            )
        mask = codes == spec["split_codes"][split]
        X, y = X[mask], y[mask]
    expected = (spec["channels"], *spec["image_size"])
    if X.shape[1:] != expected:
        raise ValueError(
            f"{path}: benchmark {key!r} expects images (C, H, W) = {expected}, "
            f"got {X.shape[1:]}."
        )
    return _adapt(X, size, channels), y
