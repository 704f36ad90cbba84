"""Calibrating statistics fitted on the fit rows, on a held-out share of them, or on unseen images.

Not speed: what the rows a detector's calibrating statistics are fitted on
(``DetectorTags.calibrated``: MaxSoftmax's temperature, KLMatching's
templates, MultiBlockMahalanobis's score standardisation, Gram's normaliser)
do to its ranking. On a benchmark preset's features (its models, fit,
validation, ID test and OOD sets, as ``sklearn-ood benchmark`` makes them),
each detector of the registry that declares calibrating statistics (with
``temperature="fit"`` for MaxSoftmax, ``combiner="mean"`` for
MultiBlockMahalanobis, as the benchmark rows) is fitted on the fit set three
ways:

- ``fit rows``: ``calibration_size=None``, the calibrating statistics on the
  fit rows themselves (the images the network was trained on);
- ``split``: ``calibration_size=0.1`` (``random_state`` the run's seed), held
  out of the detector's modelling statistics, but trained on by the network;
- ``validation``: ``X_cal`` (and ``y_cal``) the validation images, which
  neither the network nor the modelling statistics saw (what the benchmark
  does).

Printed and written to ``<out>.json`` (with the command, date and versions)
and ``<out>.csv`` (the table of the docs' calibration section): the mean AUROC
and FPR95 (%) over the OOD sets and the fitted calibrating statistic (its
first 4 values). For MaxSoftmax also the AUROC of the log-odds of its score,
``log(MSP / (1 - MSP)) = -logsumexp_{k != max}((z_k - z_max) / T)``: an
increasing function of the MSP, the same ranking in exact arithmetic, but at
small ``T`` the MSP itself is exactly 1 in float64 for most rows, which then
tie.

Usage::

    python perf/bench_calibration.py [--id digits] [--data-dir DATA]
        [--weights WEIGHTS] [--save-weights WEIGHTS] [--out perf/calibration_digits]
"""

import argparse
import csv
import datetime
import json
import platform
import sys
import warnings

import numpy as np
import sklearn
import torch
from scipy.special import logsumexp

from sklearn_ood.benchmark.data import load_data
from sklearn_ood.benchmark.evaluate import Inputs, build_detector
from sklearn_ood.benchmark.features import extract_all
from sklearn_ood.benchmark.models import get_models
from sklearn_ood.benchmark.result import metric_rows
from sklearn_ood.benchmark.settings import resolve_settings
from sklearn_ood.benchmark.specs import DETECTORS

#: The calibrating statistic to print, per detector class.
SHOWN = {"MaxSoftmax": "temperature_", "KLMatching": "templates_",
         "MultiBlockMahalanobis": "score_scale_", "Gram": "normalizers_"}


def msp_log_odds(logits, temperature):
    """``-logsumexp_{k != argmax}((z_k - z_max) / T)``, the MSP's log-odds: its ranking,
    without saturation."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    top = z.argmax(axis=1)
    z = z - z[np.arange(len(z)), top][:, None]
    z[np.arange(len(z)), top] = -np.inf
    return -logsumexp(z, axis=1)


def average(scores):
    rows = metric_rows("x", scores, 0.0, 0.0)
    return {m: round(100 * rows[-1][m], 2) for m in ("auroc", "fpr95")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--id", default="digits")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--save-weights", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    settings = resolve_settings(args.id, data_dir=args.data_dir, weights=args.weights,
                                save_weights_to=args.save_weights, tune=False)
    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    data = load_data(settings, log)
    models = get_models(settings, data, log)
    sets = {name: data.image_sets[name]
            for name in ("fit", "validation", *settings.eval_sets)}
    features = extract_all(models.nets, sets, progress=False, log=log)
    inputs = Inputs(models.nets, features, data.labels, settings.eval_sets, settings.seed)
    results = []
    for spec in DETECTORS:
        if not spec.calibrate or spec.features == "images":
            continue
        for way in ("fit rows", "split", "validation"):
            detector = build_detector(spec, inputs)
            if spec.name.startswith("MaxSoftmax") and detector.temperature != "fit":
                break  # the fixed-T row has nothing to calibrate
            detector.set_params(calibration_size=0.1 if way == "split" else None)
            X = inputs.of(spec, "fit")
            y = inputs.labels["fit"] if spec.labels else None
            kwargs = {}
            if way == "validation":
                kwargs["X_cal"] = inputs.of(spec, "validation")
                if spec.labels:
                    kwargs["y_cal"] = inputs.labels["validation"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                detector.fit(X, y, **kwargs)
                scores = {s: detector.score_samples(inputs.of(spec, s))
                          for s in inputs.eval_sets}
            row = {"detector": spec.name, "calibrated on": way, **average(scores)}
            name = SHOWN[type(detector).__name__]
            shown = np.asarray(getattr(detector, name)).ravel()
            row["statistic"] = (f"``{name}{'[:4]' if shown.size > 4 else ''}`` = "
                                + np.array2string(shown[:4], precision=4))
            if type(detector).__name__ == "MaxSoftmax":
                log_odds = {s: msp_log_odds(detector._logits(inputs.of(spec, s)),
                                            detector.temperature_) for s in inputs.eval_sets}
                row["log-odds"] = average(log_odds)
            results.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        words = argv if argv is not None else sys.argv[1:]
        record = {"command": "python perf/bench_calibration.py " + " ".join(
            "PATH" if "/" in a and not a.startswith("perf/") else a for a in words),
            "date": datetime.date.today().isoformat(),
            "versions": {"python": platform.python_version(), "numpy": np.__version__,
                         "scikit-learn": sklearn.__version__, "torch": torch.__version__},
            "n_images": data.n_images, "results": results}
        with open(args.out + ".json", "w") as f:
            json.dump(record, f, indent=1)
        with open(args.out + ".csv", "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["detector", "calibrated on", "AUROC", "FPR95", "statistic",
                          "AUROC (MSP log-odds)"])
            for r in results:
                out.writerow([r["detector"], r["calibrated on"], r["auroc"], r["fpr95"],
                              r["statistic"], r.get("log-odds", {}).get("auroc", "")])


if __name__ == "__main__":
    main()
