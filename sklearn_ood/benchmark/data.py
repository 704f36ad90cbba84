"""The benchmark's data: ID and OOD sets by name, the fit/validation split, pseudo-OOD."""

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from ..datasets import BENCHMARKS, load_benchmark, load_digits_ood
from ..pseudo_ood import make_pseudo_ood

__all__ = ["EMBEDDED_OOD", "Data", "load_data", "split_train"]

EMBEDDED_OOD = ("digits_8_9", "photo_patches")
VAL_FRACTION, VAL_MIN, VAL_MAX = 0.1, 50, 1000


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
        settings.id_data, settings.ood_sets, settings.data_dir, settings.seed)
    X_fit, y_fit, X_val, y_val = split_train(
        X_train, y_train, max_train=settings.max_train, seed=settings.seed)
    pseudo = _jigsaw_puzzles(X_val, y_val, settings.seed) if settings.tune else None
    data = Data(X_fit, y_fit, X_val, y_val, X_test, y_test, ood, n_classes, pseudo)
    log("images: " + ", ".join(f"{k} {v}" for k, v in data.n_images.items()))
    return data


def _jigsaw_puzzles(X, y, seed):
    """The pseudo-OOD images: one 3x3 jigsaw puzzle per image, as float32."""
    X_aug, _ = make_pseudo_ood(X, y, method="jigsaw", random_state=seed)
    return X_aug[len(X):].astype(np.float32)


def _load_sets(id_set, ood_sets, data_dir, seed):
    """Return ``(X_train, y_train, X_test, y_test, {ood: X}, n_classes)``."""
    if id_set == "digits":
        data = load_digits_ood(random_state=seed)
        train, test = (data.X_train, data.y_train), (data.X_test, data.y_test)
        n_classes = len(data.classes)
    else:
        train = load_benchmark(id_set, data_dir, split="train")
        test = load_benchmark(id_set, data_dir, split="test")
        n_classes = BENCHMARKS[id_set]["n_classes"]
    size, channels = tuple(train[0].shape[2:]), train[0].shape[1]
    ood = {}
    for name in ood_sets:
        if name in EMBEDDED_OOD:
            ood[name] = data.ood[name]
        else:
            ood[name] = load_benchmark(name, data_dir, size=size, channels=channels)[0]
    return (*train, *test, ood, n_classes)


def split_train(X, y, *, max_train, seed):
    """Hold out the stratified validation split; cap the fit set at ``max_train``."""
    n_val = int(min(VAL_MAX, max(VAL_MIN, round(VAL_FRACTION * len(X)))))
    X_fit, X_val, y_fit, y_val = train_test_split(
        X, y, test_size=n_val, stratify=y, random_state=seed)
    if max_train and max_train < len(X_fit):
        X_fit, _, y_fit, _ = train_test_split(
            X_fit, y_fit, train_size=max_train, stratify=y_fit, random_state=seed)
    return X_fit, y_fit, X_val, y_val
