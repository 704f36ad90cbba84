"""The benchmark run: data -> two trained models -> cached features -> every detector.

:func:`run_benchmark` does the whole job and returns a :class:`BenchmarkResult`;
:mod:`sklearn_ood.benchmark.report` turns it into tables and plots, and
:mod:`sklearn_ood.benchmark.cli` wraps both as ``sklearn-ood benchmark``.

Protocol (what a row of the result table means):

1. ID training images are split into a *fit* set (trains the models, fits
   every detector) and a held-out stratified *validation* set (10 %, at
   least 50 and at most 1000 images), used only for pseudo-OOD tuning. The
   split is made whether or not tuning runs, so ``--no-tune`` leaves the
   default rows unchanged. ``max_train`` caps the fit set (stratified).
2. Two models of the same architecture and seed are trained with skorch: the
   plain one and one with an L2-normalised penultimate feature (Haas et al.).
3. Every image set (fit, validation and its jigsaw puzzles, ID test, each OOD
   set) runs ONCE through each model; one extractor call captures the last
   stage's map (per-channel ``max`` and ``avg``, and the flattened map) and
   the fc input (``penultimate``).
4. Each detector is fitted on the fit-set features its paper names (class
   labels where the method uses them) with its documented default
   parameters, and scores the ID test set and each OOD set. Metrics:
   AUROC, FPR at 95 % ID TPR (ID positive), AUPR-In, AUPR-Out.
5. Detectors with knobs get a second row, tuned by
   :func:`sklearn_ood.tuning.tune_on_pseudo_ood`: each candidate is fitted on
   the fit-set features and judged by FPR@95 (ties: AUROC) on the validation
   images versus their 3x3 jigsaw puzzles -- no OOD data is used. A last row
   is the detector (default or tuned) with the best pseudo-OOD score overall.
"""

import os
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.model_selection import ParameterGrid, train_test_split
from torch.utils.data import default_collate

from .. import metrics
from ..block_selection import BlockSelection
from ..datasets import BENCHMARKS, load_benchmark, load_digits_ood
from ..detectors.activation import ASH, DICE, LINe, ReAct
from ..detectors.density import KNN, GaussianDensity, Mahalanobis, ViM
from ..detectors.logits import Energy, MaxLogit, MaxSoftmax
from ..detectors.norms import NAP, FeatureNorm, NegativeAwareNorm
from ..extraction import BlockFeatureExtractor
from ..models import ResNet, SmallCNN, make_classifier
from ..pseudo_ood import make_pseudo_ood
from ..tuning import tune_on_pseudo_ood


__all__ = [
    "DETECTORS", "ID_SETS", "BenchmarkError", "BenchmarkResult", "DetectorSpec",
    "run_benchmark",
]

EMBEDDED_OOD = ("digits_8_9", "photo_patches")
ARCHITECTURES = ("smallcnn", "resnet18")
WEIGHTS_FORMAT = "sklearn-ood-benchmark-weights/1"
BLOCK_SELECTION_MAX_FIT = 2000
VAL_FRACTION, VAL_MIN, VAL_MAX = 0.1, 50, 1000
MIN_TRAIN = 100
METRIC_COLUMNS = ("auroc", "fpr95", "aupr_in", "aupr_out")

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
AUGMENTATIONS = ("none", "flip-crop")


class BenchmarkError(ValueError):
    """A user error (unknown set, bad path, bad option): reported without traceback."""


@dataclass(frozen=True)
class DetectorSpec:
    """One row of the benchmark: how to build, feed and tune a detector.

    ``make(head)`` returns an unfitted detector given the final layer as a
    ``(coef, intercept)`` pair; ``features`` names the input: ``"h"`` (fc
    input), ``"pooled"`` (global average of the last stage, before any L2
    normalisation), ``"maxavg"`` (``[max | avg]`` per channel of the last
    stage), ``"maps"`` (the last stage's map, ``(N, C, H*W, 1)``) or
    ``"images"``; ``model`` is ``"plain"`` or ``"l2"``; ``labels`` says
    whether ``fit`` gets the class labels; ``grid`` is the pseudo-OOD tuning
    grid (``None``: nothing to tune).
    """

    key: str
    name: str
    make: object
    features: str = "h"
    model: str = "plain"
    labels: bool = False
    grid: object = None


