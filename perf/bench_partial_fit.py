"""``partial_fit`` over chunks of a float32 memmap: peak RSS and time against N, and one ``fit``.

Issue "ImageNet-size data on one machine", ``partial_fit``: is the peak memory of
fitting chunk by chunk flat in N, and the time linear?

1. ``--write`` writes the features, seeded, by chunks of 16,384 rows into a
   float32 ``(N_max, D)`` file (default ``partial_fit_features.f32`` in the temporary folder,
   1,000,000 x 512 = 1.9 GiB) and their labels beside it (``.labels.npy``):
   ``relu(mu[y] + noise)`` with a random class mean ``mu`` (K = 10 classes,
   entries N(0, 0.25)) and standard-normal noise, as in ``bench_fit_scaling.py``.
2. For each N (``--n``, default 100,000 and 1,000,000) a fresh subprocess sets
   one BLAS/OpenMP thread, loads the labels, resets the kernel's RSS
   high-water mark (``echo 5 > /proc/self/clear_refs``) and reads ``VmRSS``
   (``baseline``), then calls ``partial_fit`` of the detector ``--detector``
   (default Mahalanobis; DICE, FDBD, NCI, LINe, KNN with their defaults, the
   head a random ``K x D`` layer as in ``--vim-alpha``) on the first N rows,
   ``--chunk`` rows at a time (default 65,536), each chunk a fresh read-only
   ``np.memmap`` of just those rows, dropped after the call (as a loader
   would hand them over), and reads ``VmHWM`` (``peak``). Wall time
   (``time.perf_counter``) and CPU time (``time.process_time``) of the loop
   are printed with the load average before and after.
3. ``--fit`` adds, for each N, a subprocess that reads the N rows into memory
   (``np.fromfile``, counted in ``baseline``) and calls ``fit`` once: the
   one-call reference of the same run.

``--vim-alpha N`` prints how far ViM's ``alpha_``, whose two means are taken
over the offset sample (at most 10,000 rows), is from the same ratio over all
N rows of the file (a random head, as in ``bench_fit_scaling.py``).

``--line-clip N`` measures what an approximate ``LINe(clip_percentile=q)``
clip would cost, which ``partial_fit`` does not offer: the ``q`` percentile
of the entries of the offset sample (the 10,000 reservoir rows) against the
exact percentile of all ``N x D`` entries, for ``q`` in 90 and 99 (the tuning
grid's values), and the largest differences of the LINe scores of the next
10,000 rows of the file under the two clips.

Usage::

    python perf/bench_partial_fit.py --write [--path FEATURES.f32]
    python perf/bench_partial_fit.py [--n 100000 1000000] [--chunk 65536]
    python perf/bench_partial_fit.py --detector KNN --n 100000 --chunk 16384 --fit
    python perf/bench_partial_fit.py --vim-alpha 100000
    python perf/bench_partial_fit.py --line-clip 990000  # N + 10,000 rows of the file
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
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


def random_head(np):
    rng = np.random.default_rng(0)
    return rng.standard_normal((K, D)) / np.sqrt(D), 0.1 * rng.standard_normal(K)


def make_detector(name):
    import numpy as np

    import sklearn_ood

    cls = getattr(sklearn_ood, name)
    return cls(random_head(np)) if "head" in cls().get_params() else cls()


def child(path, name, n, chunk, one_fit):
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    import numpy as np

    y = np.load(path + ".labels.npy")[:n]
    det = make_detector(name)
    if one_fit:
        X_all = np.fromfile(path, dtype=np.float32, count=n * D).reshape(n, D)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    baseline = status_kib("VmRSS") * 1024
    load_before = os.getloadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    if one_fit:
        det.fit(X_all, y)
    for start in range(0, 0 if one_fit else n, chunk):
        rows = min(chunk, n - start)
        X = np.memmap(path, dtype=np.float32, mode="r", offset=start * D * 4, shape=(rows, D))
        det.partial_fit(X, y[start : start + rows])
        del X
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = status_kib("VmHWM") * 1024
    assert det.n_samples_seen_ == n and np.isfinite(det.offset_)
    print(json.dumps({
        "detector": name, "mode": "fit" if one_fit else "partial_fit", "n": n, "d": D,
        "chunk": None if one_fit else chunk, "calls": 1 if one_fit else -(-n // chunk),
        "offset": det.offset_, "wall_s": round(wall, 1),
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
    det = ViM(random_head(np)).fit(X)
    H = X.astype(np.float64)
    max_logit = (H @ det.coef_.T + det.intercept_).max(axis=1).mean()
    exact = max_logit / virtual_logit(H, det.origin_, det.null_space_).mean()
    print(f"N={n} D={D}: alpha_ (offset sample) = {det.alpha_:.6f}, over all rows = "
          f"{exact:.6f}, relative difference = {abs(det.alpha_ / exact - 1):.2e}")


def line_clip(path, n):
    import numpy as np

    from sklearn_ood import LINe
    from sklearn_ood._base import offset_sample
    from sklearn_ood.detectors._quantiles import percentile_of_all

    X = np.memmap(path, dtype=np.float32, mode="r", shape=(n + 10_000, D))
    reservoir = np.asarray(X[offset_sample(n)])
    test = np.asarray(X[n:])
    head = random_head(np)
    det = LINe(head, clip=None).fit(reservoir)  # predicted labels; the clip is set below
    for q in (90, 99):
        exact = percentile_of_all(X[:n], q)
        approx = percentile_of_all(reservoir, q)
        scores = []
        for clip in (exact, approx):
            det.clip_ = clip
            scores.append(det.score_samples(test))
        diff = np.abs(scores[0] - scores[1])
        print(f"N={n} D={D} q={q}: exact clip {exact:.6f}, reservoir clip {approx:.6f} "
              f"(relative difference {abs(approx / exact - 1):.2e}); scores of 10,000 rows: "
              f"max |difference| {diff.max():.2e}, relative to their spread (sd "
              f"{scores[0].std():.3f}) {diff.max() / scores[0].std():.2e}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--path", default=os.path.join(tempfile.gettempdir(),
                                                         "partial_fit_features.f32"))
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--chunk", type=int, default=65_536)
    parser.add_argument("--detector", default="Mahalanobis",
                        choices=["Mahalanobis", "DICE", "FDBD", "NCI", "LINe", "KNN"])
    parser.add_argument("--fit", action="store_true", help="also one fit per N")
    parser.add_argument("--child", type=int)
    parser.add_argument("--one-fit", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--vim-alpha", type=int)
    parser.add_argument("--line-clip", type=int)
    args = parser.parse_args()
    if args.vim_alpha:
        vim_alpha(args.path, args.vim_alpha)
    elif args.line_clip:
        line_clip(args.path, args.line_clip)
    elif args.write:
        write(args.path, max(args.n))
    elif args.child:
        child(args.path, args.detector, args.child, args.chunk, args.one_fit)
    else:
        for n in args.n:
            for one_fit in [False, True] if args.fit else [False]:
                subprocess.run([sys.executable, __file__, "--path", args.path, "--chunk",
                                str(args.chunk), "--detector", args.detector, "--child",
                                str(n)] + ["--one-fit"] * one_fit, check=True)


if __name__ == "__main__":
    main()
