"""The benchmark's data: ID and OOD sets by name, and the fit/validation split."""

import os

from sklearn.model_selection import train_test_split

from ..datasets import BENCHMARKS, load_benchmark, load_digits_ood
from .exceptions import BenchmarkError

EMBEDDED_OOD = ("digits_8_9", "photo_patches")
VAL_FRACTION, VAL_MIN, VAL_MAX = 0.1, 50, 1000

#: Per ID set: default OOD sets and training settings (chosen to fit the time
#: budgets on 2 CPU cores: digits < 2 min, MNIST < 20 min).
ID_SETS = {
    "digits": dict(ood=EMBEDDED_OOD, model="smallcnn", width=16, epochs=30,
                   batch_size=64, max_train=0, augment="none"),
    "mnist": dict(ood=("fashion_mnist", "usps", "textures"), model="resnet18", width=16,
                  epochs=5, batch_size=128, max_train=12000, augment="none"),
    "cifar10": dict(ood=("dtd",), model="resnet18", width=16, epochs=30, batch_size=128,
                    max_train=0, augment="flip-crop"),
}


def _check_data_dir(data_dir, needed_by):
    if data_dir is None:
        raise BenchmarkError(
            f"--data-dir is required for {', '.join(needed_by)}: point it at the folder "
            "holding the shared .npz files (e.g. /work/shared/data)."
        )
    if not os.path.isdir(data_dir):
        raise BenchmarkError(
            f"--data-dir {data_dir!r} is not a directory (needed for "
            f"{', '.join(needed_by)}). Point it at the folder holding the .npz files."
        )


def check_sets(id_set, ood_sets, data_dir):
    """Validate the set names (and ``data_dir`` when a set needs it); return OOD names."""
    if id_set not in ID_SETS:
        raise BenchmarkError(
            f"Unknown ID set {id_set!r}; known ID sets: {', '.join(ID_SETS)}."
        )
    ood_sets = list(ood_sets) if ood_sets else list(ID_SETS[id_set]["ood"])
    known = (list(EMBEDDED_OOD) if id_set == "digits" else []) + sorted(BENCHMARKS)
    unknown = [n for n in ood_sets if n not in known]
    if unknown:
        raise BenchmarkError(
            f"Unknown OOD set(s) {unknown} for --id {id_set}; known OOD sets: "
            f"{', '.join(known)}."
        )
    if id_set in ood_sets:
        raise BenchmarkError(f"The ID set {id_set!r} cannot also be an OOD set.")
    if len(set(ood_sets)) != len(ood_sets):
        raise BenchmarkError(f"OOD sets listed twice: {ood_sets}.")
    needed_by = ([f"--id {id_set}"] if id_set != "digits" else []) + [
        n for n in ood_sets if n not in EMBEDDED_OOD
    ]
    if needed_by:
        _check_data_dir(data_dir, needed_by)
    return ood_sets


def load_data(id_set, ood_sets, data_dir, seed):
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
