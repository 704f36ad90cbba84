"""Share of held-out CIFAR-10 ID test images accepted: the training threshold vs the conformal one.

Fits the 25 feature detectors of the benchmark's CIFAR-10 rows (default
parameters, the benchmark's default rows; labels for the detectors that use
them) on the penultimate features of the plain ResNet-18 (width 16) of
``cifar10_train20k_jpeg.npz``, and measures the share of the 10,000 CIFAR-10
test images (``cifar10_test_jpeg.npz``, never seen by the network) that
``predict`` accepts at ``contamination = alpha = 0.05``:

- ``plain``: the detector's own ``offset_`` (5th percentile of its training
  scores), on all 10,000 test images;
- ``conformal``: ``ConformalDetector(FrozenEstimator(detector))`` calibrated
  on 1,000 test images (100 per class, seeded), on the other 9,000;
  ``--draws`` further seeded calibration draws give the spread over draws
  (computed from the same scores by ``sklearn_ood.conformal.acceptance_shares``),
  and ``delta=0.1`` the calibration-conditional threshold;
- ``cross (train)`` and ``split (train)``: ``ConformalDetector(method="cross",
  cv=5)`` and ``method="split"`` (20 %) on the training features, on all
  10,000 test images: held-out *for the detector*, but the network was
  trained on those images.

Writes ``<out>.json`` (everything, with the command, date and versions) and
``<out>.csv`` (the table of the docs' conformal page). The penultimate
features are cached in ``--cache`` (computed once, single thread).

Usage::

    python perf/bench_conformal_coverage.py --data-dir DATA --models-dir MODELS
        [--out perf/conformal_coverage] [--cache FEATURES.npz]
        [--calibration-size 1000] [--draws 200] [--only NAME ...]
"""

import argparse
import csv
import datetime
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch
from scipy.stats import beta
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from threadpoolctl import threadpool_limits

from sklearn_ood import (
    ASH, DICE, FDBD, GEN, KNN, NCI, NECO, SCALE, SHE, VRA, BlockFeatureExtractor,
    ConformalDetector, Energy, Entropy, GaussianDensity, GaussianMixture, GradNorm, LINe,
    Mahalanobis, MaxLogit, MaxSoftmax, NNGuide, OpenMax, ReAct, RelativeMahalanobis, ViM,
)
from sklearn_ood.conformal import acceptance_shares, calibration_split
from sklearn_ood.datasets import load_npz
from sklearn_ood.models import ResNet

ALPHA, DELTA = 0.05, 0.1

#: name -> (make(head), fit with labels): the benchmark's CIFAR-10 rows on the fc input
#: ("h", plain model, fitted on the training rows), with their default parameters.
DETECTORS = {
    "MaxSoftmax": (MaxSoftmax, False),
    "MaxLogit": (MaxLogit, False),
    "Energy": (Energy, False),
    "Entropy": (Entropy, False),
    "GEN": (GEN, False),
    "ReAct": (ReAct, False),
    "DICE": (DICE, False),
    "ASH": (ASH, False),
    "SCALE": (SCALE, False),
    "VRA": (VRA, False),
    "LINe": (LINe, True),
    "ViM": (ViM, False),
    "Mahalanobis": (lambda head: Mahalanobis(), True),
    "KNN": (lambda head: KNN(n_neighbors=50), False),
    "GaussianDensity": (lambda head: GaussianDensity(), True),
    "Mahalanobis (normalize, Mahalanobis++)": (lambda head: Mahalanobis(normalize=True), True),
    "RelativeMahalanobis": (lambda head: RelativeMahalanobis(), True),
    "GaussianMixture": (lambda head: GaussianMixture(), True),
    "SHE": (SHE, True),
    "NNGuide": (NNGuide, False),
    "FDBD": (FDBD, False),
    "NCI": (NCI, False),
    "NECO": (lambda head: NECO(), False),
    "GradNorm": (GradNorm, False),
    "OpenMax": (OpenMax, True),
}