def _knn_grid(n_bank):
    return {"n_neighbors": [k for k in (1, 5, 10, 20, 50, 100, 200) if k < n_bank]}


#: Every detector of the library, with its documented default parameters.
DETECTORS = [
    DetectorSpec("msp", "MSP", MaxSoftmax),
    DetectorSpec("maxlogit", "MaxLogit", MaxLogit),
    DetectorSpec("energy", "Energy", Energy),
    DetectorSpec("react", "ReAct", ReAct, grid={"percentile": [80, 85, 90, 95, 99]}),
    DetectorSpec("dice", "DICE", DICE, grid={"percentile": [10, 30, 50, 70, 90]}),
    DetectorSpec("ash", "ASH", ASH, grid={"percentile": [50, 65, 80, 90, 95]}),
    DetectorSpec("line", "LINe", LINe, labels=True, grid={
        "p_w": [10, 50, 90], "p_a": [10, 50, 90], "clip_percentile": [90, 99]}),
    DetectorSpec("vim", "ViM", ViM),
    DetectorSpec("mahalanobis", "Mahalanobis", lambda head: Mahalanobis(), labels=True),
    DetectorSpec("mahalanobis+nan", "Mahalanobis+NAN",
                 lambda head: Mahalanobis(nan_rescale=True), "maps", labels=True),
    DetectorSpec("knn", "KNN", lambda head: KNN(n_neighbors=50), grid=_knn_grid),
    DetectorSpec("knn+nan", "KNN+NAN", lambda head: KNN(n_neighbors=50, nan_rescale=True),
                 "maps"),
    DetectorSpec("gda", "GaussianDensity", lambda head: GaussianDensity(), labels=True),
    # Haas et al.: whether the GDA sees the normalised feature is unverified: both.
    DetectorSpec("gda-l2", "GaussianDensity (L2 model)", lambda head: GaussianDensity(),
                 "h", "l2", labels=True),
    DetectorSpec("gda-l2-prenorm", "GaussianDensity (L2 model, pre-norm h)",
                 lambda head: GaussianDensity(), "pooled", "l2", labels=True),
    DetectorSpec("featurenorm", "FeatureNorm (last block)", lambda head: FeatureNorm(),
                 "maps"),
    DetectorSpec("blockselection", "BlockSelection", None, "images"),
    DetectorSpec("nan", "NAN", lambda head: NegativeAwareNorm(), "maps"),
    DetectorSpec("nan-l2", "NAN (L2 model)", lambda head: NegativeAwareNorm(), "maps", "l2"),
    DetectorSpec("nap", "NAP", lambda head: NAP(), "maxavg"),
    DetectorSpec("nap-e", "NAP-E (w=0.4)", lambda head: NAP(head, weight=0.4), "maxavg",
                 grid={"weight": [0.2, 0.4, 0.6, 0.8]}),
]

CHOSEN_NAME = "tuned, method chosen by pseudo-OOD"


def select_detectors(names=None):
    """Return the specs named in ``names`` (keys or display names, any case).

    Examples
    --------
    >>> from sklearn_ood.benchmark.runner import select_detectors
    >>> [spec.name for spec in select_detectors(["knn", "Energy"])]
    ['Energy', 'KNN']
    """
    if not names:
        return list(DETECTORS)
    lookup = {}
    for spec in DETECTORS:
        lookup[spec.key] = lookup[spec.name.lower()] = spec
    unknown = [n for n in names if n.lower() not in lookup]
    if unknown:
        raise BenchmarkError(
            f"Unknown detector(s) {unknown}. Known detectors (key: name): "
            + "; ".join(f"{s.key}: {s.name}" for s in DETECTORS) + "."
        )
    wanted = {lookup[n.lower()].key for n in names}
    return [spec for spec in DETECTORS if spec.key in wanted]


