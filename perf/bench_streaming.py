"""Streaming extraction: throughput from a DataLoader, peak memory vs N from a Dataset.

**Throughput** (default). One ``DataLoader`` (random CIFAR-shaped float32
images and integer labels in a ``TensorDataset``, ``--batch-size``,
``--workers``) is read by three modes, with the same ResNet-18
(``sklearn_ood.models.resnet18``, ``--width``) in eval mode:

* ``plain``: ``for x, _ in loader: model(x)`` under ``torch.inference_mode``,
  the bare cost of reading the loader and running the forward pass;
* ``transform``: ``BlockFeatureExtractor(model, "penultimate").transform(loader)``;
* ``with_labels``: the same extractor's ``transform_with_labels(loader)``.

After a warm-up pass of each mode, ``--repeats`` rounds run the three modes,
rotating their order every round, with one ``torch.set_num_threads`` value
for all. Reported: the median wall time per mode and the ratio
``throughput(mode) / throughput(plain) = t_plain / t_mode`` (target >= 0.95),
from the medians; the median of the per-round ratios and the ratio of the
fastest runs (robust to other jobs slowing some runs down); the ratio of the
medians of process CPU time.

**Memory** (``--memory``). Each measurement runs in a fresh subprocess, so the
high-water mark ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (peak RSS)
belongs to it alone; RSS, not tracemalloc, because torch allocates tensors
outside Python's allocator, where tracemalloc does not see them. The child
builds the model (``--memory-width``), runs a warm-up forward pass on 8
images, reads ``ru_maxrss`` (``baseline``), extracts ``"penultimate"`` features
of N images, and reads ``ru_maxrss`` again (``peak``). Modes:

* ``dataset``: ``transform`` of a map-style ``Dataset`` whose item ``i`` is a
  random image drawn from seed ``i`` when it is read (the input takes no
  memory of its own), ``batch_size=128``;
* ``stacked`` (control): the same items stacked into one ``(N, 3, 32, 32)``
  array first, then ``transform`` of the array: what the extractor needed
  before it accepted a ``Dataset``.

``delta = peak - baseline``; ``features`` is the size of the returned
``(N, d)`` float32 array, which has to grow with N.

Usage::

    python perf/bench_streaming.py [--n 1024] [--batch-size 128] [--repeats 7]
        [--threads 1] [--width 64] [--workers 0]
    python perf/bench_streaming.py --memory [--memory-n 2000 8000 32000]
        [--memory-width 16]
"""

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch.utils.data import Dataset

from _timing import time_rotated

MIB = 2**20


def plain_loop(model, loader):
    with torch.inference_mode():
        for x, _ in loader:
            model(x)


def throughput(args):
    from torch.utils.data import DataLoader, TensorDataset

    from sklearn_ood import BlockFeatureExtractor
    from sklearn_ood.models import resnet18

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = resnet18(num_classes=10, width=args.width).eval()
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(args.n, 3, 32, 32, generator=g),
                         torch.randint(0, 10, (args.n,), generator=g))
    loader = DataLoader(data, batch_size=args.batch_size, num_workers=args.workers,
                        persistent_workers=args.workers > 0)
    ext = BlockFeatureExtractor(model, "penultimate").fit(loader)
    modes = {
        "plain": lambda: plain_loop(model, loader),
        "transform": lambda: ext.transform(loader),
        "with_labels": lambda: ext.transform_with_labels(loader),
    }
    for run in modes.values():  # warm-up: allocator, thread pool, oneDNN kernels
        run()

    wall, cpu = time_rotated(modes, args.repeats)

    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"threads={torch.get_num_threads()}, N={args.n}, batch={args.batch_size}, "
          f"width={args.width}, workers={args.workers}, repeats={args.repeats}")
    t_plain, c_plain = statistics.median(wall["plain"]), statistics.median(cpu["plain"])
    for name in modes:
        med, cmed = statistics.median(wall[name]), statistics.median(cpu[name])
        per_round = statistics.median(p / t for p, t in zip(wall["plain"], wall[name]))
        print(f"{name:12s} wall median {med:7.3f} s ({args.n / med:6.1f} img/s) "
              f"ratio {t_plain / med:5.3f} (median of per-round ratios {per_round:5.3f}, "
              f"of minima {min(wall['plain']) / min(wall[name]):5.3f}) | "
              f"CPU median {cmed:7.3f} s ratio {c_plain / cmed:5.3f} | wall runs: "
              + " ".join(f"{t:.2f}" for t in wall[name]))


class RandomImages(Dataset):
    """Item ``i``: a random 3x32x32 image from seed ``i`` and label ``i % 10``."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return torch.rand(3, 32, 32, generator=g), i % 10


def memory_child(mode, n, width, threads):
    import numpy as np

    from sklearn_ood import BlockFeatureExtractor
    from sklearn_ood.models import resnet18

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = resnet18(num_classes=10, width=width).eval()
    data = RandomImages(n)
    with torch.inference_mode():
        model(torch.stack([data[i][0] for i in range(8)]))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    ext = BlockFeatureExtractor(model, "penultimate", batch_size=128)
    if mode == "dataset":
        features = ext.fit_transform(data)
    elif mode == "stacked":
        X = np.stack([data[i][0].numpy() for i in range(n)])
        features = ext.fit_transform(X)
    else:
        raise ValueError(mode)
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert features.shape[0] == n and np.isfinite(features).all()
    print(json.dumps({
        "mode": mode, "n": n, "baseline_mib": baseline / MIB, "peak_mib": peak / MIB,
        "delta_mib": (peak - baseline) / MIB, "features_mib": features.nbytes / MIB,
        "images_mib": n * 3 * 32 * 32 * 4 / MIB, "seconds": elapsed,
    }))


def memory(args):
    print(f"# torch {torch.__version__}, threads={args.threads}, width={args.memory_width}, "
          f"batch=128; peak RSS per fresh subprocess (MiB)")
    print(f"{'mode':8s} {'N':>6s} {'baseline':>9s} {'peak':>9s} {'delta':>8s} "
          f"{'features':>9s} {'all images':>11s} {'time s':>7s}")
    for mode in ("dataset", "stacked"):
        for n in args.memory_n:
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(n),
                 "--memory-width", str(args.memory_width), "--threads", str(args.threads)],
                capture_output=True, text=True, check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{mode:8s} {n:6d} {r['baseline_mib']:9.1f} {r['peak_mib']:9.1f} "
                  f"{r['delta_mib']:8.1f} {r['features_mib']:9.1f} {r['images_mib']:11.1f} "
                  f"{r['seconds']:7.1f}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--memory-n", type=int, nargs="+", default=[2000, 8000, 32000])
    parser.add_argument("--memory-width", type=int, default=16)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "N"))
    args = parser.parse_args(argv)
    if args.child:
        memory_child(args.child[0], int(args.child[1]), args.memory_width, args.threads)
    elif args.memory:
        memory(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
