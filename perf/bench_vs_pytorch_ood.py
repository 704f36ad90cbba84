"""Our detectors against pytorch-ood 0.4.0, on the same features, in one process.

For every detector both libraries have (27 pairs, :func:`pairs`), both are
fitted on the same training arrays (a bank of ``N x D`` float32 post-ReLU-like
features of ``K`` classes, their labels, a ``K x D`` head) and score the same
queries (half drawn like the training rows, half from other class means); the
map detectors (RankFeat, Gram) get ``(n, C, H, W)`` float32 maps instead. For
each pair the script records, as the median of ``--repeats`` rounds (ours and
pytorch-ood's alternate within a round; within a round a call under 0.5 s is
repeated, up to 7 times within 0.5 s, and its median taken):

- ``fit``: our ``fit`` without the threshold (the statistics, input checks
  included) vs pytorch-ood's ``fit_features`` / ``fit_logits`` / ... (``None``
  where pytorch-ood has no fit: the user computes nothing, or by hand);
- ``threshold``: the part of our ``fit`` that sets ``offset_`` (the scores of
  at most 10,000 training rows, leave-one-out for KNN and Gram), which
  pytorch-ood does not compute;
- ``score``: our ``score_samples`` vs pytorch-ood's ``predict_*`` on the
  queries (under ``torch.no_grad()``, except GradNorm, which differentiates);
  ``input_check``: the part of our ``score_samples`` that checks the input
  (dtype, shape, finiteness), which pytorch-ood does not do;
- ``spearman``: Spearman's rank correlation of our scores with minus
  pytorch-ood's (it returns higher = more OOD), on the queries.

Parameters are matched so that both compute the same score (see each pair's
``note``); where the methods differ by design the note says how.

pytorch-ood is installed beside the CPU torch in its own virtualenv, without
its dependencies (its torchvision pin would pull a CUDA torch)::

    python -m venv .venv-anchor && . .venv-anchor/bin/activate
    pip install torch==2.13.0 scikit-learn scipy threadpoolctl
    pip install --no-deps pytorch-ood==0.4.0
    pip install -e .

When ``torchvision`` cannot be imported, the script puts a stub in its place
(pytorch-ood imports a few of its names at module level; none of the
detectors compared here calls them).

Usage::

    python perf/bench_vs_pytorch_ood.py                        # the full table (~15 min)
    python perf/bench_vs_pytorch_ood.py --quick                # 5,000 x 128, one round
    python perf/bench_vs_pytorch_ood.py --only KNN NNGuide --repeats 5

``--threads`` (default 2) sets the BLAS, OpenMP and torch threads before NumPy
and torch are imported. ``--out`` (default ``perf/vs_pytorch_ood.json``) is
the result file the documentation's performance page is generated from
(``docs/_ext/sklearn_ood_pages.py``); ``--quick`` writes nothing unless
``--out`` is given.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def set_threads(threads):
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def stub_torchvision():
    """A stand-in ``torchvision`` for pytorch-ood's module-level imports, if it is missing."""
    try:
        import torchvision  # noqa: F401
        return False
    except Exception:  # absent, or built for another torch
        pass

    class _Any(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            if name[:1].isupper():
                return type(name, (object,), {"__init__": lambda s, *a, **k: None})
            module = _Any(f"{self.__name__}.{name}")
            sys.modules[module.__name__] = module
            return module

        def __call__(self, *args, **kwargs):
            return self

    root = _Any("torchvision")
    sys.modules["torchvision"] = root
    for sub in ("transforms", "datasets", "models", "datasets.utils", "datasets.folder",
                "models.resnet", "transforms.functional", "ops", "utils", "io"):
        sys.modules[f"torchvision.{sub}"] = _Any(f"torchvision.{sub}")
    for sub in ("transforms", "datasets", "models", "ops", "utils", "io"):
        setattr(root, sub, sys.modules[f"torchvision.{sub}"])
    return True


# ------------------------------------------------------------------------ data
def make_data(n_bank, n_query, d, k, maps_shape, n_maps, seed=0):
    """Float32 training features, labels, queries (half ID-like, half OOD-like), a head, maps."""
    import numpy as np

    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((k, d)).astype(np.float32)
    mu_ood = rng.standard_normal((k, d)).astype(np.float32)

    def rows(n, means):
        y = rng.integers(0, k, size=n)
        X = rng.standard_normal((n, d), dtype=np.float32)
        X += 0.8 * means[y]
        np.maximum(X, 0.0, out=X)
        return X, y

    X, y = rows(n_bank, mu)
    q_id, _ = rows(n_query - n_query // 2, mu)
    q_ood, _ = rows(n_query // 2, mu_ood)
    Q = np.concatenate([q_id, q_ood])
    W = (mu / np.sqrt(d)).astype(np.float32)
    b = (0.1 * rng.standard_normal(k)).astype(np.float32)
    c, h, w = maps_shape
    mu_maps = rng.standard_normal((k, c)).astype(np.float32)

    def maps(n, means):
        y = rng.integers(0, k, size=n)
        M = rng.standard_normal((n, c, h, w), dtype=np.float32)
        M += 0.8 * means[y][:, :, None, None]
        np.maximum(M, 0.0, out=M)
        return M, y

    M, y_maps = maps(n_maps, mu_maps)
    m_id, _ = maps(n_maps - n_maps // 2, mu_maps)
    m_ood, _ = maps(n_maps // 2, rng.standard_normal((k, c)).astype(np.float32))
    W_maps = (mu_maps / np.sqrt(c)).astype(np.float32)
    return dict(X=X, y=y, Q=Q, W=W, b=b, M=M, y_maps=y_maps, Q_maps=np.concatenate([m_id, m_ood]),
                W_maps=W_maps)


# ------------------------------------------------------------------------ the pairs
class Pair:
    """One detector of both libraries: how to build, fit and score each.

    ``ours(data)`` returns ``(estimator, X_fit, y_fit, X_query)``;
    ``theirs(data, torch_data)`` returns ``(fit or None, score)``: two
    callables, the fit returning the fitted pytorch-ood detector, the score
    taking it and returning pytorch-ood's (OOD-oriented) scores as a tensor.
    """

    def __init__(self, name, ours, theirs, note=""):
        self.name, self.ours, self.theirs, self.note = name, ours, theirs, note


def _linear(W, b):
    import torch

    layer = torch.nn.Linear(W.shape[1], W.shape[0])
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(W))
        layer.bias.copy_(torch.from_numpy(b))
    return layer


def pairs():
    """The 27 detectors both libraries have, with matched parameters."""
    import numpy as np
    import torch
    import pytorch_ood.detector as pood

    import sklearn_ood as so

    def features(cls, labels=False, **params):
        def ours(data):
            head = (data["W"], data["b"])
            kwargs = dict(params)
            if "head" in kwargs:
                kwargs["head"] = head
            return cls(**kwargs), data["X"], data["y"] if labels else None, data["Q"]
        return ours

    HEAD = "head"  # placeholder: the pair's head is filled in by ``features``

    def logits_pair(name, cls, theirs_cls, fit=None, ours_params=None, theirs_params=None,
                    labels=False, note=""):
        def theirs(data, t):
            det = theirs_cls(t["head"], **(theirs_params or {}))
            fit_fn = None
            if fit == "logits":
                def fit_fn():
                    return det.fit_logits(t["head"](t["X"]), t["y"])
            elif fit == "logits_unlabelled":
                def fit_fn():
                    return det.fit_logits(t["head"](t["X"]))
            return fit_fn, lambda det=det: det.predict(t["Q"])
        return Pair(name, features(cls, labels, head=HEAD, **(ours_params or {})), theirs, note)

    def t_features(factory, fit_args=("X", "y"), fit="fit_features", score="predict_features",
                   query="Q"):
        def theirs(data, t):
            det = factory(data, t)
            fit_fn = None
            if fit is not None:
                def fit_fn():
                    return getattr(det, fit)(*(t[a] for a in fit_args))
            return fit_fn, lambda det=det: getattr(det, score)(t[query])
        return theirs

    def four_d(x):
        return x.reshape(x.shape[0], -1, 1, 1)

    def flat_head(t):
        head = t["head"]
        return lambda x: head(x.flatten(1))

    out = [
        logits_pair("Energy", so.Energy, pood.EnergyBased),
        logits_pair("MaxSoftmax", so.MaxSoftmax, pood.MaxSoftmax),
        logits_pair("MaxLogit", so.MaxLogit, pood.MaxLogit),
        logits_pair("Entropy", so.Entropy, pood.Entropy,
                    note="pytorch-ood clips p to [1e-7, 1]"),
        logits_pair("GEN", so.GEN, pood.GEN, ours_params=dict(gamma=0.1, n_top=100),
                    theirs_params=dict(gamma=0.1, M=None),
                    note="all 10 classes; pytorch-ood takes the mean and clamps p to "
                         "[1e-7, 1 - 1e-7]"),
        logits_pair("TemperatureScaling", so.MaxSoftmax, pood.TemperatureScaling,
                    fit="logits", ours_params=dict(temperature="fit"), labels=True,
                    note="ours: MaxSoftmax(temperature='fit'), T by exact bounded Brent "
                         "search; pytorch-ood: LBFGS(lr=0.01, max_iter=50), another T"),
        logits_pair("KLMatching", so.KLMatching, pood.KLMatching, fit="logits_unlabelled"),
        Pair("ReAct", features(so.ReAct, head=HEAD, percentile=90),
             t_features(lambda d, t: pood.ReAct(None, t["head"], percentile=0.9),
                        fit="fit_feature_maps", score="predict_feature_maps"),
             "clip at the 90th percentile of all training entries"),
        Pair("ASH", features(so.ASH, head=HEAD, variant="s", percentile=90),
             t_features(lambda d, t: pood.ASH(None, flat_head(t), variant="ash-s",
                                              percentile=0.9),
                        fit=None, score="predict_feature_maps", query="Q4"),
             "ASH-S, 90th percentile; pytorch-ood gets the features as (N, D, 1, 1) maps"),
        Pair("SCALE", features(so.SCALE, head=HEAD, percentile=85),
             t_features(lambda d, t: pood.SCALE(None, flat_head(t), percentile=0.85),
                        fit=None, score="predict_feature_maps", query="Q4"),
             "85th percentile; pytorch-ood gets the features as (N, D, 1, 1) maps"),
        Pair("LTS", features(so.LTS, head=HEAD, percentile=95),
             t_features(lambda d, t: pood.LTS(None, t["head"], p=0.05), fit=None),
             "top 5 % of the rectified features"),
        Pair("DICE", features(so.DICE, head=HEAD, percentile=90),
             t_features(lambda d, t: pood.DICE(None, t["W"], t["b"], p=0.9)),
             "90th percentile of the mean contributions"),
        Pair("VRA", features(so.VRA, head=HEAD, low_percentile=0, high_percentile=99),
             t_features(lambda d, t: pood.VRA(None, t["head"], lower_percentile=0.0,
                                              upper_percentile=0.99),
                        fit="fit_feature_maps", score="predict_feature_maps"),
             "per-feature cap at the 99th percentile, floor at the minimum (pytorch-ood "
             "clips below the floor, ours zeroes: the same on post-ReLU features)"),
        Pair("RankFeat", lambda d: (so.RankFeat((d["W_maps"], d["b"])), d["M"], None,
                                    d["Q_maps"]),
             t_features(lambda d, t: pood.RankFeat(
                 None, (lambda head: lambda x: head(x.mean(dim=(2, 3))))(t["head_maps"])),
                 fit=None, score="predict_feature_maps", query="Q_maps"),
             "maps; the head reads the channel means"),
        Pair("Gram", lambda d: (so.Gram(head=(d["W_maps"], d["b"]), max_power=5,
                                        random_state=0), d["M"], d["y_maps"], d["Q_maps"]),
             _gram_theirs,
             "maps, powers 1-5, bounds of the predicted class; pytorch-ood holds out a random "
             "10 % per class for its normaliser, ours 10 % too and weighs by the MSP: "
             "different scores by design"),
        Pair("SHE", features(so.SHE, labels=True, head=HEAD),
             t_features(lambda d, t: pood.SHE(None, t["head"]))),
        Pair("fDBD", features(so.FDBD, head=HEAD, normalizer="distance"),
             t_features(lambda d, t: pood.fDBD(None, t["head"]), fit_args=("X",)),
             "fit: ours sums the training mean in float64 by chunks, and also checks the "
             "input (finiteness) and copies the 10,000 rows of the offset sample; "
             "pytorch-ood takes the float32 mean"),
        Pair("NCI", features(so.NCI, head=HEAD, alpha=1e-4),
             t_features(lambda d, t: pood.NCI(None, t["head"], alpha=1e-4), fit_args=("X",)),
             "fit: as fDBD's, the float64 mean plus the input check and the offset sample; "
             "pytorch-ood takes the float32 mean"),
        Pair("ViM", lambda d: (so.ViM((d["W"], d["b"]), n_components=d["X"].shape[1] // 2),
                               d["X"], None, d["Q"]),
             t_features(lambda d, t: pood.ViM(None, d["X"].shape[1] // 2, t["W"], t["b"])),
             "principal dimension D / 2; ours takes alpha from the 10,000 rows of the offset "
             "sample, pytorch-ood from all training rows"),
        Pair("GradNorm", features(so.GradNorm, head=HEAD),
             _gradnorm_theirs,
             "ours: the closed form; pytorch-ood: per-sample gradients of the head's weight "
             "(torch.func), the same value"),
        Pair("KNN", features(so.KNN, n_neighbors=50),
             t_features(lambda d, t: pood.KNN(None, k=50)),
             "k = 50, normalised features, exact search (pytorch-ood: scikit-learn's "
             "NearestNeighbors)"),
        Pair("NNGuide", features(so.NNGuide, head=HEAD, n_neighbors=10, bank_fraction=1.0),
             t_features(lambda d, t: pood.NNGuide(None, t["head"], k=10)),
             "k = 10, every training row in the bank; the threshold scores 10,000 training "
             "rows against the bank"),
        Pair("Mahalanobis", features(so.Mahalanobis, labels=True),
             t_features(lambda d, t: pood.Mahalanobis(None)),
             "ours: the class means and the shared covariance in float64 (each chunk's rows "
             "centred on their class means, one float64 syrk per chunk), inverted from a "
             "Cholesky factor (pseudo-inverted where singular); pytorch-ood: one float32 "
             "product per class, the undivided scatter plus 1e-6 I inverted. The float64 "
             "scatter costs more than pytorch-ood's float32 one even with half the "
             "multiplications (syrk), and is kept: a float32 scatter puts the distances up to "
             "6e-4 off on features whose covariance has a condition number of 1e5 (the "
             "float32 test allows 1e-5). Our fit also checks the input and copies the "
             "offset sample"),
        Pair("RMD", features(so.RelativeMahalanobis, labels=True),
             t_features(lambda d, t: pood.RMD(None)),
             "ours: RelativeMahalanobis, float64 statistics in one pass by chunks as "
             "Mahalanobis's (the background scatter from the within- and between-class "
             "ones), two inverses; pytorch-ood: float32 products for both scatters, the "
             "undivided scatters plus 1e-6 I inverted"),
        Pair("GMM", features(so.GaussianMixture, labels=True, reg_covar=1e-6),
             t_features(lambda d, t: pood.GMM(None, reg=1e-6)),
             "ours: GaussianMixture (one Gaussian per class, each a fitted scikit-learn "
             "mixture: covariances, Cholesky factors of the precisions and the precisions); "
             "both in float64"),
        logits_pair("OpenMax", so.OpenMax, _OpenMaxOnFeatures, fit="logits", labels=True,
                    note="tail size 25, alpha 10, Euclidean distance"),
        Pair("MultiMahalanobis", lambda d: (so.MultiBlockMahalanobis(
            block_sizes=[d["X"].shape[1] // 2] * 2, combiner="mean"), d["X"], d["y"], d["Q"]),
             t_features(lambda d, t: pood.MultiMahalanobis([None, None]), fit="fit_structured",
                        fit_args=("X_blocks", "y"), score="predict_structured",
                        query="Q_blocks"),
             "two blocks of D/2 features; ours: MultiBlockMahalanobis(combiner='mean') "
             "standardises each block's score before the mean, pytorch-ood sums them. Our "
             "fit is a float64 Mahalanobis fit per block (see Mahalanobis) plus the "
             "standardisation, part of the score: the block scores of the offset sample's "
             "10,000 rows, which then also set the threshold"),
    ]
    return out


class _OpenMaxOnFeatures:
    """pytorch-ood's OpenMax taking features through the head (its ``model``)."""

    def __init__(self, head):
        from pytorch_ood.detector import OpenMax

        self.detector = OpenMax(head, tailsize=25, alpha=10, euclid_weight=1.0)

    def fit_logits(self, logits, y):
        return self.detector.fit_logits(logits, y)

    def predict(self, x):
        return self.detector.predict(x)


def _gradnorm_theirs(data, t):
    from pytorch_ood.detector import GradNorm

    det = GradNorm(t["head"], param_filter=lambda name: name == "weight")
    return None, lambda: det.predict(t["Q"])


def _gram_theirs(data, t):
    import torch
    from pytorch_ood.detector import Gram
    from torch.utils.data import DataLoader, TensorDataset

    head = t["head_maps"]
    det = Gram(lambda x: head(x.mean(dim=(2, 3))), [torch.nn.Identity()],
               num_classes=data["W_maps"].shape[0], num_poles_list=[1, 2, 3, 4, 5])
    loader = DataLoader(TensorDataset(t["M"], t["y_maps"]), batch_size=1024)

    def fit():
        torch.manual_seed(0)
        return det.fit(loader)
    return fit, lambda: det.predict(t["Q_maps"])


# ------------------------------------------------------------------------ timing
def fit_timed(det, X, y):
    """Our ``fit``: (seconds without the threshold, seconds of the threshold)."""
    spent = []
    set_offset = det._set_offset

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        set_offset(*args, **kwargs)
        spent.append(time.perf_counter() - t0)

    det._set_offset = timed  # an instance attribute, shadowing the method for this fit
    try:
        t0 = time.perf_counter()
        det.fit(X, y)
        total = time.perf_counter() - t0
    finally:
        del det._set_offset
    return total - sum(spent), sum(spent)


def warm_up(pair, data, t, n=500):
    """One untimed fit and score of both on a few rows (lazy imports, first-call costs)."""
    import torch

    def cut(value):  # the first n rows (a head's K rows, K < n, stay whole)
        if isinstance(value, list):
            return [v[:n] for v in value]
        return value[:n] if hasattr(value, "shape") else value

    small = {key: cut(value) for key, value in data.items()}
    det, X, y, Q = pair.ours(small)
    det.fit(X, y).score_samples(Q)
    fit_fn, score_fn = pair.theirs(small, {key: cut(value) for key, value in t.items()})
    with torch.no_grad():
        if fit_fn is not None:
            fit_fn()
    with torch.enable_grad() if pair.name == "GradNorm" else torch.no_grad():
        score_fn()


def calls(fn, budget=0.5, most=7):
    """Median seconds of ``fn()`` over 1 to ``most`` calls, as many as fit in ``budget``
    seconds (a cheap call is timed several times: one call of a few ms is mostly noise),
    and the last result."""
    times = []
    while True:
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= most or sum(times) >= budget:
            return statistics.median(times), out


def run_pair(pair, data, t, repeats):
    import numpy as np
    import torch
    from scipy.stats import spearmanr

    rec = {"fit_ours": [], "threshold": [], "fit_theirs": [], "score_ours": [],
           "check_ours": [], "score_theirs": []}
    warm_up(pair, data, t)
    ours_scores = theirs_scores = None
    grad = pair.name == "GradNorm"
    for _ in range(repeats):
        det, X, y, Q = pair.ours(data)
        fits = []  # (statistics, threshold) seconds of each call
        calls(lambda: fits.append(fit_timed(det, X, y)))
        rec["fit_ours"].append(statistics.median(f for f, _ in fits))
        rec["threshold"].append(statistics.median(thr for _, thr in fits))
        seconds, ours_scores = calls(lambda: det.score_samples(Q))
        rec["score_ours"].append(seconds)
        # the input check inside score_samples
        rec["check_ours"].append(calls(lambda: det._validate_input(Q, reset=False))[0])
        del det

        fit_fn, score_fn = pair.theirs(data, t)
        with torch.no_grad():
            if fit_fn is not None:
                rec["fit_theirs"].append(calls(fit_fn)[0])
        with torch.enable_grad() if grad else torch.no_grad():
            seconds, theirs_scores = calls(score_fn)
            rec["score_theirs"].append(seconds)
        theirs_scores = theirs_scores.detach().double().numpy()
        del fit_fn, score_fn

    med = {key: (statistics.median(v) if v else None) for key, v in rec.items()}
    rho = float(spearmanr(ours_scores, -theirs_scores)[0])
    return {
        "detector": pair.name,
        "fit_ours_s": med["fit_ours"], "threshold_s": med["threshold"],
        "fit_theirs_s": med["fit_theirs"],
        "fit_ratio": None if med["fit_theirs"] is None else med["fit_ours"] / med["fit_theirs"],
        "score_ours_s": med["score_ours"], "score_theirs_s": med["score_theirs"],
        "input_check_s": med["check_ours"],
        "score_ratio": med["score_ours"] / med["score_theirs"],
        "spearman": rho, "finite": bool(np.all(np.isfinite(ours_scores))),
        "note": pair.note, "runs": rec,
    }


def _commit():
    """The repository's commit, with "+changes" when the tree differs from it (or None)."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, text=True, capture_output=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if dirty else "")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-bank", type=int, default=50_000)
    parser.add_argument("--n-query", type=int, default=10_000)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--maps", type=int, nargs=3, default=(64, 8, 8), metavar=("C", "H", "W"))
    parser.add_argument("--n-maps", type=int, default=10_000,
                        help="training and query maps each (RankFeat, Gram)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", default=None, help="detector names")
    parser.add_argument("--quick", action="store_true",
                        help="5,000 x 128 bank, 1,000 queries, 1,000 maps, one round")
    parser.add_argument("--out", default=None,
                        help="result file (JSON); default perf/vs_pytorch_ood.json, "
                             "none with --quick")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_bank, args.n_query, args.d, args.n_maps, args.repeats = 5000, 1000, 128, 1000, 1
        args.maps = (32, 4, 4)
    if args.out is None and not args.quick:
        args.out = os.path.join(ROOT, "perf", "vs_pytorch_ood.json")
    set_threads(args.threads)
    stubbed = stub_torchvision()

    import numpy as np
    import pytorch_ood
    import sklearn
    import torch

    import sklearn_ood

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    data = make_data(args.n_bank, args.n_query, args.d, args.k, tuple(args.maps), args.n_maps)
    t = {key: torch.from_numpy(value) for key, value in data.items()}
    t["y"], t["y_maps"] = t["y"].long(), t["y_maps"].long()
    t["head"] = _linear(data["W"], data["b"])
    t["head_maps"] = _linear(data["W_maps"], data["b"])
    t["Q4"] = t["Q"].reshape(t["Q"].shape[0], -1, 1, 1)
    half = args.d // 2
    t["X_blocks"] = [t["X"][:, :half], t["X"][:, half:]]
    t["Q_blocks"] = [t["Q"][:, :half], t["Q"][:, half:]]

    rows = []
    for pair in pairs():
        if args.only and pair.name not in args.only:
            continue
        row = run_pair(pair, data, t, args.repeats)
        rows.append(row)
        fit = "-" if row["fit_ratio"] is None else f"{row['fit_ratio']:.2f}"
        print(f"{row['detector']:<18} score {row['score_ours_s']:8.3f} s / "
              f"{row['score_theirs_s']:8.3f} s = {row['score_ratio']:6.3f}   fit "
              f"{row['fit_ours_s']:7.3f} s (+ thr {row['threshold_s']:6.3f}) / "
              f"{row['fit_theirs_s'] or 0:7.3f} s = {fit:>5}   rho {row['spearman']:.5f}",
              flush=True)
    load_after = os.getloadavg()
    result = {
        "command": "python perf/bench_vs_pytorch_ood.py " + " ".join(
            sys.argv[1:] if argv is None else argv),
        "date": datetime.date.today().isoformat(),
        "commit": _commit(),
        "settings": {"n_bank": args.n_bank, "n_query": args.n_query, "d": args.d, "k": args.k,
                     "maps": list(args.maps), "n_maps": args.n_maps, "threads": args.threads,
                     "repeats": args.repeats, "dtype": "float32"},
        "versions": {"sklearn_ood": sklearn_ood.__version__,
                     "pytorch_ood": pytorch_ood.__version__,
                     "torch": torch.__version__, "numpy": np.__version__,
                     "scikit_learn": sklearn.__version__, "python": platform.python_version()},
        "machine": {"cpus": os.cpu_count(),
                    "processor": platform.processor() or platform.machine(),
                    "load_before": [round(v, 2) for v in load_before],
                    "load_after": [round(v, 2) for v in load_after]},
        "torchvision_stub": stubbed,
        "rows": rows,
    }
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