def load_model(models_dir):
    model = ResNet(10, in_channels=3, width=16)
    state = torch.load(Path(models_dir) / "cifar10_resnet18_w16_plain.pt", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def penultimate_features(model, data_dir, cache):
    """``(H_train, y_train, H_test, y_test)``, read from ``cache`` or extracted and saved."""
    if cache.exists():
        with np.load(cache) as f:
            return f["h_train"], f["y_train"], f["h_test"], f["y_test"]
    extractor = BlockFeatureExtractor(model, "penultimate", batch_size=256)
    out = {}
    for name, file in [("train", "cifar10_train20k_jpeg.npz"), ("test", "cifar10_test_jpeg.npz")]:
        X, y = load_npz(Path(data_dir) / file)
        start = time.perf_counter()
        out[f"h_{name}"] = extractor.fit(X[:1]).transform(X).astype(np.float32)
        out[f"y_{name}"] = y
        print(f"  extracted {name}: {X.shape[0]} images in {time.perf_counter() - start:.0f} s",
              flush=True)
    np.savez(cache, **out)
    return out["h_train"], out["y_train"], out["h_test"], out["y_test"]


def accepted(detector, X):
    return float(np.mean(detector.predict(X) == 1))


def calibration_rows_needed(alpha=ALPHA, tolerance=0.01, confidence=0.95, n_detectors=25):
    """Smallest n for which the accepted share on new data is within ``tolerance`` of
    ``1 - alpha`` with probability ``confidence`` per detector, and for all
    ``n_detectors`` at once (Bonferroni): the rejected share given the calibration
    rows is ``U_(k) ~ Beta(k, n + 1 - k)``, ``k = floor(alpha (n + 1))``."""
    def within(n):
        k = int(np.floor(alpha * (n + 1)))
        law = beta(k, n + 1 - k)
        return law.cdf(alpha + tolerance) - law.cdf(alpha - tolerance)

    result = {}
    for key, target in [("one detector", confidence),
                        (f"all {n_detectors} detectors", 1 - (1 - confidence) / n_detectors)]:
        n = 100
        while within(n) < target:
            n += 100
        result[key] = n
    result["P(within) at n=1000, one detector"] = round(float(within(1000)), 4)
    return result


def measure(name, make, uses_labels, head, data, calibration_size, draws):
    H_train, y_train, H_test, y_test = data
    y_fit = y_train if uses_labels else None
    start = time.perf_counter()
    detector = make(head).fit(H_train, y_fit)
    scores = detector.score_samples(H_test)
    row = {"detector": name, "plain": float(np.mean(scores >= detector.offset_))}

    calib, rest = calibration_split(y_test, calibration_size, random_state=0)
    conformal = ConformalDetector(FrozenEstimator(detector), alpha=ALPHA).fit(H_test[calib])
    row["conformal"] = accepted(conformal, H_test[rest])
    by_draw = [acceptance_shares({"ID test": scores}, detector.offset_, alpha=ALPHA,
                                 calibration_size=calibration_size, y=y_test, random_state=seed)
               for seed in range(draws)]
    assert by_draw[0].conformal["ID test"] == row["conformal"]  # the same threshold
    shares = np.array([r.conformal["ID test"] for r in by_draw])
    conditional = np.array([
        acceptance_shares({"ID test": scores}, detector.offset_, alpha=ALPHA, delta=DELTA,
                          calibration_size=calibration_size, y=y_test,
                          random_state=seed).conformal["ID test"] for seed in range(draws)])
    row.update({
        "conformal mean": float(shares.mean()), "conformal sd": float(shares.std(ddof=1)),
        "conformal min": float(shares.min()), "conformal max": float(shares.max()),
        "draws within 1 point": float(np.mean(np.abs(shares - (1 - ALPHA)) <= 0.01)),
        f"conditional (delta={DELTA}) mean": float(conditional.mean()),
        f"conditional (delta={DELTA}) min": float(conditional.min()),
        f"conditional (delta={DELTA}) draws >= 95 %": float(np.mean(conditional >= 1 - ALPHA)),
    })
    for method, params in [("cross (train)", {"method": "cross", "cv": 5}),
                           ("split (train)", {"method": "split", "calibration_size": 0.2})]:
        wrapped = ConformalDetector(clone(detector), alpha=ALPHA, random_state=0, **params)
        row[method] = accepted(wrapped.fit(H_train, y_fit), H_test)
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--models-dir", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=Path("perf/conformal_coverage"))
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "sklearn_ood_cifar10_penultimate.npz")
    parser.add_argument("--calibration-size", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--only", nargs="*", help="detector names to run (default: all 25)")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    started = time.perf_counter()
    rows = []
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        model = load_model(args.models_dir)
        data = penultimate_features(model, args.data_dir, args.cache)
        for name, (make, uses_labels) in DETECTORS.items():
            if args.only and name not in args.only:
                continue
            rows.append(measure(name, make, uses_labels, model.fc, data, args.calibration_size,
                                args.draws))
            print("  " + "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in rows[-1].items()), flush=True)

    result = {
        "command": "python perf/bench_conformal_coverage.py " + " ".join(
            _public(argv or sys.argv[1:])),
        "date": datetime.date.today().isoformat(),
        "seconds": round(time.perf_counter() - started),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "numpy": np.__version__, "scikit-learn": sklearn.__version__},
        "alpha": ALPHA, "delta": DELTA, "calibration_size": args.calibration_size,
        "draws": args.draws, "n_train": len(data[1]), "n_test": len(data[3]),
        "binomial sd of the accepted share over draws":
            float(np.sqrt(ALPHA * (1 - ALPHA) / args.calibration_size)),
        "calibration rows for every share within 1 point (95 %)": calibration_rows_needed(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    n, draws = args.calibration_size, args.draws
    columns = {  # JSON key -> CSV header (the docs table)
        "detector": "detector",
        "plain": "training threshold",
        "split (train)": "split on training rows",
        "cross (train)": "cross on training rows",
        "conformal": f"conformal, {n:,} test rows (seed 0)",
        "conformal mean": f"mean over {draws} draws",
        "conformal sd": "sd over draws",
        "draws within 1 point": "draws within 1 point",
        f"conditional (delta={DELTA}) mean": f"delta={DELTA}: mean",
        f"conditional (delta={DELTA}) draws >= 95 %": f"delta={DELTA}: draws >= 95 %",
    }
    with open(args.out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns.values())
        for row in rows:
            writer.writerow([row["detector"]] + [f"{100 * row[c]:.2f}" for c in list(columns)[1:]])
    print(f"wrote {args.out.with_suffix('.json')} and .csv in {result['seconds']} s")


def _public(argv):
    """The arguments as the result file records them: data and model folders as placeholders."""
    names = {"--data-dir": "DATA", "--models-dir": "MODELS"}
    return [names[argv[i - 1]] if i and argv[i - 1] in names else a for i, a in enumerate(argv)]


if __name__ == "__main__":
    main()