@dataclass
class BenchmarkResult:
    """What :func:`run_benchmark` returns.

    Attributes
    ----------
    rows : list of dict
        One per detector x OOD set plus one ``ood_set="average"`` per
        detector: ``detector, ood_set, auroc, fpr95, aupr_in, aupr_out,
        fit_s, score_s``.
    scores : dict
        Detector name -> {"ID test" or OOD set name -> scores}, as returned
        by ``score_samples`` (may hold infinities; metrics rank them).
    ood_sets : list of str
    config : dict
        The settings actually used.
    info : dict
        ``accuracy`` (and ``accuracy_l2``) on the ID test set, ``timings``
        (seconds per stage), ``n_images`` per set, ``tuned`` (row ->
        parameters), ``pseudo`` (row -> pseudo-OOD FPR95/AUROC), ``notes``.
    """

    rows: list
    scores: dict
    ood_sets: list
    config: dict
    info: dict = field(default_factory=dict)


# ----------------------------------------------------------------------- data
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


# ---------------------------------------------------------------------- models
def build_model(arch, *, num_classes, in_channels, width, l2_normalize=False):
    """An untrained :class:`SmallCNN` or ResNet-18 layout :class:`ResNet`."""
    cls = SmallCNN if arch == "smallcnn" else ResNet
    return cls(num_classes, in_channels=in_channels, width=width, l2_normalize=l2_normalize)


