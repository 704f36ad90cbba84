"""The shared benchmark sets (files in a data folder) and their loader."""

import os

import numpy as np

from ._arrays import adapt, as_images, as_labels, check_channels, check_size, read_npz

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
    "cifar10_jpeg": {
        "files": {"train": "cifar10_train20k_jpeg.npz", "test": "cifar10_test_jpeg.npz"},
        "image_size": (32, 32),
        "channels": 3,
        "n_classes": 10,
        "description": (
            "CIFAR-10, JPEG copy: 20,000 class-balanced training images and the 10,000 "
            "test images (the copy the shared trained models were trained on)."
        ),
    },
    "tin": {
        "files": {"test": "tin_val_32.npz"},
        "image_size": (32, 32),
        "channels": 3,
        "n_classes": 200,
        "description": (
            "Tiny ImageNet validation images at 32x32, the classes overlapping CIFAR-10 "
            "removed; near-OOD for CIFAR-10."
        ),
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



def list_benchmarks():
    """Return the names :func:`load_benchmark` accepts, sorted.

    Examples
    --------
    >>> from sklearn_ood.datasets import list_benchmarks
    >>> list_benchmarks()
    ['cifar10', 'cifar10_jpeg', 'dtd', 'fashion_mnist', 'mnist', 'textures', 'tin', 'usps']
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
    size, channels = check_size(size), check_channels(channels)
    path = os.path.join(os.fspath(data_dir), spec["files"][split])
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Benchmark {key!r} (split {split!r}) needs '{path}', which does not exist. "
            "Point data_dir (--data-dir on the command line) at the folder holding "
            "the shared .npz files."
        )
    split_key = spec.get("split_key")
    arrays = read_npz(path, ("x", "y") + ((split_key,) if split_key else ()))
    X = as_images(arrays["x"], path)
    y = as_labels(arrays["y"], len(X), path)
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
    return adapt(X, size, channels), y
