"""Fit and score cost of every feature-space detector vs the ResNet-18 forward pass.

Features: ``N`` x ``D`` (default 50,000 x 512) random non-negative
"post-ReLU" features -- ``relu(class mean + low-rank + noise)`` with balanced
random labels, about 40 % exact zeros, float32 as the extractor returns them
-- and a random head ``W`` ``(K, D)`` (class means / sqrt(D) + noise),
``b`` ``(K,)``. NAP receives the ``[max | mean]`` layout of width ``2D``.

Every detector is fitted on the N rows and scores the same N rows; times
are wall-clock, one run each (``--repeats`` to take a median). The forward
pass of ResNet-18 (width 64, 32x32x3) is timed on a few batches of 128 and
extrapolated linearly to N images (stated in the output).

``--memory`` instead measures the ``tracemalloc`` peak of fit + score of each
detector (NumPy/SciPy allocations, which are what these detectors use) on a
smaller N, and compares it with ``K*K*D*8`` and ``N*N*8`` bytes (what a
``K x K x D`` or ``N x N`` float64 temporary would cost).

``--knn`` compares, for the KNN k-th neighbour search (k=50, bank = N
normalised rows, ``--knn-queries`` queries): ``kth_neighbor_sqdist`` (what
``KNN`` uses: scikit-learn ``NearestNeighbors(algorithm="brute")``) vs chunked
matrix products with ``np.partition`` (the earlier implementation) and, when
importable, faiss-cpu's exact ``IndexFlatL2``.

Usage::

    python perf/bench_detectors.py [--n 50000] [--d 512] [--k 10 100] [--only KNN]
    python perf/bench_detectors.py --forward
    python perf/bench_detectors.py --memory [--n 5000] [--k 100]
    python perf/bench_detectors.py --knn [--n 50000] [--knn-queries 10000]

faiss is the optional ``faiss`` extra (``pip install "sklearn-ood[faiss]"``);
``perf/bench_knn_backends.py`` compares KNN's search algorithms on 1M rows.
"""

import argparse
import statistics
import time
import tracemalloc

import numpy as np

MIB = 2**20