def _stderr_print(*args, **kwargs):
    print(*args, file=sys.stderr, **kwargs)


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
    """Train with :func:`~sklearn_ood.models.make_classifier`; return the module (eval)."""
    cls = SmallCNN if arch == "smallcnn" else ResNet
    extra = {"callbacks__print_log__sink": _stderr_print} if progress else {}
    if augment == "flip-crop":
        extra["iterator_train__collate_fn"] = flip_crop_collate
    net = make_classifier(
        cls, max_epochs=epochs, batch_size=batch_size, lr=lr, random_state=seed,
        progress=progress, verbose=int(progress), num_classes=num_classes,
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


# -------------------------------------------------------------------- features
def extract_features(model, X, *, progress, batch_size=256):
    """One extractor call: last-stage ``max``/``avg``/flattened map and the fc input.

    Returns a dict with ``h`` (fc input), ``pooled`` (global average of the
    last stage), ``maxavg`` (``[max | avg]``, NAP's input) and ``maps``
    (``(N, C, H*W, 1)``: the pre-pooling map, for NAN, FeatureNorm and the
    NAN-rescaled distances).
    """
    stage = model.block_names[-1]
    extractor = BlockFeatureExtractor(
        model, [stage, "penultimate"],
        reduce={stage: ["max", "avg", "flatten"], "penultimate": "flatten"},
        batch_size=batch_size, progress=progress)
    F = extractor.fit(X[:1]).transform(X)
    C, D = model.feature_dim, model.fc.in_features
    n_map = extractor.block_shapes_[stage][0] - 2 * C
    return {
        "h": np.ascontiguousarray(F[:, -D:]),
        "pooled": np.ascontiguousarray(F[:, C:2 * C]),
        "maxavg": np.ascontiguousarray(F[:, :2 * C]),
        "maps": np.ascontiguousarray(F[:, 2 * C:2 * C + n_map]).reshape(len(F), C, -1, 1),
    }


def head_of(model):
    fc = model.fc
    return (fc.weight.detach().cpu().numpy().copy(), fc.bias.detach().cpu().numpy().copy())


# ----------------------------------------------------------------------- scores
def finite_for_ranking(scores):
    """Replace +-inf/NaN by values just beyond the finite range (ranking kept).

    NaN counts as the most OOD score. Returns ``(scores, n_replaced)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.benchmark.runner import finite_for_ranking
    >>> s, n = finite_for_ranking(np.array([1.0, np.inf, -np.inf, 2.0]))
    >>> bool(s[1] > 2.0 and s[2] < 1.0 and np.isfinite(s).all()), n
    (True, 2)
    """
    s = np.asarray(scores, dtype=np.float64)
    bad = ~np.isfinite(s)
    if not bad.any():
        return s, 0
    finite = s[~bad]
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    s = s.copy()
    s[np.isposinf(s)] = np.nextafter(hi, np.inf)
    s[np.isneginf(s) | np.isnan(s)] = np.nextafter(lo, -np.inf)
    return s, int(bad.sum())


def ood_metrics(id_scores, ood_scores):
    """AUROC, FPR@95 % ID TPR, AUPR-In, AUPR-Out of ID vs one OOD set.

    Examples
    --------
    >>> from sklearn_ood.benchmark.runner import ood_metrics
    >>> m = ood_metrics([3.0, 2.0, 1.0], [1.5, 0.0])
    >>> round(m["auroc"], 4), m["fpr95"]
    (0.8333, 0.5)
    """
    score, _ = finite_for_ranking(np.concatenate([id_scores, ood_scores]))
    y = np.concatenate([np.zeros(len(id_scores), int), -np.ones(len(ood_scores), int)])
    return {
        "auroc": metrics.auroc(y, score),
        "fpr95": metrics.fpr_at_tpr(y, score, tpr=0.95, positive="id"),
        "aupr_in": metrics.aupr(y, score, positive="id"),
        "aupr_out": metrics.aupr(y, score, positive="ood"),
    }


def _rows_for(name, scores, ood_sets, fit_s, score_s):
    rows = []
    for ood in ood_sets:
        rows.append({"detector": name, "ood_set": ood,
                     **ood_metrics(scores["ID test"], scores[ood]),
                     "fit_s": fit_s, "score_s": score_s})
    avg = {m: float(np.mean([r[m] for r in rows])) for m in METRIC_COLUMNS}
    rows.append({"detector": name, "ood_set": "average", **avg,
                 "fit_s": fit_s, "score_s": score_s})
    return rows


# ------------------------------------------------------------------------ run
class _Logger:
    def __init__(self, enabled):
        self.enabled = enabled
        self.start = time.perf_counter()

    def __call__(self, message):
        if self.enabled:
            print(f"[{time.perf_counter() - self.start:6.1f}s] {message}", file=sys.stderr,
                  flush=True)


def _resolve(value, default):
    return default if value is None else value


def run_benchmark(id_set="digits", ood_sets=None, *, data_dir=None, model=None, width=None,
                  epochs=None, batch_size=None, lr=None, augment=None, weights=None,
                  save_weights_to=None, seed=0, detectors=None, max_train=None, tune=True,
                  progress=False):
    """Train (or load) the models and run every detector; see the module docstring.

    Parameters
    ----------
    id_set : {"digits", "mnist", "cifar10"}, default="digits"
        ``"digits"`` is the embedded set (no files needed).
    ood_sets : list of str, default=None
        OOD set names; ``None``: the ID set's defaults (:data:`ID_SETS`).
    data_dir : str, default=None
        Folder of the shared ``.npz`` files (needed for non-embedded sets).
    model : {"smallcnn", "resnet18"}, default=None
    width, epochs, batch_size : int, default=None
        ``None``: the ID set's defaults.
    lr : float, default=None
        Initial SGD learning rate (``None``: ``make_classifier``'s 0.05).
    augment : {"none", "flip-crop"}, default=None
        Training augmentation (random horizontal flip and 4-pixel padded
        crop); ``None``: the ID set's default (flip-crop for CIFAR-10 only).
    weights : str, default=None
        A file written with ``save_weights_to``: load the models instead of
        training them.
    save_weights_to : str, default=None
        Where to save the trained models.
    seed : int, default=0
        Seeds the data split, training, jigsaw puzzles and folds.
    detectors : list of str, default=None
        Detector keys or names (:data:`DETECTORS`); ``None``: all.
    max_train : int, default=None
        Cap on the fit set (0: no cap); ``None``: the ID set's default.
    tune : bool, default=True
        Add the pseudo-OOD tuned rows.
    progress : bool, default=False
        Log stages and show progress bars on stderr.

    Returns
    -------
    BenchmarkResult

    Raises
    ------
    BenchmarkError
        For an unknown set, detector or model name, a missing or bad
        ``data_dir`` or ``weights`` file, or an out-of-range option.

    See Also
    --------
    sklearn_ood.benchmark.report.write_report : tables and plots of the result.

    Examples
    --------
    >>> from sklearn_ood.benchmark import run_benchmark
    >>> result = run_benchmark(epochs=1, max_train=100, detectors=["energy"], tune=False)
    >>> [(r["detector"], r["ood_set"]) for r in result.rows]
    [('Energy', 'digits_8_9'), ('Energy', 'photo_patches'), ('Energy', 'average')]
    >>> sorted(result.scores["Energy"])
    ['ID test', 'digits_8_9', 'photo_patches']
    """
    log = _Logger(progress)
    ood_sets = check_sets(id_set, ood_sets, data_dir)
    preset = ID_SETS[id_set]
    specs = select_detectors(detectors)
    arch = _resolve(model, preset["model"])
    if arch not in ARCHITECTURES:
        raise BenchmarkError(f"Unknown model {arch!r}; choose from {', '.join(ARCHITECTURES)}.")
    width = _resolve(width, preset["width"] if arch == preset["model"] else 16)
    epochs = _resolve(epochs, preset["epochs"])
    batch_size = _resolve(batch_size, preset["batch_size"])
    max_train = _resolve(max_train, preset["max_train"])
    augment = _resolve(augment, preset["augment"])
    if augment not in AUGMENTATIONS:
        raise BenchmarkError(
            f"Unknown augmentation {augment!r}; choose from {', '.join(AUGMENTATIONS)}.")
    for option, value, low in (("--width", width, 1), ("--epochs", epochs, 1),
                               ("--batch-size", batch_size, 1), ("--max-train", max_train, 0)):
        if int(value) != value or value < low:
            raise BenchmarkError(f"{option} must be an integer >= {low}; got {value!r}.")
    if 0 < max_train < MIN_TRAIN:
        raise BenchmarkError(
            f"--max-train must be 0 (no cap) or at least {MIN_TRAIN}; got {max_train}.")
    if weights is not None and not os.path.isfile(weights):
        raise BenchmarkError(f"--weights {weights!r} does not exist or is not a file.")
    tune = bool(tune)
    timings, notes = {}, []

    # 1. data
    t0 = time.perf_counter()
    log(f"loading {id_set} (ID) and {', '.join(ood_sets)} (OOD)")
    X_train, y_train, X_test, y_test, ood, n_classes = load_data(
        id_set, ood_sets, data_dir, seed)
    X_fit, y_fit, X_val, y_val = split_train(X_train, y_train, max_train=max_train, seed=seed)
    timings["data"] = time.perf_counter() - t0
    n_images = {"fit": len(X_fit), "validation": len(X_val), "ID test": len(X_test),
                **{name: len(X) for name, X in ood.items()}}
    log("images: " + ", ".join(f"{k} {v}" for k, v in n_images.items()))

    # 2. models
    kinds = ["plain"] + (["l2"] if any(s.model == "l2" for s in specs) else [])
    t0 = time.perf_counter()
    if weights is not None:
        loaded, payload = load_weights(
            weights, id_set=id_set, input_shape=X_fit.shape[1:], num_classes=n_classes)
        arch, width = payload["arch"], payload["width"]
        models = {k: loaded[k] for k in kinds if k in loaded}
        if (payload.get("seed"), payload.get("max_train")) != (seed, max_train):
            notes.append(
                f"{weights} was trained with seed {payload.get('seed')} and max-train "
                f"{payload.get('max_train')}; this run uses seed {seed} and max-train "
                f"{max_train}, so its validation split may hold training images of the "
                "model (pseudo-OOD tuning is then optimistic).")
        if "l2" in kinds and "l2" not in loaded:
            notes.append(f"{weights} holds no L2 model: its rows are skipped.")
        log(f"loaded {', '.join(models)} model(s) from {weights}")
    else:
        models = {}
        for kind in kinds:
            log(f"training the {kind} {arch} (width {width}, {epochs} epochs, "
                f"{len(X_fit)} images, augmentation {augment})")
            models[kind] = train_model(
                arch, X_fit, y_fit, num_classes=n_classes, width=width, epochs=epochs,
                batch_size=batch_size, lr=lr, seed=seed, l2_normalize=kind == "l2",
                progress=progress, augment=augment)
    timings["train"] = time.perf_counter() - t0
    if save_weights_to is not None:
        save_weights(save_weights_to, models, dict(
            arch=arch, width=width, id_set=id_set, input_shape=list(X_fit.shape[1:]),
            num_classes=n_classes, epochs=epochs, batch_size=batch_size, augment=augment,
            seed=seed, max_train=max_train, n_fit=len(X_fit)))
        log(f"saved the model weights to {save_weights_to}")
    specs = [s for s in specs if s.model in models]

    # 3. features: one pass per image set and model
    t0 = time.perf_counter()
    pseudo_images = None
    image_sets = {"fit": X_fit, "ID test": X_test, **ood}
    if tune:
        X_aug, _ = make_pseudo_ood(X_val, y_val, method="jigsaw", random_state=seed)
        pseudo_images = X_aug[len(X_val):].astype(np.float32)
        image_sets.update({"validation": X_val, "pseudo-OOD": pseudo_images})
    feats = {}
    for kind, net in models.items():
        feats[kind] = {}
        for set_name, X in image_sets.items():
            log(f"extracting features: {kind} model, {set_name} ({len(X)} images)")
            feats[kind][set_name] = extract_features(net, X, progress=progress)
    timings["extract"] = time.perf_counter() - t0
    images = image_sets

    info = {"timings": timings, "n_images": n_images, "notes": notes, "tuned": {},
            "pseudo": {}}
    for kind, net in models.items():
        h = feats[kind]["ID test"]["h"]
        coef, intercept = head_of(net)
        acc = float(np.mean(np.argmax(h @ coef.T + intercept, axis=1) == y_test))
        info["accuracy" if kind == "plain" else "accuracy_l2"] = acc
        log(f"{kind} model: ID test accuracy {acc:.4f}")

    # 4. detectors with default parameters
    eval_sets = ["ID test", *ood_sets]
    rows, all_scores = [], {}
    t_det = time.perf_counter()
    for spec in specs:
        log(f"detector {spec.name}")
        net = models[spec.model]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if spec.key == "blockselection":
                n_bs = min(BLOCK_SELECTION_MAX_FIT, len(X_fit))
                idx = np.random.RandomState(seed).permutation(len(X_fit))[:n_bs]
                det = BlockSelection(net, random_state=seed)
                fit_args = (X_fit[np.sort(idx)],)
                source = images
            else:
                det = spec.make(head_of(net))
                source = {k: v[spec.features] for k, v in feats[spec.model].items()}
                fit_args = (source["fit"], y_fit) if spec.labels else (source["fit"],)
            t0 = time.perf_counter()
            det.fit(*fit_args)
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            scores = {name: det.score_samples(source[name]) for name in eval_sets}
            score_s = time.perf_counter() - t0
            if tune:
                info["pseudo"][spec.name] = _pseudo_metrics(
                    det.score_samples(source["validation"]),
                    det.score_samples(source["pseudo-OOD"]))
        if spec.key == "blockselection":
            notes.append(
                f"BlockSelection: fitted on {n_bs} training images; selected "
                f"{det.block_!r} among {det.blocks_}.")
        all_scores[spec.name] = scores
        rows += _rows_for(spec.name, scores, ood_sets, fit_s, score_s)
    timings["detectors"] = time.perf_counter() - t_det

    # 5. pseudo-OOD tuning
    if tune:
        t0 = time.perf_counter()
        rows, all_scores = _tune_rows(
            specs, models, feats, y_fit, y_val, rows, all_scores, ood_sets, info, seed,
            log)
        timings["tuning"] = time.perf_counter() - t0

    config = dict(id_set=id_set, ood_sets=ood_sets, model=arch, width=width, epochs=epochs,
                  batch_size=batch_size, lr=lr, augment=augment, seed=seed,
                  max_train=max_train,
                  weights=weights, tune=tune, detectors=[s.key for s in specs],
                  data_dir=data_dir)
    return BenchmarkResult(rows=rows, scores=all_scores, ood_sets=ood_sets, config=config,
                           info=info)


def _pseudo_metrics(val_scores, pseudo_scores):
    m = ood_metrics(val_scores, pseudo_scores)
    return {"fpr95": m["fpr95"], "auroc": m["auroc"]}


def _format_params(params):
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _tune_rows(specs, models, feats, y_fit, y_val, rows, all_scores, ood_sets, info, seed,
               log):
    """Add a tuned row after each tunable detector's rows and the overall choice."""
    eval_sets = ["ID test", *ood_sets]
    by_name = {}
    for row in rows:
        by_name.setdefault(row["detector"], []).append(row)
    order = [spec.name for spec in specs]
    n_fit, n_val = len(y_fit), len(y_val)
    for spec in specs:
        if spec.grid is None:
            continue
        grid = spec.grid(n_fit) if callable(spec.grid) else spec.grid
        head = head_of(models[spec.model])
        source = feats[spec.model]
        X = np.concatenate([source["fit"][spec.features], source["validation"][spec.features]])
        y = np.concatenate([y_fit, y_val])
        test = np.arange(n_fit, n_fit + n_val + len(source["pseudo-OOD"][spec.features]))
        log(f"tuning {spec.name} on pseudo-OOD ({len(ParameterGrid(grid))} candidates)")
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            search = tune_on_pseudo_ood(
                None, spec.make(head), grid, X, y, X_pseudo=source["pseudo-OOD"][spec.features],
                scoring=["fpr95", "auroc"], refit=False, cv=[(np.arange(n_fit), test)],
                random_state=seed)
        res = search.cv_results_
        fpr = -np.nan_to_num(res["mean_test_fpr95"], nan=-np.inf)
        auc = np.nan_to_num(res["mean_test_auroc"], nan=-np.inf)
        best = int(np.lexsort((-auc, fpr))[0])
        params = res["params"][best]
        det = spec.make(head).set_params(**params)
        fit_args = ((source["fit"][spec.features], y_fit) if spec.labels
                    else (source["fit"][spec.features],))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            det.fit(*fit_args)
            fit_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            scores = {name: det.score_samples(source[name][spec.features])
                      for name in eval_sets}
            score_s = time.perf_counter() - t1
        name = f"{spec.name}, tuned (pseudo-OOD)"
        info["tuned"][name] = params
        info["pseudo"][name] = {"fpr95": float(fpr[best]), "auroc": float(auc[best])}
        all_scores[name] = scores
        by_name[name] = _rows_for(name, scores, ood_sets, fit_s, score_s)
        order.insert(order.index(spec.name) + 1, name)
        log(f"  {name}: {_format_params(params)} (pseudo FPR95 {fpr[best]:.3f})")

    # the detector (default or tuned) with the best pseudo-OOD score overall
    candidates = [n for n in order if n in info["pseudo"]]
    if candidates:
        key = [(info["pseudo"][n]["fpr95"], -info["pseudo"][n]["auroc"]) for n in candidates]
        winner = candidates[min(range(len(candidates)), key=key.__getitem__)]
        chosen = f"{CHOSEN_NAME}: {winner}"
        if winner in info["tuned"]:
            chosen += f" [{_format_params(info['tuned'][winner])}]"
        info["chosen"] = winner
        all_scores[chosen] = all_scores[winner]
        by_name[chosen] = [{**r, "detector": chosen} for r in by_name[winner]]
        order.append(chosen)
    new_rows = [row for name in order for row in by_name[name]]
    return new_rows, {name: all_scores[name] for name in order}

