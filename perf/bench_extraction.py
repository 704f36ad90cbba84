"""Throughput of BlockFeatureExtractor.transform vs a plain inference loop.

Compares, on the same random CIFAR-shaped images and the same batches:

* ``plain``: ``with torch.inference_mode(): model(batch)`` for every batch
  (model in eval mode), i.e. the bare cost of the forward pass;
* ``penultimate``: ``BlockFeatureExtractor(model, "penultimate").transform``;
* ``stages``: ``BlockFeatureExtractor(model, ["layer1", ..., "layer4"]).transform``
  (all four stages at once, reduce="avg").

Runs are interleaved (the order of the three modes is rotated every
repetition) after a warm-up, with one ``torch.set_num_threads`` value for all.
Reports the median wall time per mode and the ratio
``throughput(extractor) / throughput(plain) = t_plain / t_extractor``.

Usage::

    python perf/bench_extraction.py [--n 2048] [--batch-size 128]
        [--repeats 5] [--threads 2] [--width 64] [--profile]

``--profile`` additionally runs cProfile over one ``stages`` transform and
prints the top functions by cumulative and by internal time.
"""

import argparse
import cProfile
import io
import platform
import pstats
import statistics
import time

import torch

from sklearn_ood import BlockFeatureExtractor
from sklearn_ood.models import resnet18

STAGES = ["layer1", "layer2", "layer3", "layer4"]


def plain_loop(model, X, batch_size):
    outs = []
    with torch.inference_mode():
        for start in range(0, len(X), batch_size):
            outs.append(model(X[start : start + batch_size]))
    return outs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = resnet18(num_classes=10, width=args.width).eval()
    X = torch.rand(args.n, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    X_np = X.numpy()  # what a scikit-learn user passes (shares memory with X)

    ext_pen = BlockFeatureExtractor(model, "penultimate", batch_size=args.batch_size).fit(X_np)
    ext_all = BlockFeatureExtractor(model, STAGES, batch_size=args.batch_size).fit(X_np)

    modes = {
        "plain": lambda: plain_loop(model, X, args.batch_size),
        "penultimate": lambda: ext_pen.transform(X_np),
        "stages": lambda: ext_all.transform(X_np),
    }
    # Warm-up: one batch-sized pass of each mode (allocator, thread pool, oneDNN).
    warm = X_np[: 2 * args.batch_size]
    plain_loop(model, X[: 2 * args.batch_size], args.batch_size)
    ext_pen.transform(warm)
    ext_all.transform(warm)

    times = {name: [] for name in modes}
    cpu = {name: [] for name in modes}
    order = list(modes)
    for rep in range(args.repeats):
        k = rep % len(order)
        for name in order[k:] + order[:k]:  # rotate the order every repetition
            t0, c0 = time.perf_counter(), time.process_time()
            modes[name]()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)

    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"threads={torch.get_num_threads()}, N={args.n}, batch={args.batch_size}, "
          f"width={args.width}, repeats={args.repeats}")
    t_plain = statistics.median(times["plain"])
    c_plain = statistics.median(cpu["plain"])
    m_plain = min(times["plain"])
    for name, ts in times.items():
        med = statistics.median(ts)
        cmed = statistics.median(cpu[name])
        print(f"{name:12s} wall median {med:7.3f} s ({args.n / med:6.1f} img/s) "
              f"ratio {t_plain / med:5.3f} | wall min ratio {m_plain / min(ts):5.3f} | "
              f"CPU median {cmed:7.3f} s ratio {c_plain / cmed:5.3f} | wall runs: "
              + " ".join(f"{t:.2f}" for t in ts))

    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        ext_all.transform(X_np)
        prof.disable()
        for key in ("cumulative", "tottime"):
            s = io.StringIO()
            pstats.Stats(prof, stream=s).sort_stats(key).print_stats(18)
            print(s.getvalue())
    return times


if __name__ == "__main__":
    main()
