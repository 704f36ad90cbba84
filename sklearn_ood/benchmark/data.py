"""The benchmark's data: ID and OOD sets by name, the fit/validation split, pseudo-OOD.

scikit-learn is imported inside the functions that use it: the command line's
``--help`` reads this module's constants without it.
"""

import os
from dataclasses import dataclass

import numpy as np

from ..datasets import (
    BENCHMARKS, load_benchmark, load_digits_ood, load_image_folder, load_images, load_npz,
)
from .exceptions import BenchmarkError

__all__ = ["EMBEDDED_OOD", "OWN_SPLIT", "Data", "check_path", "load_data", "looks_like_path",
           "split_train"]

EMBEDDED_OOD = ("digits_8_9", "photo_patches")
VAL_FRACTION, VAL_MIN, VAL_MAX = 0.1, 50, 1000
TEST_FRACTION = 0.2
#: An image folder given as the ID set is read at this size, in RGB.
FOLDER_SIZE, FOLDER_CHANNELS = (32, 32), 3
#: How an ID set given as a path is split (help text and report note).
OWN_SPLIT = (f"a stratified {TEST_FRACTION:.0%} test split (seeded by --seed), the rest "
             f"training images, split as every ID set's into fit and a stratified "
             f"validation set ({VAL_FRACTION:.0%}, {VAL_MIN} to {VAL_MAX} images)")


@dataclass(frozen=True)
class Data:
    """The images and labels of one run.

    Attributes
    ----------
    X_fit, y_fit : ndarray
        ID training images that train the models and fit the detectors.
    X_val, y_val : ndarray
        The held-out validation split (pseudo-OOD tuning only).
    X_test, y_test : ndarray
        The ID test set.
    ood : dict
        OOD set name -> images.
    n_classes : int
        Number of ID classes.
    pseudo : ndarray or None
        Jigsaw puzzles of the validation images (``None`` without tuning).
    notes : tuple of str
        Remarks for the report (how an ID path was split).
    """

    X_fit: np.ndarray
    y_fit: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    ood: dict
    n_classes: int
    pseudo: object = None
    notes: tuple = ()

    @property
    def image_sets(self):
        """Every image set the models see, by name (``"pseudo-OOD"`` only with
        tuning)."""
        sets = {"fit": self.X_fit, "validation": self.X_val, "ID test": self.X_test,
                **self.ood}
        if self.pseudo is not None:
            sets["pseudo-OOD"] = self.pseudo
        return sets

    @property
    def labels(self):
        """Class labels by image set: ``"fit"``, ``"validation"``, ``"ID test"``."""
        return {"fit": self.y_fit, "validation": self.y_val, "ID test": self.y_test}

    @property
    def n_images(self):
        """Number of images per set, as the report lists them."""
        return {"fit": len(self.X_fit), "validation": len(self.X_val),
                "ID test": len(self.X_test), **{k: len(X) for k, X in self.ood.items()}}


def load_data(settings, log):
    """Load the ID and OOD sets, split off the validation set, make its puzzles.

    Parameters
    ----------
    settings : Settings
    log : callable
        Called with one progress message at a time.

    Returns
    -------
    Data
    """
    log(f"loading {settings.id_set} (ID) and {', '.join(settings.ood_sets)} (OOD)")
    X_train, y_train, X_test, y_test, ood, n_classes = _load_sets(
        settings.id_data, settings.ood_sets, settings.data_dir, settings.seed,
        settings.ood_paths)
    notes = ()
    if settings.id_data not in BENCHMARKS and settings.id_data != "digits":
        notes = (f"--id {settings.id_data}: {len(X_train) + len(X_test)} images in "
                 f"{n_classes} classes, split into {OWN_SPLIT}.",)
    try:
        X_fit, y_fit, X_val, y_val = split_train(
            X_train, y_train, max_train=settings.max_train, seed=settings.seed)
    except ValueError as exc:
        raise BenchmarkError(f"--id {settings.id_set}: the training images cannot be split "
                             f"into fit and validation sets: {exc}") from exc
    pseudo = _jigsaw_puzzles(X_val, y_val, settings.seed) if settings.tune else None
    data = Data(X_fit, y_fit, X_val, y_val, X_test, y_test, ood, n_classes, pseudo, notes)
    log("images: " + ", ".join(f"{k} {v}" for k, v in data.n_images.items()))
    return data


