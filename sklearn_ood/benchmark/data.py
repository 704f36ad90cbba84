"""The benchmark's data: ID and OOD sets by name, the fit/validation split, pseudo-OOD.

The validation images (pseudo-OOD tuning, the detectors' calibrating
statistics and the conformal thresholds) are never images the models were
trained on: a stratified split of the training images held out from
training, or, for a preset whose models were trained on every training image
(``validation="test"``), a stratified split of the test set (OpenOOD v1.5's
protocol), or the user's own file (``--val``).

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

__all__ = ["EMBEDDED_OOD", "OWN_SPLIT", "PSEUDO_PREFIX", "Data", "check_path", "load_data",
           "looks_like_path", "split_test", "split_train"]

EMBEDDED_OOD = ("digits_8_9", "photo_patches")
VAL_FRACTION, VAL_MIN, VAL_MAX = 0.1, 50, 1000
TEST_FRACTION = 0.2
#: An image folder given as the ID set is read at this size, in RGB.
FOLDER_SIZE, FOLDER_CHANNELS = (32, 32), 3
#: How an ID set given as a path is split (help text and report note).
OWN_SPLIT = (f"a stratified {TEST_FRACTION:.0%} test split (seeded by --seed), the rest "
             f"training images, split as every ID set's into fit and a stratified "
             f"validation set ({VAL_FRACTION:.0%}, {VAL_MIN} to {VAL_MAX} images)")
#: Image-set name of each corruption's pseudo-OOD images: ``PSEUDO_PREFIX + "jigsaw"``.
PSEUDO_PREFIX = "pseudo-OOD "


@dataclass(frozen=True)
class Data:
    """The images and labels of one run.

    Attributes
    ----------
    X_fit, y_fit : ndarray
        ID training images that train the models and fit the detectors.
    X_val, y_val : ndarray
        The validation images, never trained on.
    X_test, y_test : ndarray
        The ID test set.
    ood : dict
        OOD set name -> images.
    n_classes : int
        Number of ID classes.
    pseudo : dict
        Corruption (:data:`~sklearn_ood.selection.CORRUPTIONS`) -> one corrupted
        copy of each validation image (empty without tuning).
    notes : tuple of str
        Remarks for the report (how an ID path was split).
    validation : str
        Which images validate, for the report.
    """

    X_fit: np.ndarray
    y_fit: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    ood: dict
    n_classes: int
    pseudo: dict = None
    notes: tuple = ()
    validation: str = ""

    @property
    def image_sets(self):
        """Every image set the models see, by name (the pseudo-OOD sets,
        ``PSEUDO_PREFIX + corruption``, only with tuning)."""
        sets = {"fit": self.X_fit, "validation": self.X_val, "ID test": self.X_test,
                **self.ood}
        sets.update({PSEUDO_PREFIX + k: X for k, X in (self.pseudo or {}).items()})
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
    X_fit, y_fit, X_val, y_val, X_test, y_test, validation = _validation_split(
        settings, X_train, y_train, X_test, y_test, n_classes)
    pseudo = _pseudo_ood(X_val, y_val, settings.seed) if settings.tune else {}
    data = Data(X_fit, y_fit, X_val, y_val, X_test, y_test, ood, n_classes, pseudo, notes,
                validation)
    log("images: " + ", ".join(f"{k} {v}" for k, v in data.n_images.items()))
    return data


def _validation_split(settings, X_train, y_train, X_test, y_test, n_classes):
    """``(X_fit, y_fit, X_val, y_val, X_test, y_test, description)``: the validation
    images from ``--val``, the test set (``settings.validation == "test"``) or the
    training images (held out from training)."""
    s = settings
    try:
        if s.val_path is not None:
            X_val, y_val = _read_path(s.val_path, "--val", size=X_train.shape[2:],
                                      channels=X_train.shape[1])
            _check_val_labels(y_val, n_classes)
            X_fit, y_fit = cap_fit(X_train, y_train, s.max_train, s.seed)
            how = f"the {len(X_val)} images of --val {s.val_path}"
        elif s.validation == "test":
            X_test, y_test, X_val, y_val = split_test(X_test, y_test, seed=s.seed)
            X_fit, y_fit = cap_fit(X_train, y_train, s.max_train, s.seed)
            how = (f"{len(X_val)} images of the ID test set (stratified, seed {s.seed}), "
                   f"never trained on; the ID test set is the other {len(X_test)}")
        else:
            X_fit, y_fit, X_val, y_val = split_train(
                X_train, y_train, max_train=s.max_train, seed=s.seed)
            how = (f"{len(X_val)} training images (stratified, seed {s.seed}) held out "
                   "from the fit set")
    except ValueError as exc:
        raise BenchmarkError(f"--id {s.id_set}: the images cannot be split into fit, "
                             f"validation and test sets: {exc}") from exc
    return X_fit, y_fit, X_val, y_val, X_test, y_test, how


def _check_val_labels(y, n_classes):
    if y is None or y.min() < 0 or y.max() >= n_classes:
        raise BenchmarkError(f"--val: the validation images need class labels 0 to "
                             f"{n_classes - 1} (those of the ID set); got "
                             f"{'none' if y is None else sorted(set(y.tolist()))[:10]}.")


def _pseudo_ood(X, y, seed):
    """Corruption -> one corrupted copy of each validation image, as float32."""
    from ..selection import CORRUPTIONS, make_pseudo_ood_sources

    X_aug, y_aug = make_pseudo_ood_sources(X, y, sources=CORRUPTIONS, random_state=seed)
    return {name: X_aug[y_aug == -(i + 1)].astype(np.float32)
            for i, name in enumerate(CORRUPTIONS)}


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


def _n_val(n):
    return int(min(VAL_MAX, max(VAL_MIN, round(VAL_FRACTION * n))))


def split_train(X, y, *, max_train, seed):
    """Hold out the stratified validation split; cap the fit set at ``max_train``."""
    from sklearn.model_selection import train_test_split

    X_fit, X_val, y_fit, y_val = train_test_split(
        X, y, test_size=_n_val(len(X)), stratify=y, random_state=seed)
    X_fit, y_fit = cap_fit(X_fit, y_fit, max_train, seed)
    return X_fit, y_fit, X_val, y_val


def split_test(X, y, *, seed):
    """``(X_test, y_test, X_val, y_val)``: a stratified validation split of the test set
    (10 %, 50 to 1,000 images: 1,000 of CIFAR-10's 10,000), the rest the ID test set."""
    from sklearn.model_selection import train_test_split

    X_test, X_val, y_test, y_val = train_test_split(
        X, y, test_size=_n_val(len(X)), stratify=y, random_state=seed)
    return X_test, y_test, X_val, y_val


def cap_fit(X, y, max_train, seed):
    """At most ``max_train`` fit images (stratified; 0: all)."""
    from sklearn.model_selection import train_test_split

    if max_train and max_train < len(X):
        X, _, y, _ = train_test_split(X, y, train_size=max_train, stratify=y,
                                      random_state=seed)
    return X, y
