"""The benchmark run: the stages in order, from the options to a :class:`BenchmarkResult`.

settings -> data -> models -> features -> default rows -> tuned rows. Each stage
is one module of this package; :mod:`~sklearn_ood.benchmark.report` turns the
result into tables and plots, and :mod:`~sklearn_ood.benchmark.cli` wraps both
as ``sklearn-ood benchmark``.

Protocol (what a row of the result table means):

1. ID training images are split into a *fit* set (trains the models, fits
   every detector) and a held-out stratified *validation* set (10 %, at
   least 50 and at most 1000 images), for pseudo-OOD tuning, the detectors'
   calibrating statistics and the conformal thresholds (4 to 6). The
   split is made whether or not tuning runs, so ``--no-tune`` leaves the
   default rows unchanged. ``max_train`` caps the fit set (stratified). A
   preset whose models were trained on every training image
   (``cifar10-resnet18``) takes its validation images from the test set
   instead (1,000 of CIFAR-10's 10,000; the ID test set is the other 9,000),
   and ``val`` gives validation images of one's own: pseudo-OOD never
   validates on images the models were trained on.
2. Two models of the same architecture and seed are trained with skorch: the
   plain one and one with an L2-normalised penultimate feature (Haas et al.).
3. Every image set (fit, validation and its corrupted copies, ID test, each
   OOD set) runs ONCE through each model; one extractor call captures the
   last stage's map (per-channel ``max`` and ``avg``, and the flattened map)
   and the fc input (``penultimate``).
4. Each detector is fitted on the fit-set features its paper names (class
   labels where the method uses them) with its documented default
   parameters, its calibrating statistics (a temperature, a standardisation,
   templates, a normaliser: :mod:`sklearn_ood._calibration`) on the
   validation images (``X_cal``), and scores the ID test set and each OOD
   set. Metrics:
   AUROC, FPR at 95 % ID TPR (ID positive), AUPR-In, AUPR-Out.
5. Detectors with knobs get a second row, tuned on pseudo-OOD: each candidate
   of the grid beside the detector's class is fitted on the fit-set features
   and judged by FPR@95 (ties: AUROC) on five sources -- held-out classes
   and the validation images versus their jigsaw puzzles, noisy, blurred and
   pixel-permuted copies (:mod:`~sklearn_ood.benchmark.sources`) -- no OOD
   data is used. The candidate with the best mean rank over the sources
   wins; a last row is the detector (default or tuned) with the best worst
   rank over all rows.
6. Decisions (:mod:`~sklearn_ood.benchmark.decisions`): each row's share of
   the ID test set and of each OOD set accepted at its plain threshold
   (``offset_``, from its fit rows) and at the conformal threshold calibrated
   on the validation images (never trained on); ``info["thresholds"]`` and
   ``info["accepted"]``.

A detector that needs what the models lack (a second model, maps, a last map
with as many channels as the head's input, a dropout layer) is *skipped*, with
the reason (:mod:`~sklearn_ood.benchmark.preconditions`); a row whose fit,
scoring or search raises *fails*. Each row runs in isolation: neither costs
the other rows. ``info["skipped"]`` and ``info["failed"]`` give the reasons.
"""

import contextlib
import sys
import time

from ..diagnostics import neural_collapse
from .data import load_data
from .decisions import decide
from .evaluate import Inputs, accuracies, evaluate_all
from .exceptions import BenchmarkError
from .features import extract_all
from .models import get_models
from .preconditions import skip_reason
from .result import BenchmarkResult, group_rows, near_chance
from .settings import resolve_settings
from .tune import add_tuned_rows

__all__ = ["run_benchmark"]


