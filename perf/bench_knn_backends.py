"""KNN search back-ends on a large bank: build and search time, CPU time, peak RSS, recall.

Data (``make_data``): ``n_clusters`` Gaussian clusters in ``d`` dimensions,
row = ``center + noise``, center ``N(0, I / d)``, then L2-normalised, float32.
The noise has total variance 1 like the center (squared distances are about
1 inside a cluster and 2 across clusters), spread over the coordinates with
variances proportional to ``1 / i`` (``--noise decaying``, the default: a
decaying spectrum, as deep features have) or equally (``--noise isotropic``,
the hardest case for an approximate index: all neighbours in a cluster
nearly equidistant). The bank and the queries (same clusters,
another seed) are written once to ``--cache`` as ``.npy`` files.

``--features PATH.npz`` uses real deep features instead: the penultimate
features (the input of ``fc``) of the trained CIFAR-10 ResNet-18 in
``--model`` (``MODELS/cifar10_resnet18_w16_plain.pt``), the bank from
``cifar10_train20k_jpeg.npz`` and the queries from ``cifar10_test_jpeg.npz``
(ID) and ``tin_val_32.npz`` (near-OOD) in ``--data-dir``, extracted once with
``BlockFeatureExtractor`` and cached in ``PATH.npz`` (later runs read the
file). Rows are L2-normalised as ``KNN`` does; recall and k-th error are
also reported per query set (``by_set``), with the AUROC of KNN's score
(minus the k-th squared distance) for CIFAR-10 test (ID) against Tiny
ImageNet (OOD) under each back-end (``auroc``).

Each back-end runs in its own subprocess with ``--threads`` threads (OpenMP,
BLAS, ``faiss.omp_set_num_threads``, scikit-learn's threadpool), one after
the other: first the exact ones (``brute`` = scikit-learn's
``NearestNeighbors(algorithm="brute")``, as ``KNN`` searches by default;
``faiss-flat`` = ``faiss.knn``), the first of which gives the reference
neighbours, then
the approximate ones, each index built once and searched with every knob
value. Recall@k = mean over queries of |approx k nearest & exact k nearest| / k;
the k-th distance error is ``(approx - exact) / exact`` of the k-th squared
distance (what the KNN score uses; >= 0 up to rounding).

``--fit`` times ``KNN(algorithm=...).fit(bank)`` instead (validation,
normalisation, index, leave-one-out scores of 10,000 bank rows).

Usage::

    PYTHONPATH=. python perf/bench_knn_backends.py --n 100000 --threads 1
    PYTHONPATH=. python perf/bench_knn_backends.py --n 1000000 --threads 2 \
        --backends faiss-flat faiss-ivf --n-probe 1 4 16
    PYTHONPATH=. python perf/bench_knn_backends.py --n 1000000 --threads 2 --fit brute
    PYTHONPATH=. python perf/bench_knn_backends.py --features FEATURES.npz \
        --model MODELS/cifar10_resnet18_w16_plain.pt --data-dir DATA --threads 1
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

K = 50  # KNN's default n_neighbors


def make_data(n, d, n_clusters, seed, noise="decaying", chunk=100_000):
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((n_clusters, d), dtype=np.float32) / np.sqrt(d)
    scale = 1 / np.arange(1, d + 1) if noise == "decaying" else np.ones(d)
    scale = np.sqrt(scale / scale.sum()).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        m = rows.stop - rows.start
        block = centers[rng.integers(n_clusters, size=m)]
        block += rng.standard_normal((m, d), dtype=np.float32) * scale
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[rows] = block
    return out


QUERY_SETS = {"cifar10_test": "cifar10_test_jpeg.npz", "tin_val": "tin_val_32.npz"}


def extract_features(args):
    """Penultimate features of the bank and query images, cached in ``args.features``."""
    import torch

    from sklearn_ood.datasets import load_npz
    from sklearn_ood.extraction import BlockFeatureExtractor
    from sklearn_ood.models import ResNet

    torch.set_num_threads(args.threads[0])
    model = ResNet(10, in_channels=3, width=16)
    model.load_state_dict(torch.load(args.model, weights_only=True))
    model.eval()
    extractor = BlockFeatureExtractor(model, "penultimate", reduce="flatten", batch_size=256)
    data = Path(args.data_dir)
    images = {"bank": "cifar10_train20k_jpeg.npz", **QUERY_SETS}
    t = clocks()
    features = {}
    for name, file in images.items():
        X = load_npz(data / file)[0]
        features[name] = extractor.fit(X[:1]).transform(X).astype(np.float32)
    wall, cpu = since(t)
    print(f"extracted {({k: v.shape for k, v in features.items()})} in {cpu} s CPU "
          f"({wall} s wall)", flush=True)
    np.savez(args.features, model=str(args.model), **features)


def feature_paths(args):
    """Bank, queries (every query set, in order) and query-set names as .npy in the cache."""
    from sklearn_ood.detectors._features import l2_normalize

    features = Path(args.features)
    if not features.exists():
        extract_features(args)
    cache = Path(args.cache)
    paths = [cache / f"{features.stem}_{name}.npy" for name in ("bank", "queries", "sets")]
    if not all(p.exists() for p in paths):
        z = np.load(features)
        np.save(paths[0], l2_normalize(z["bank"]).astype(np.float32))
        np.save(paths[1], np.concatenate([l2_normalize(z[s]) for s in QUERY_SETS]
                                         ).astype(np.float32))
        np.save(paths[2], np.concatenate([[s] * len(z[s]) for s in QUERY_SETS]))
    return paths


def data_paths(args):
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    if args.features:
        return feature_paths(args)[:2]
    tag = f"{args.d}d_{args.clusters}c_{args.noise}"
    bank, queries = cache / f"bank_{args.n}_{tag}.npy", cache / f"queries_{args.queries}_{tag}.npy"
    if not bank.exists():
        np.save(bank, make_data(args.n, args.d, args.clusters, seed=1, noise=args.noise))
    if not queries.exists():
        np.save(queries, make_data(args.queries, args.d, args.clusters, seed=2,
                                   noise=args.noise))
    return bank, queries


def clocks():
    return time.perf_counter(), time.process_time()


def since(t):
    wall, cpu = clocks()
    return round(wall - t[0], 2), round(cpu - t[1], 2)


def peak_rss_mib():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def worker(args):
    """One back-end in this process; prints one JSON line per searched setting."""
    import faiss
    from threadpoolctl import threadpool_limits

    from sklearn_ood.detectors._neighbors import _search, build_index

    faiss.omp_set_num_threads(args.threads)
    threadpool_limits(args.threads)
    bank_path, query_path = data_paths(args)
    bank, queries = np.load(bank_path), np.load(query_path)
    base = {"backend": args.worker, "n": len(bank), "threads": args.threads,
            "rss_data_mib": peak_rss_mib()}
    if args.fit:
        from sklearn_ood import KNN
        t = clocks()
        KNN(algorithm=args.worker, random_state=0).fit(bank)
        wall, cpu = since(t)
        print(json.dumps({**base, "fit_wall": wall, "fit_cpu": cpu,
                          "peak_rss_mib": peak_rss_mib()}), flush=True)
        return
    t = clocks()
    index = build_index(bank, args.worker, seed=0)
    build_wall, build_cpu = since(t)
    exact_path = Path(args.cache) / f"exact_{bank_path.stem}_{query_path.stem}.npz"
    knobs = {"faiss-ivf": [("n_probe", p) for p in args.n_probe],
             "faiss-hnsw": [("ef_search", e) for e in args.ef_search]
             }.get(args.worker, [(None, None)])
    for knob, value in knobs:
        if knob == "n_probe":
            index.nprobe = value
        elif knob == "ef_search":
            index.hnsw.efSearch = value
        t = clocks()
        sqdist, neighbors = _search(queries, bank, K, args.worker, index)
        search_wall, search_cpu = since(t)
        row = {**base, "knob": knob, "value": value, "build_wall": build_wall,
               "build_cpu": build_cpu, "search_wall": search_wall, "search_cpu": search_cpu,
               "peak_rss_mib": peak_rss_mib()}
        if knob == "n_probe":  # 1 for equal lists; the expected scan cost grows with it
            row["ivf_imbalance"] = round(index.invlists.imbalance_factor(), 2)
        if exact_path.exists():
            ref = np.load(exact_path)
            hits = np.array([len(np.intersect1d(a, b))
                             for a, b in zip(neighbors, ref["neighbors"])])
            rel = (sqdist[:, -1] - ref["kth"]) / ref["kth"]
            row.update(recall=round(float(np.mean(hits)) / K, 4),
                       kth_rel_err_mean=float(f"{rel.mean():.2e}"),
                       kth_rel_err_max=float(f"{rel.max():.2e}"))
            if args.features:
                sets = np.load(feature_paths(args)[2])
                row["by_set"] = {name: {
                    "recall": round(float(np.mean(hits[sets == name])) / K, 4),
                    "kth_rel_err_mean": float(f"{rel[sets == name].mean():.2e}"),
                    "kth_rel_err_max": float(f"{rel[sets == name].max():.2e}")}
                    for name in QUERY_SETS}
        elif args.worker in ("brute", "faiss-flat"):  # the first exact one is the reference
            np.savez(exact_path, neighbors=neighbors, kth=sqdist[:, -1])
        if args.features:  # KNN's ID-vs-OOD AUROC (score -kth, CIFAR-10 test positive)
            from sklearn.metrics import roc_auc_score

            sets = np.load(feature_paths(args)[2])
            row["auroc"] = round(roc_auc_score(sets == "cifar10_test", -sqdist[:, -1]), 5)
        print(json.dumps(row), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--noise", choices=["decaying", "isotropic"], default="decaying")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backends", nargs="+",
                        default=["brute", "faiss-flat", "faiss-ivf", "faiss-hnsw"])
    parser.add_argument("--n-probe", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--ef-search", type=int, nargs="+", default=[16, 64, 128, 256])
    parser.add_argument("--fit", nargs="+", default=None,
                        help="time KNN(algorithm=...).fit on the bank instead")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "knn_bench"))
    parser.add_argument("--features", metavar="PATH.npz",
                        help="real features (extracted once into this file) instead of --n/--d")
    parser.add_argument("--model", metavar="MODELS/cifar10_resnet18_w16_plain.pt",
                        help="the trained model's state dict (with --features, to extract)")
    parser.add_argument("--data-dir", metavar="DATA",
                        help="the folder of the .npz sets (with --features, to extract)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.features and not Path(args.features).exists() and not (args.model and args.data_dir):
        parser.error(f"--features {args.features} does not exist yet: give --model and "
                     "--data-dir to extract it")
    if args.worker:
        args.threads = args.threads[0]
        return worker(args)
    data_paths(args)  # generate once, outside the timed workers
    print(f"load average before: {os.getloadavg()}", flush=True)
    for threads in args.threads:
        env = {**os.environ, **{v: str(threads) for v in (
            "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
        for backend in args.fit or args.backends:
            cmd = [sys.executable, __file__, "--worker", backend, "--n", str(args.n),
                   "--d", str(args.d), "--clusters", str(args.clusters),
                   "--queries", str(args.queries), "--noise", args.noise,
                   "--threads", str(threads), "--n-probe", *map(str, args.n_probe),
                   "--ef-search", *map(str, args.ef_search),
                   "--cache", args.cache] + (["--fit", backend] if args.fit else [])
            if args.features:  # extracted above: the workers read the file
                cmd += ["--features", args.features]
            subprocess.run(cmd, env=env, check=True)
            print(f"load average: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
