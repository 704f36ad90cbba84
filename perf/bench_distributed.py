"""Scoring throughput on a Dask cluster vs in process (images per second).

A fitted ``Pipeline(BlockFeatureExtractor(resnet18(width=16), "flatten"),
detector)`` scores ``--n`` random CIFAR-sized images (3 x 32 x 32, float32),
held as a dask array chunked along the first axis (``--chunk`` images per
block), in these modes:

* ``in-process, T torch threads``: ``pipeline.score_samples(X)`` on the NumPy
  array, ``torch.set_num_threads(T)`` for T = 1 and the usable cores;
* ``W workers x 1 thread, T torch``: :func:`sklearn_ood.distributed.score_dask`
  on a ``LocalCluster(n_workers=W, threads_per_worker=1, processes=True)``,
  for (W, T) = (1, 1), (1, auto = cores) and (2, auto = cores // 2).

On the cluster the images are first persisted in the workers' memory (as a
dataset loaded from storage would be), so the timed run covers: scattering
the fitted pipeline to the workers, scoring every block, and gathering the
scores. Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``,
which turns off glibc's adaptive mmap threshold: every large torch tensor is
then mmap-ed and page-faulted afresh, and the forward pass costs 1.8x to 2.6x the
CPU time; ``--mmap-threshold`` (default 32 MiB) sets ``MALLOC_MMAP_THRESHOLD_`` in
the workers' environment to undo that (``0``: dask's default environment).
Each cluster gets one untimed warm-up run (the workers import torch
and sklearn_ood); then ``--repeats`` timed runs, median reported. Every run's
scores are compared with the in-process scores (maximum absolute difference).

Usage::

    python perf/bench_distributed.py [--n 2048] [--chunk 256] [--repeats 3]
        [--width 16] [--detector energy|knn] [--mmap-threshold BYTES]
"""

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch
from sklearn.pipeline import Pipeline

from sklearn_ood import KNN, BlockFeatureExtractor, Energy
from sklearn_ood.distributed import _usable_cores, score_dask
from sklearn_ood.models import resnet18


def fitted_pipeline(width, detector, seed=0):
    torch.manual_seed(seed)
    net = resnet18(num_classes=10, width=width).eval()
    train = np.random.default_rng(seed).random((512, 3, 32, 32), dtype=np.float32)
    det = Energy(head=net.fc) if detector == "energy" else KNN(n_neighbors=10)
    return Pipeline([("extractor", BlockFeatureExtractor(net, "flatten", batch_size=128)),
                     ("detector", det)]).fit(train)


def timed(run, repeats):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--detector", choices=["energy", "knn"], default="energy")
    parser.add_argument("--mmap-threshold", type=int, default=32 * 2**20,
                        help="MALLOC_MMAP_THRESHOLD_ of the worker processes (0: dask's "
                             "default environment, where torch runs ~2x slower)")
    args = parser.parse_args(argv)

    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    cores = _usable_cores()
    print(f"{platform.machine()}, {cores} usable cores, torch {torch.__version__}, "
          f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"ResNet-18 width {args.width} + {args.detector}, N={args.n} images 3x32x32, "
          f"blocks of {args.chunk}, median of {args.repeats} runs, workers' "
          f"MALLOC_MMAP_THRESHOLD_={args.mmap_threshold or 'unset'}")

    pipe = fitted_pipeline(args.width, args.detector)
    images = np.random.default_rng(1).random((args.n, 3, 32, 32), dtype=np.float32)
    rows = []

    threads = torch.get_num_threads()
    reference = None
    for t in sorted({1, cores}):
        torch.set_num_threads(t)
        pipe.score_samples(images[: args.chunk])  # warm-up
        median, times, scores = timed(lambda: pipe.score_samples(images), args.repeats)
        reference = scores if reference is None else reference
        rows.append((f"in-process, {t} torch thread(s)", median, times,
                     float(np.max(np.abs(scores - reference)))))
    torch.set_num_threads(threads)

    for workers, torch_threads in [(1, 1), (1, "auto"), (2, "auto")]:
        environ = ({"distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_":
                    args.mmap_threshold} if args.mmap_threshold else {})
        with dask.config.set(environ), \
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                             dashboard_address=None, silence_logs=40) as cluster, \
                Client(cluster) as client:
            client.wait_for_workers(workers)
            seen = set(client.run(lambda: os.environ.get("MALLOC_MMAP_THRESHOLD_")).values())
            print(f"{workers} worker(s): MALLOC_MMAP_THRESHOLD_ in the workers: {seen}")
            X = client.persist(da.from_array(images, chunks=(args.chunk, 3, 32, 32)))
            client.wait_for_workers(workers)

            def run():
                return score_dask(pipe, X, client=client, torch_threads=torch_threads,
                                  compute=True)

            run()  # warm-up: workers import torch and sklearn_ood
            median, times, scores = timed(run, args.repeats)
            n_torch = torch_threads if torch_threads != "auto" else max(1, cores // workers)
            rows.append((f"{workers} worker(s) x 1 thread, {n_torch} torch thread(s)", median,
                         times, float(np.max(np.abs(scores - reference)))))

    print(f"\n{'mode':<42} {'median s':>9} {'images/s':>9}  runs (s)  max |diff|")
    for name, median, times, diff in rows:
        print(f"{name:<42} {median:9.2f} {args.n / median:9.0f}  "
              f"{' '.join(f'{t:.2f}' for t in times)}  {diff:.1e}")
    by_name = {name: args.n / median for name, median, _, _ in rows}
    one = by_name["1 worker(s) x 1 thread, 1 torch thread(s)"]
    two = by_name[f"2 worker(s) x 1 thread, {max(1, cores // 2)} torch thread(s)"]
    print(f"\n2 workers / 1 worker (1 torch thread each): {two / one:.2f}x")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
