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

import numpy as np
from sklearn.model_selection import ParameterGrid

from ..pseudo_ood import make_pseudo_ood
from ..tuning import tune_on_pseudo_ood
from .data import ID_SETS, check_sets, load_data, split_train
from .exceptions import BenchmarkError
from .result import CHOSEN_NAME, TUNED_SUFFIX, BenchmarkResult, metric_rows, ood_metrics
from .specs import DETECTORS, DetectorSpec, select_detectors
from .features import extract_features, head_of
from .models import ARCHITECTURES, AUGMENTATIONS, load_weights, save_weights, train_model

__all__ = [
    "DETECTORS", "ID_SETS", "BenchmarkError", "BenchmarkResult", "DetectorSpec",
    "run_benchmark",
]

MIN_TRAIN = 100



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
            feats[kind][set_name] = {**extract_features(net, X, progress=progress),
                                     "images": X}
    timings["extract"] = time.perf_counter() - t0

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
            det = _build(spec, net, seed)
            source = {k: v[spec.features] for k, v in feats[spec.model].items()}
            rows_fit = _fit_rows(len(y_fit), spec.max_fit, seed)
            fit_args = ((source["fit"][rows_fit], y_fit[rows_fit]) if spec.labels
                        else (source["fit"][rows_fit],))
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
        if spec.note is not None:
            notes.append(spec.note(det, len(fit_args[0])))
        all_scores[spec.name] = scores
        rows += metric_rows(spec.name, scores, fit_s, score_s)
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


def _build(spec, net, seed):
    """The spec's detector for ``net``; a ``random_state`` parameter gets the run's seed."""
    detector = spec.make(net)
    if "random_state" in detector.get_params(deep=False):
        detector.set_params(random_state=seed)
    return detector


def _fit_rows(n, max_fit, seed):
    """All ``n`` fit rows, or a seeded sample of ``max_fit`` of them in order."""
    if max_fit is None or n <= max_fit:
        return slice(None)
    return np.sort(np.random.RandomState(seed).permutation(n)[:max_fit])


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
        source = feats[spec.model]
        X = np.concatenate([source["fit"][spec.features], source["validation"][spec.features]])
        y = np.concatenate([y_fit, y_val])
        test = np.arange(n_fit, n_fit + n_val + len(source["pseudo-OOD"][spec.features]))
        log(f"tuning {spec.name} on pseudo-OOD ({len(ParameterGrid(grid))} candidates)")
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            search = tune_on_pseudo_ood(
                None, _build(spec, models[spec.model], seed), grid, X, y, X_pseudo=source["pseudo-OOD"][spec.features],
                scoring=["fpr95", "auroc"], refit=False, cv=[(np.arange(n_fit), test)],
                random_state=seed)
        res = search.cv_results_
        fpr = -np.nan_to_num(res["mean_test_fpr95"], nan=-np.inf)
        auc = np.nan_to_num(res["mean_test_auroc"], nan=-np.inf)
        best = int(np.lexsort((-auc, fpr))[0])
        params = res["params"][best]
        det = _build(spec, models[spec.model], seed).set_params(**params)
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
        name = spec.name + TUNED_SUFFIX
        info["tuned"][name] = params
        info["pseudo"][name] = {"fpr95": float(fpr[best]), "auroc": float(auc[best])}
        all_scores[name] = scores
        by_name[name] = metric_rows(name, scores, fit_s, score_s)
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

