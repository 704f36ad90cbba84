"""Mahalanobis ``partial_fit`` over chunks of a float32 memmap: peak RSS and time against N.

Issue "ImageNet-size data on one machine", ``partial_fit``: is the peak memory of
fitting chunk by chunk flat in N, and the time linear?

1. ``--write`` writes the features, seeded, by chunks of 16,384 rows into a
   float32 ``(N_max, D)`` file (default ``/tmp/partial_fit_features.f32``,
   1,000,000 x 512 = 1.9 GiB) and their labels beside it (``.labels.npy``):
   ``relu(mu[y] + noise)`` with a random class mean ``mu`` (K = 10 classes,
   entries N(0, 0.25)) and standard-normal noise, as in ``bench_fit_scaling.py``.
2. For each N (``--n``, default 100,000 and 1,000,000) a fresh subprocess sets
   one BLAS/OpenMP thread, loads the labels, resets the kernel's RSS
   high-water mark (``echo 5 > /proc/self/clear_refs``) and reads ``VmRSS``
   (``baseline``), then calls ``Mahalanobis().partial_fit`` on the first N rows,
   ``--chunk`` rows at a time (default 65,536), each chunk a fresh read-only
   ``np.memmap`` of just those rows, dropped after the call (as a loader
   would hand them over), and reads ``VmHWM`` (``peak``). Wall time
   (``time.perf_counter``) and CPU time (``time.process_time``) of the loop
   are printed with the load average before and after.

``--vim-alpha N`` prints how far ViM's ``alpha_``, whose two means are taken
over the offset sample (at most 10,000 rows), is from the same ratio over all
N rows of the file (a random head, as in ``bench_fit_scaling.py``).

Usage::

    python perf/bench_partial_fit.py --write [--path /tmp/partial_fit_features.f32]
    python perf/bench_partial_fit.py [--n 100000 1000000] [--chunk 65536]
    python perf/bench_partial_fit.py --vim-alpha 100000
"""

import argparse
import json
import os
import subprocess
import sys
import time

from _memory import status_kib

MIB = 2**20
D, K, GEN_CHUNK = 512, 10, 16384


def write(path, n_max, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    mu = (0.5 * rng.standard_normal((K, D))).astype(np.float32)
    y = np.arange(n_max, dtype=np.int64) % K
    rng.shuffle(y)
    X = np.memmap(path, dtype=np.float32, mode="w+", shape=(n_max, D))
    for s in range(0, n_max, GEN_CHUNK):
        block = rng.standard_normal((min(GEN_CHUNK, n_max - s), D), dtype=np.float32)
        block += mu[y[s : s + GEN_CHUNK]]
        X[s : s + GEN_CHUNK] = np.maximum(block, 0.0)
    X.flush()
    del X
    np.save(path + ".labels.npy", y)


def child(path, n, chunk):
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    import numpy as np

    from sklearn_ood import Mahalanobis

    y = np.load(path + ".labels.npy")[:n]
    det = Mahalanobis()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    baseline = status_kib("VmRSS") * 1024
    load_before = os.getloadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        X = np.memmap(path, dtype=np.float32, mode="r", offset=start * D * 4, shape=(rows, D))
        det.partial_fit(X, y[start : start + rows])
        del X
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = status_kib("VmHWM") * 1024
    assert det.n_samples_seen_ == n and np.isfinite(det.offset_)
    print(json.dumps({
        "n": n, "d": D, "chunk": chunk, "calls": -(-n // chunk), "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1), "baseline_mib": round(baseline / MIB),
        "peak_mib": round(peak / MIB), "extra_mib": round((peak - baseline) / MIB),
        "input_mib": round(n * D * 4 / MIB), "load_before": load_before,
        "load_after": os.getloadavg(),
    }))


def vim_alpha(path, n):
    import numpy as np

    from sklearn_ood import ViM
    from sklearn_ood.detectors.vim import virtual_logit

    X = np.array(np.memmap(path, dtype=np.float32, mode="r", shape=(n, D)))
    rng = np.random.default_rng(0)
    head = (rng.standard_normal((K, D)) / np.sqrt(D), 0.1 * rng.standard_normal(K))
    det = ViM(head).fit(X)
    H = X.astype(np.float64)
    max_logit = (H @ det.coef_.T + det.intercept_).max(axis=1).mean()
    exact = max_logit / virtual_logit(H, det.origin_, det.null_space_).mean()
    print(f"N={n} D={D}: alpha_ (offset sample) = {det.alpha_:.6f}, over all rows = "
          f"{exact:.6f}, relative difference = {abs(det.alpha_ / exact - 1):.2e}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", default="/tmp/partial_fit_features.f32")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--chunk", type=int, default=65_536)
    parser.add_argument("--child", type=int)
    parser.add_argument("--vim-alpha", type=int)
    args = parser.parse_args()
    if args.vim_alpha:
        vim_alpha(args.path, args.vim_alpha)
    elif args.write:
        write(args.path, max(args.n))
    elif args.child:
        child(args.path, args.child, args.chunk)
    else:
        for n in args.n:
            subprocess.run([sys.executable, __file__, "--path", args.path, "--chunk",
                            str(args.chunk), "--child", str(n)], check=True)


if __name__ == "__main__":
    main()