def _jigsaw_puzzles(X, y, seed):
    """The pseudo-OOD images: one 3x3 jigsaw puzzle per image, as float32."""
    from ..pseudo_ood import make_pseudo_ood

    X_aug, _ = make_pseudo_ood(X, y, method="jigsaw", random_state=seed)
    return X_aug[len(X):].astype(np.float32)


def _load_sets(id_set, ood_sets, data_dir, seed, ood_paths=None):
    """Return ``(X_train, y_train, X_test, y_test, {ood: X}, n_classes)``.

    ``ood_paths`` maps the OOD sets given as paths to their path."""
    ood_paths = ood_paths or {}
    if id_set == "digits":
        data = load_digits_ood(random_state=seed)
        train, test = (data.X_train, data.y_train), (data.X_test, data.y_test)
        n_classes = len(data.classes)
    elif id_set not in BENCHMARKS:
        train, test, n_classes = _load_own_id(id_set, seed)
    else:
        train = load_benchmark(id_set, data_dir, split="train")
        test = load_benchmark(id_set, data_dir, split="test")
        n_classes = BENCHMARKS[id_set]["n_classes"]
    size, channels = tuple(train[0].shape[2:]), train[0].shape[1]
    ood = {}
    for name in ood_sets:
        if name in EMBEDDED_OOD:
            ood[name] = data.ood[name]
        elif name in ood_paths:
            ood[name] = _read_path(ood_paths[name], "--ood", size=size, channels=channels)[0]
        else:
            ood[name] = load_benchmark(name, data_dir, size=size, channels=channels)[0]
    return (*train, *test, ood, n_classes)


def looks_like_path(name):
    """Whether a set name is meant as a path: it exists, ends in ``.npz`` or holds a
    path separator."""
    return os.path.exists(name) or name.endswith(".npz") or os.sep in name or "/" in name


def check_path(path, option):
    """Raise unless ``path`` is an ``.npz`` file or a folder; the error names ``option``."""
    if not os.path.exists(path):
        raise BenchmarkError(f"{option} {path!r}: no such file or folder.")
    if not (os.path.isdir(path) or (os.path.isfile(path) and path.endswith(".npz"))):
        raise BenchmarkError(f"{option} {path!r} is neither an .npz file (arrays x and y) nor "
                             "an image folder.")


def _read_path(path, option, *, size=None, channels=None):
    """``(X, y)`` of an ``.npz`` file or an image folder (``y`` ``None`` for a flat
    OOD folder); errors as :class:`BenchmarkError` naming ``option`` and the path."""
    try:
        if path.endswith(".npz"):
            return load_npz(path, size=size, channels=channels)
        if option == "--id":
            return load_image_folder(path, size=FOLDER_SIZE, channels=FOLDER_CHANNELS)[:2]
        return load_images(path, size=size, channels=channels), None
    except (ValueError, OSError) as exc:
        raise BenchmarkError(f"{option} {path!r} cannot be loaded: {exc}") from exc


def _load_own_id(path, seed):
    """An ID set given as a path: ``(train, test, n_classes)``, the test split stratified."""
    X, y = _read_path(path, "--id")
    if y.min() < 0:
        raise BenchmarkError(f"--id {path!r}: labels must be class indices >= 0 (a negative "
                             f"label marks OOD); found {int(y.min())}.")
    n_classes = int(y.max()) + 1
    from sklearn.model_selection import train_test_split

    try:
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=TEST_FRACTION, stratify=y, random_state=seed)
    except ValueError as exc:
        raise BenchmarkError(f"--id {path!r} ({len(X)} images) cannot be split into training "
                             f"and test sets: {exc}") from exc
    return (X_train, y_train), (X_test, y_test), n_classes


def split_train(X, y, *, max_train, seed):
    """Hold out the stratified validation split; cap the fit set at ``max_train``."""
    from sklearn.model_selection import train_test_split

    n_val = int(min(VAL_MAX, max(VAL_MIN, round(VAL_FRACTION * len(X)))))
    X_fit, X_val, y_fit, y_val = train_test_split(
        X, y, test_size=n_val, stratify=y, random_state=seed)
    if max_train and max_train < len(X_fit):
        X_fit, _, y_fit, _ = train_test_split(
            X_fit, y_fit, train_size=max_train, stratify=y_fit, random_state=seed)
    return X_fit, y_fit, X_val, y_val