def run_benchmark(id_set="digits", ood_sets=None, *, data_dir=None, models_dir=None, model=None,
                  width=None, epochs=None, batch_size=None, lr=None, augment=None, weights=None,
                  save_weights_to=None, seed=0, detectors=None, max_train=None, tune=True,
                  progress=False, blocks=None, head=None, val=None):
    """Train (or load) the models and run every detector; see the module docstring.

    Parameters
    ----------
    id_set : {"digits", "mnist", "cifar10", "cifar10-resnet18"} or path, default="digits"
        ``"digits"`` is the embedded set (no files needed);
        ``"cifar10-resnet18"`` loads trained models from ``models_dir``. A
        path to an ``.npz`` file (arrays ``x``, ``y``) or an image folder (one
        subfolder per class, read at 32x32 RGB) is split as
        :data:`~sklearn_ood.benchmark.data.OWN_SPLIT` says.
    ood_sets : list of str, default=None
        OOD set names or paths (``.npz`` files or image folders, read at the
        ID images' size and channels); ``None``: the ID set's defaults
        (:data:`ID_SETS`; required with an ID path).
    data_dir : str, default=None
        Folder of the shared ``.npz`` files (needed for non-embedded sets).
    models_dir : str, default=None
        Folder of the trained models of an ID set that loads them
        (``"cifar10-resnet18"``: its plain and L2 state dicts); no training.
    model : {"smallcnn", "resnet18"} or "package.module:factory", default=None
        The architecture to train, or a model of yours: the factory is
        imported and called without arguments, must return an ``nn.Module``
        and nothing is trained (see ``blocks``, ``head``, ``weights``).
    width, epochs, batch_size : int, default=None
        ``None``: the ID set's defaults.
    lr : float, default=None
        Initial SGD learning rate (``None``: ``make_classifier``'s 0.05).
    augment : {"none", "flip-crop"}, default=None
        Training augmentation (random horizontal flip and 4-pixel padded
        crop); ``None``: the ID set's default (flip-crop for CIFAR-10 only).
    weights : str, default=None
        A file written with ``save_weights_to``: load the models instead of
        training them. With a model of yours: its state dict
        (``torch.load(weights_only=True)``; ``None``: the factory's parameters).
    save_weights_to : str, default=None
        Where to save the trained models.
    seed : int, default=0
        Seeds the data split, training, jigsaw puzzles and randomised detectors.
    detectors : list of str, default=None
        Detector keys or names (:data:`DETECTORS`); ``None``: all.
    max_train : int, default=None
        Cap on the fit set (0: no cap); ``None``: the ID set's default.
    tune : bool, default=True
        Add the pseudo-OOD tuned rows.
    progress : bool, default=False
        Log stages and show progress bars on stderr.
    blocks : list of str, default=None
        A model of yours: the blocks to read. The last one is the feature
        block (its flattened output is the head's input); the ones before it
        must output maps ``(N, C, H, W)``, the last of them giving the maps of
        the map-based detectors (skipped with one block).
    head : str, default=None
        A model of yours: its final ``nn.Linear``.
    val : str, default=None
        An ``.npz`` file (arrays ``x``, ``y``: images and their class labels,
        in the ID set's class order) of validation images for pseudo-OOD tuning
        (images the model was not trained on); the fit set is then every
        training image. ``None``: the ID set's validation split.

    Returns
    -------
    BenchmarkResult
        The rows that ran; ``info["skipped"]`` and ``info["failed"]`` name
        the others with their reasons (module docstring).

    Raises
    ------
    BenchmarkError
        For an unknown set, detector or model name, a missing or bad
        ``data_dir`` or ``weights`` file, an out-of-range option, or when no
        detector asked for can run on the model.

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
    >>> result.to_frame()[["detector", "ood_set"]]  # a pandas DataFrame, one row per row
      detector        ood_set
    0   Energy     digits_8_9
    1   Energy  photo_patches
    2   Energy        average
    """
    settings = resolve_settings(
        id_set, ood_sets, data_dir=data_dir, models_dir=models_dir, model=model, width=width,
        epochs=epochs, batch_size=batch_size, lr=lr, augment=augment, weights=weights,
        save_weights_to=save_weights_to, seed=seed, detectors=detectors, max_train=max_train,
        tune=tune, progress=progress, blocks=blocks, head=head, val=val)
    log, clock = _Logger(settings.progress), _Stopwatch()
    with clock("data"):
        data = load_data(settings, log)
    with clock("train"):
        models = get_models(settings, data, log)
    settings = settings.with_models(models)
    specs, skipped = [], {}
    for spec in settings.detectors:
        reason = skip_reason(spec, models.nets)
        if reason is None:
            specs.append(spec)
        else:
            skipped[spec.name] = reason
            log(f"skipping {spec.name}: {reason}")
    if not specs:
        raise BenchmarkError("No detector asked for can run on this model: " + "; ".join(
            f"{name}: {reason}" for name, reason in skipped.items()) + ".")
    with clock("extract"):
        features = extract_all(models.nets, data.image_sets,
                               progress=settings.progress and sys.stderr.isatty(), log=log)
    inputs = Inputs(models.nets, features, data.labels, settings.eval_sets, settings.seed)
    info = {"timings": clock.timings, "n_images": data.n_images, "validation": data.validation,
            **accuracies(inputs, log), "n_classes": data.n_classes,
            "nc1": {kind: float(neural_collapse(features[kind]["fit"]["h"], data.y_fit)["nc1"])
                    for kind in models.nets},
            "tuned": {}, "pseudo": {}, "skipped": skipped}
    info["near_chance"] = near_chance(info)
    if info["near_chance"]:
        log(f"warning: {info['near_chance']}")
    with clock("detectors"):
        evaluations, info["failed"] = evaluate_all(specs, inputs, log)
    info["notes"] = [*data.notes, *models.notes,
                     *(e.note for e in evaluations if e.note is not None)]
    if settings.tune:
        with clock("tuning"):
            evaluations, tuning = add_tuned_rows(evaluations, inputs, log)
        info["failed"].update(tuning.pop("failed"))
        info.update(tuning)
    with clock("decisions"):
        info["thresholds"], info["accepted"], failed = decide(evaluations, inputs)
    info["failed"].update(failed)
    return BenchmarkResult(
        rows=group_rows([row for e in evaluations for row in e.rows()], settings.ood_groups),
        scores={e.name: e.scores for e in evaluations},
        ood_sets=list(settings.ood_sets), config=settings.config(), info=info)


class _Logger:
    """Prints a message with the elapsed time to stderr (when enabled)."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.start = time.perf_counter()

    def __call__(self, message):
        if self.enabled:
            print(f"[{time.perf_counter() - self.start:6.1f}s] {message}", file=sys.stderr,
                  flush=True)


class _Stopwatch:
    """Seconds per stage, in the order the stages ran: ``with clock("data"): ...``."""

    def __init__(self):
        self.timings = {}

    @contextlib.contextmanager
    def __call__(self, stage):
        start = time.perf_counter()
        yield
        self.timings[stage] = time.perf_counter() - start
