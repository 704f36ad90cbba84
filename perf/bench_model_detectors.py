"""Cost of the detectors that run the model, as a ratio to one forward pass.

For each detector, the per-image time of ``score_samples`` on random
CIFAR-sized images (3 x 32 x 32) divided by the per-image time of one plain
forward pass of the same model (``with torch.inference_mode(): model(batch)``
over the same batches, model in eval mode). The model is
``sklearn_ood.models.resnet18(width=16)``; MC dropout needs a dropout layer,
so the model's ``penultimate`` (an identity) is replaced by ``nn.Dropout(0.5)``
in front of ``fc`` for every mode (identity in eval mode: the plain pass costs
the same).

Runs are interleaved (the order of the modes is rotated every repetition)
after a warm-up; the ratio is that of the medians over the repetitions, of
the wall-clock time and of the process CPU time (both threads), the latter
being the robust one on a machine shared with other jobs.

Usage::

    python perf/bench_model_detectors.py [--n 256] [--batch-size 128] [--repeats 5]
        [--threads 2] [--width 16] [--only NAME ...]
"""

import argparse
import platform
import statistics

import numpy as np
import torch
from torch import nn

from _timing import time_rotated
from sklearn_ood.model_detectors import ODIN, AdaSCALE, InputPreprocessedMahalanobis, MCDropout
from sklearn_ood.models import resnet18

CIFAR_STD = (0.2470, 0.2435, 0.2616)
STAGES = ["relu", "layer1", "layer2", "layer3", "layer4"]


def plain_loop(model, X, batch_size):
    with torch.inference_mode():
        for start in range(0, len(X), batch_size):
            model(X[start : start + batch_size])


def detectors(model, batch_size):
    common = {"batch_size": batch_size}
    return {
        "ODIN (T=1000, eps=0.0014)": ODIN(model, input_std=CIFAR_STD, **common),
        "ODIN (eps=0: no gradient)": ODIN(model, magnitude=0.0, **common),
        "Mahalanobis+pre, penultimate": InputPreprocessedMahalanobis(
            model, "flatten", input_std=CIFAR_STD, **common),
        "Mahalanobis+pre, 5 blocks": InputPreprocessedMahalanobis(
            model, STAGES, input_std=CIFAR_STD, **common),
        "AdaSCALE-A": AdaSCALE(model, variant="A", random_state=0, **common),
        "AdaSCALE-L": AdaSCALE(model, variant="L", random_state=0, **common),
        "MCDropout (30 passes)": MCDropout(model, n_passes=30, random_state=0, **common),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--only", nargs="*", help="substrings of the detector names to run")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = resnet18(num_classes=10, width=args.width)
    model.penultimate = nn.Dropout(0.5)
    model.eval()
    X = torch.rand(args.n, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    X_np = X.numpy()
    y = np.arange(args.n) % 10

    dets = detectors(model, args.batch_size)
    if args.only:
        dets = {k: v for k, v in dets.items() if any(s in k for s in args.only)}
    for det in dets.values():  # fit on a small subset: only the scoring is timed
        det.fit(X_np[:64], y[:64] if isinstance(det, InputPreprocessedMahalanobis) else None)

    modes = {"forward pass": lambda: plain_loop(model, X, args.batch_size)}
    modes.update({name: (lambda det=det: det.score_samples(X_np)) for name, det in dets.items()})
    plain_loop(model, X[: args.batch_size], args.batch_size)  # warm-up
    for det in dets.values():
        det.score_samples(X_np[: args.batch_size])

    wall, cpu = time_rotated(modes, args.repeats)

    print(f"# torch {torch.__version__}, {platform.machine()}, threads={torch.get_num_threads()}, "
          f"N={args.n}, batch={args.batch_size}, ResNet-18 width={args.width}, "
          f"repeats={args.repeats}")
    w0, c0 = statistics.median(wall["forward pass"]), statistics.median(cpu["forward pass"])
    print("| mode | ms/image (wall median) | ratio (wall) | ratio (CPU time) | wall runs (s) |")
    print("|---|---|---|---|---|")
    for name in modes:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"| {name} | {1000 * w / args.n:.2f} | {w / w0:.2f} | {c / c0:.2f} | "
              + " ".join(f"{t:.2f}" for t in wall[name]) + " |")


if __name__ == "__main__":
    main()
