"""BLAS threads on a shared machine: one class-conditional fit with 1 vs 2 BLAS threads.

The benchmark's tuning stage is many small BLAS calls (128 x 128 Cholesky
factorisations and covariance products per class and per EM step). With
OpenBLAS's threads on cores that other jobs hold, each call waits for its
threads; ``sklearn-ood benchmark --threads N`` therefore limits BLAS and OpenMP
to ``N`` threads (default 1), as it does torch.

Usage::

    PYTHONPATH=. python perf/bench_blas_threads.py --repeats 3
"""

import argparse
import os

import numpy as np
import scipy.linalg  # noqa: F401  (loads SciPy's BLAS before the limits are set)
from threadpoolctl import threadpool_limits

from sklearn_ood import GaussianDensity, GaussianMixture
from _timing import time_rotated


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-per-class", type=int, default=1900)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(args.classes), args.n_per_class)
    X = (rng.normal(size=(len(y), args.dim)) + y[:, None]).astype(np.float32)

    def fit(detector, threads):
        def run():
            with threadpool_limits(threads):
                detector.fit(X, y)
        return run

    modes = {}
    for threads in (1, 2):
        modes[f"GaussianMixture(n_components=2), {threads} BLAS thread(s)"] = fit(
            GaussianMixture(n_components=2, random_state=0), threads)
        modes[f"GaussianDensity, {threads} BLAS thread(s)"] = fit(GaussianDensity(), threads)
    load_before = os.getloadavg()
    wall, cpu = time_rotated(modes, args.repeats)
    print(f"X: {X.shape}, {args.classes} classes; load average before "
          f"{load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} (2 cores)")
    print("| fit | wall median (s) | CPU median (s) | wall runs (s) |")
    print("|---|---:|---:|---|")
    for name in modes:
        print(f"| {name} | {np.median(wall[name]):.2f} | {np.median(cpu[name]):.2f} | "
              + " ".join(f"{w:.2f}" for w in wall[name]) + " |")


if __name__ == "__main__":
    main()