def make_data(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    rank = 32
    y = rng.integers(0, k, size=n)  # balanced classes
    means = rng.standard_normal((k, d), dtype=np.float32)
    Z = rng.standard_normal((n, rank), dtype=np.float32)
    A = rng.standard_normal((rank, d), dtype=np.float32) / np.sqrt(rank)
    H = 0.5 * (Z @ A) + means[y] + 0.5 * rng.standard_normal((n, d), dtype=np.float32)
    np.maximum(H, 0, out=H)  # post-ReLU: ~40 % exact zeros
    H = H.astype(np.float32)  # the extractor's dtype (the / np.sqrt(rank) above gave float64)
    W = means.astype(np.float64) / np.sqrt(d) + 0.05 * rng.standard_normal((k, d))
    b = 0.1 * rng.standard_normal(k)
    return H, W, b, y


def detectors(W, b):
    from sklearn_ood import (ASH, DICE, KNN, NAP, Energy, FeatureNorm, GaussianDensity,
                             LINe, Mahalanobis, MaxLogit, MaxSoftmax, NegativeAwareNorm,
                             ReAct, ViM)

    head = (W, b)
    # (name, estimator, needs labels, input kind)
    return [
        ("MaxSoftmax", MaxSoftmax(head), False, "h"),
        ("MaxLogit", MaxLogit(head), False, "h"),
        ("Energy", Energy(head), False, "h"),
        ("ReAct", ReAct(head), False, "h"),
        ("DICE", DICE(head), False, "h"),
        ("ASH", ASH(head), False, "h"),
        ("LINe", LINe(head), True, "h"),
        ("Mahalanobis", Mahalanobis(), True, "h"),
        ("KNN(k=50)", KNN(n_neighbors=50), False, "h"),
        ("ViM", ViM(head), False, "h"),
        ("GaussianDensity", GaussianDensity(), True, "h"),
        ("FeatureNorm", FeatureNorm(), False, "h"),
        ("NegativeAwareNorm", NegativeAwareNorm(), False, "h"),
        ("NAP (2D=max|avg)", NAP(), False, "maxavg"),
        ("NAP-E", NAP(head, weight=0.4), False, "maxavg"),
    ]


def forward_time(n, batches=3, batch_size=128, threads=2):
    import torch

    from sklearn_ood.models import resnet18

    torch.set_num_threads(threads)
    net = resnet18(num_classes=10).eval()
    x = torch.rand(batch_size, 3, 32, 32)
    with torch.inference_mode():
        net(x)  # warm-up
        ts = []
        for _ in range(batches):
            t0 = time.perf_counter()
            net(x)
            ts.append(time.perf_counter() - t0)
    per_image = statistics.median(ts) / batch_size
    return per_image, per_image * n


def run_timing(args):
    per_image, total = forward_time(args.n, threads=args.threads)
    print(f"# ResNet-18 (width 64, 32x32) forward: {per_image * 1e3:.2f} ms/image (median "
          f"of 3 batches of 128 after warm-up), extrapolated to N={args.n}: {total:.0f} s; "
          f"5 % budget = {0.05 * total:.1f} s")
    for k in args.k:
        H, W, b, y = make_data(args.n, args.d, k)
        maxavg = np.hstack([H * 1.7, H])  # a plausible [max | mean] layout
        print(f"\n## N={args.n} D={args.d} K={k}  ({(H > 0).mean():.0%} non-zero)")
        print(f"{'detector':20s} {'fit s':>8s} {'score s':>8s} {'score/fwd':>10s}")
        for name, det, needs_y, kind in detectors(W, b):
            if args.only and not any(o.lower() in name.lower() for o in args.only):
                continue
            X = maxavg if kind == "maxavg" else H
            fits, scores = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                det.fit(X, y if needs_y else None)
                t1 = time.perf_counter()
                s = det.score_samples(X)
                t2 = time.perf_counter()
                fits.append(t1 - t0)
                scores.append(t2 - t1)
            assert not np.isnan(s).any(), name
            sc = statistics.median(scores)
            print(f"{name:20s} {statistics.median(fits):8.2f} {sc:8.2f} "
                  f"{sc / total:9.2%}", flush=True)


def run_memory(args):
    for k in args.k:
        H, W, b, y = make_data(args.n, args.d, k)
        maxavg = np.hstack([H * 1.7, H])
        kkd = k * k * args.d * 8 / MIB
        nn = args.n * args.n * 8 / MIB
        nd = args.n * args.d * 8 / MIB
        print(f"\n## tracemalloc peak of fit+score, N={args.n} D={args.d} K={k}: "
              f"N*D*8 = {nd:.1f} MiB, K*K*D*8 = {kkd:.1f} MiB, N*N*8 = {nn:.1f} MiB")
        for name, det, needs_y, kind in detectors(W, b):
            if args.only and not any(o.lower() in name.lower() for o in args.only):
                continue
            X = maxavg if kind == "maxavg" else H
            tracemalloc.start()
            det.fit(X, y if needs_y else None)
            det.score_samples(X)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            peak /= MIB
            flag = ""
            if peak >= nn:
                flag = "  <-- >= N*N*8"
            elif peak >= kkd and kkd > 4 * nd:
                flag = "  <-- >= K*K*D*8"
            print(f"{name:20s} peak {peak:8.1f} MiB = {peak / nd:5.1f} x N*D*8{flag}",
                  flush=True)


def _matmul_partition(X, bank, k, chunk_size):
    """k-th smallest squared distance by chunked matrix products and np.partition."""
    bank_sq = np.einsum("ij,ij->i", bank, bank)
    out = np.empty(X.shape[0])
    for start in range(0, X.shape[0], chunk_size):
        chunk = X[start:start + chunk_size]
        d = bank_sq[None, :] - 2.0 * (chunk @ bank.T)
        d += np.einsum("ij,ij->i", chunk, chunk)[:, None]
        out[start:start + len(chunk)] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return np.maximum(out, 0.0)


def run_knn(args):
    from sklearn_ood.detectors._features import l2_normalize
    from sklearn_ood.detectors.knn import kth_neighbor_sqdist

    H, _, _, _ = make_data(args.n, args.d, 10)
    bank = l2_normalize(H)
    Q = l2_normalize(make_data(args.knn_queries, args.d, 10, seed=1)[0])
    k = 50
    chunk = int(min(1024, max(1, 2**25 // bank.shape[0])))
    t0 = time.perf_counter()
    ours = kth_neighbor_sqdist(Q, bank, k)
    t1 = time.perf_counter()
    matmul = _matmul_partition(Q, bank, k, chunk)
    t2 = time.perf_counter()
    print(f"KNN k={k}, bank {bank.shape} float32, {len(Q)} queries:")
    print(f"  kth_neighbor_sqdist (NearestNeighbors brute): {t1 - t0:.2f} s")
    print(f"  matmul + np.partition, chunk={chunk}:        {t2 - t1:.2f} s  "
          f"(max |diff| {np.abs(matmul - ours).max():.2e})")
    try:  # the optional faiss extra
        import faiss
    except ImportError:
        print("  faiss not importable: skipped")
        return
    t0 = time.perf_counter()
    index = faiss.IndexFlatL2(bank.shape[1])
    index.add(np.ascontiguousarray(bank, dtype=np.float32))
    fd, _ = index.search(np.ascontiguousarray(Q, dtype=np.float32), k)
    t1 = time.perf_counter()
    print(f"  faiss {faiss.__version__} IndexFlatL2 (exact):   {t1 - t0:.2f} s  "
          f"(max |diff| {np.abs(fd[:, -1] - ours).max():.2e})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--k", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--forward", action="store_true", help="only time the forward pass")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--knn", action="store_true")
    parser.add_argument("--knn-queries", type=int, default=10000)
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="time only detectors whose name contains one of these")
    args = parser.parse_args(argv)
    if args.forward:
        per_image, total = forward_time(args.n, threads=args.threads)
        print(f"{per_image * 1e3:.2f} ms/image; N={args.n}: {total:.0f} s (extrapolated)")
    elif args.memory:
        run_memory(args)
    elif args.knn:
        run_knn(args)
    else:
        run_timing(args)


if __name__ == "__main__":
    main()
