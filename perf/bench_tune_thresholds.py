"""``tune_on_pseudo_ood`` with and without the candidates' thresholds, in one process.

The library's scorers read ``score_samples`` only, so ``tune_on_pseudo_ood``
fits its candidates without their thresholds (``sklearn_ood._base.scores_only``)
and fits the winner once more for its threshold. The plain search, every
candidate with its threshold, is what a scorer of one's own gets: here the same
FPR95 through a wrapper that is not one of the library's scorers. Both searches
run on the same synthetic float32 features (``--n`` ID rows of ``--d``
post-ReLU-like features of 10 classes, as many pseudo-OOD rows drawn nearer the
origin, ``cv=3``), in one loop whose order is rotated every round
(``perf/_timing.py``); the script checks that both give the same
``cv_results_`` scores, ``best_params_`` and ``offset_`` of the winner, and
prints median wall and CPU seconds.

Usage::

    python perf/bench_tune_thresholds.py              # 6,000 x 128, 3 rounds
    python perf/bench_tune_thresholds.py --threads 1 --repeats 5
"""

import argparse
import os
import statistics
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=6000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

    import warnings

    import numpy as np
    import torch

    import sklearn_ood as so
    from _timing import time_rotated
    from sklearn_ood.metrics import fpr95_scorer
    from sklearn_ood.tuning import tune_on_pseudo_ood

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    k = 10
    mu = rng.normal(size=(k, args.d))
    X = np.maximum(rng.normal(size=(args.n, args.d)) + mu[rng.integers(0, k, args.n)], 0)
    X_pseudo = np.maximum(rng.normal(size=(args.n, args.d))
                          + 0.5 * mu[rng.integers(0, k, args.n)], 0)
    X, X_pseudo = X.astype(np.float32), X_pseudo.astype(np.float32)
    y = rng.integers(0, k, args.n)
    head = ((mu / np.sqrt(args.d)).astype(np.float32), np.zeros(k, np.float32))
    searches = {
        "KNN": (so.KNN(), {"n_neighbors": [1, 5, 10, 20, 50]}),
        "NNGuide": (so.NNGuide(head, random_state=0),
                    {"n_neighbors": [1, 10, 50], "bank_fraction": [0.1, 1.0]}),
        "ReAct": (so.ReAct(head=head), {"percentile": [80, 90, 95, 99]}),
        "Mahalanobis": (so.Mahalanobis(), {"normalize": [False, True]}),
    }

    def own_fpr95(estimator, X, y):  # not one of the library's scorers
        return fpr95_scorer(estimator, X, y)

    print(f"{args.n} x {args.d} float32 ID rows and as many pseudo-OOD rows, cv=3, "
          f"{args.threads} thread(s), {args.repeats} rounds; load average "
          f"{os.getloadavg()[0]:.2f}")
    for name, (detector, grid) in searches.items():
        results = {}

        def run(mode, scoring):
            def call():
                results[mode] = tune_on_pseudo_ood(None, detector, grid, X, y,
                                                   X_pseudo=X_pseudo, scoring=scoring,
                                                   random_state=0)
            return call

        wall, cpu = time_rotated({"without thresholds": run("fast", "fpr95"),
                                  "plain": run("plain", own_fpr95)}, args.repeats)
        fast, plain = results["fast"], results["plain"]
        same = (fast.best_params_ == plain.best_params_
                and fast.best_estimator_.offset_ == plain.best_estimator_.offset_
                and all(np.array_equal(fast.cv_results_[key], plain.cv_results_[key])
                        for key in fast.cv_results_
                        if key.startswith(("mean_test", "split", "rank_test"))))
        median = {mode: statistics.median(wall[mode]) for mode in wall}
        line = ", ".join(f"{mode} {median[mode]:.2f} s "
                         f"(CPU {statistics.median(cpu[mode]):.2f} s)" for mode in wall)
        print(f"{name:<12} {len(fast.cv_results_['params'])} candidates: {line}; "
              f"ratio {median['without thresholds'] / median['plain']:.2f}; "
              f"{'same results' if same else 'RESULTS DIFFER'}", flush=True)
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
