"""
L2-normalised features, neural collapse and DDU density scores
==============================================================

A reproduction, at small scale, of Haas et al. (2023).

Haas, Yolland & Rabus propose one architectural change to a ResNet: divide the
pooled penultimate feature ``h`` by its Euclidean norm before the final linear
layer ``fc``, during training and inference, and train with ordinary
cross-entropy. They report that this makes the features collapse onto their
class means (neural collapse) within a few epochs, and that a class-conditional
Gaussian density fitted on those features (DDU's GDA, here
:class:`~sklearn_ood.detectors.gaussian_density.GaussianDensity`) then separates
in-distribution (ID) from out-of-distribution (OOD) images at least as well as
a conventionally trained network.

This script trains the plain and the L2-normalised ResNet on the same data with
the same seed (identical initial weights and batch order), and prints side by
side:

* test accuracy and, per epoch, test accuracy and NC1 (within-class
  variability relative to between-class spread, recorded by
  :class:`~sklearn_ood.models.NeuralCollapseTracker` on a subset of the
  training set);
* the final neural-collapse metrics of the training features and ``fc``
  (:func:`~sklearn_ood.diagnostics.neural_collapse`; all are 0 at perfect
  collapse);
* AUROC and FPR at 95 % TPR (ID positive) of ``GaussianDensity`` fitted on the
  penultimate features of the training set with their labels, for each OOD set.
  For the L2 model the penultimate block *is* the normalised feature. Two cheap
  controls use the same features: ``GaussianDensity(normalize=True)`` on the
  plain model (normalising after training, not during) and ``GaussianDensity``
  on the L2 model's un-normalised pooled feature (the paper does not say which of
  the two it fits).

A figure with accuracy and NC1 per epoch and a bar chart of AUROC per OOD set is
written to ``--out``.

Data: without ``--data-dir``, scikit-learn's 8x8 digits 0-7 are ID, digits 8-9
(near-OOD) and patches of scikit-learn's sample photos (far-OOD) are OOD
(:func:`~sklearn_ood.datasets.load_digits_ood`; runs in well under a minute on
two CPU cores). With ``--data-dir`` (the folder of the shared ``.npz`` files),
MNIST is ID and Fashion-MNIST, USPS and texture patches (28x28 gray) are OOD.

Usage::

    python examples/l2_normalized_resnet.py
    python examples/l2_normalized_resnet.py --data-dir ../shared/data \\
        --width 16 --epochs 5 --max-train 10000

By default features are extracted in float64 (a float64 copy of the trained
network), as DDU does; ``--feature-dtype float32`` is about 5x faster on CPU.
The Gaussian fit is in float64 either way. ``--threads 1`` is much faster than
torch's default on a machine that other jobs keep busy.
"""

import argparse
import copy
import sys
import time

import numpy as np
import torch
from skorch.callbacks import Callback
from sklearn.model_selection import train_test_split

from sklearn_ood import BlockFeatureExtractor, GaussianDensity, neural_collapse
from sklearn_ood.datasets import load_benchmark, load_digits_ood
from sklearn_ood.metrics import auroc, fpr_at_tpr
from sklearn_ood.models import NeuralCollapseTracker, ResNet, make_classifier

MODELS = {"plain": False, "L2": True}  # name -> l2_normalize
# (column name, model, feature block, GaussianDensity normalize)
VARIANTS = [
    ("plain", "plain", "penultimate", False),
    ("plain+norm", "plain", "penultimate", True),
    ("L2", "L2", "penultimate", False),
    ("L2 raw h", "L2", "flatten", False),
]
NC_KEYS = [
    "nc1", "etf_means", "equinorm_means", "equiangularity_means", "etf_weights",
    "equinorm_weights", "equiangularity_weights", "self_duality", "ncc_mismatch",
]


class EpochAccuracy(Callback):
    """Record the accuracy on a fixed labelled set after every epoch as ``test_acc``."""

    def __init__(self, X, y):
        self.X = X
        self.y = y

    def on_epoch_end(self, net, **kwargs):
        net.history.record("test_acc", float(np.mean(net.predict(self.X) == self.y)))


def _positive_int(text, minimum=1):
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        kind = "a positive" if minimum == 1 else "a non-negative"
        raise argparse.ArgumentTypeError(f"expected {kind} integer, got {text!r}")
    return value


def _nonnegative_int(text):
    return _positive_int(text, minimum=0)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data-dir", default=None,
                        help="folder of the shared .npz files: MNIST vs Fashion-MNIST, "
                             "USPS, textures; default: scikit-learn's digits")
    parser.add_argument("--epochs", type=_positive_int, default=10)
    parser.add_argument("--width", type=_positive_int, default=8,
                        help="ResNet base width (penultimate dimension = 8 * width)")
    parser.add_argument("--max-train", type=_positive_int, default=10000,
                        help="stratified subsample of the training set")
    parser.add_argument("--max-eval", type=_nonnegative_int, default=2000,
                        help="random subsample of the test set and of each OOD set "
                             "(0: all)")
    parser.add_argument("--nc-samples", type=_positive_int, default=2000,
                        help="training samples on which NC1 is tracked per epoch")
    parser.add_argument("--batch-size", type=_positive_int, default=None,
                        help="default: 64 on digits, 128 on MNIST")
    parser.add_argument("--feature-dtype", choices=["float64", "float32"],
                        default="float64",
                        help="dtype of the feature-extraction pass (DDU: float64; "
                             "float32 is ~5x faster on CPU, the GDA is float64 either way)")
    parser.add_argument("--reg-covar", type=float, default=0.0,
                        help="GaussianDensity(reg_covar=...): smallest covariance jitter "
                             "(default 0.0, DDU's rule; try 1e-6 for the L2 model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="torch CPU threads for this run (default: torch's choice); "
                             "1 is much faster on a machine busy with other jobs")
    parser.add_argument("--out", default="l2_normalized_resnet.png",
                        help="PNG file for the figure ('' to skip it)")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the results, not the per-epoch training log")
    return parser.parse_args(argv)


def _subsample(X, n, rng):
    if n <= 0 or len(X) <= n:
        return X
    return X[np.sort(rng.choice(len(X), size=n, replace=False))]


def load_data(args):
    """Return a dict with the ID train/test arrays, the OOD sets and a description."""
    rng = np.random.default_rng(args.seed)
    if args.data_dir is None:
        digits = load_digits_ood(random_state=args.seed)
        name, shape = "scikit-learn digits 0-7", "8x8 gray"
        X_train, y_train = digits.X_train, digits.y_train
        X_test, y_test, ood = digits.X_test, digits.y_test, digits.ood
    else:
        name, shape = "MNIST", "28x28 gray"
        X_train, y_train = load_benchmark("mnist", args.data_dir, split="train")
        X_test, y_test = load_benchmark("mnist", args.data_dir, split="test")
        ood = {
            "fashion_mnist": load_benchmark("fashion_mnist", args.data_dir)[0],
            "usps": load_benchmark("usps", args.data_dir, split="test")[0],
            "textures": load_benchmark("textures", args.data_dir, size=(28, 28))[0],
        }
    if len(X_train) > args.max_train:
        X_train, _, y_train, _ = train_test_split(
            X_train, y_train, train_size=args.max_train, stratify=y_train,
            random_state=args.seed,
        )
    if 0 < args.max_eval < len(X_test):
        keep = np.sort(rng.choice(len(X_test), size=args.max_eval, replace=False))
        X_test, y_test = X_test[keep], y_test[keep]
    ood = {key: _subsample(X, args.max_eval, rng) for key, X in ood.items()}
    return {
        "name": name, "shape": shape, "X_train": X_train, "y_train": y_train,
        "X_test": X_test, "y_test": y_test, "ood": ood,
        "n_classes": int(np.unique(y_train).size), "in_channels": X_train.shape[1],
    }


def train(data, l2_normalize, args):
    """Fit one ResNet; return the net and its wall time in seconds."""
    n_nc = min(args.nc_samples, len(data["X_train"]))
    batch_size = args.batch_size or (64 if args.data_dir is None else 128)
    net = make_classifier(
        ResNet, max_epochs=args.epochs, random_state=args.seed, batch_size=batch_size,
        verbose=0 if args.quiet else 1,
        callbacks=[
            ("test_acc", EpochAccuracy(data["X_test"], data["y_test"])),
            ("nc", NeuralCollapseTracker(data["X_train"][:n_nc], data["y_train"][:n_nc])),
        ],
        num_classes=data["n_classes"], in_channels=data["in_channels"],
        width=args.width, l2_normalize=l2_normalize,
    )
    start = time.perf_counter()
    net.fit(data["X_train"], data["y_train"])
    return net, time.perf_counter() - start


def extract(net, data, dtype="float64"):
    """``flatten`` (pooled h) and ``penultimate`` (fc input) features of every set."""
    model = copy.deepcopy(net.module_).to(getattr(torch, dtype))
    extractor = BlockFeatureExtractor(model, ["flatten", "penultimate"], batch_size=512)
    extractor.fit(data["X_train"][:1])
    dim = model.feature_dim
    sets = {"train": data["X_train"], "test": data["X_test"], **data["ood"]}
    features = {}
    for key, X in sets.items():
        both = extractor.transform(X)
        features[key] = {"flatten": both[:, :dim], "penultimate": both[:, dim:]}
    return features


def evaluate(nets, data, feature_dtype="float64", reg_covar=0.0):
    """Accuracy, final neural-collapse metrics and GaussianDensity AUROC / FPR@95."""
    results = {"accuracy": {}, "nc": {}, "auroc": {}, "fpr95": {}}
    features = {}
    for name, net in nets.items():
        features[name] = extract(net, data, feature_dtype)
        fc = net.module_.fc
        W = fc.weight.detach().double().numpy()
        b = fc.bias.detach().double().numpy()
        logits = features[name]["test"]["penultimate"].astype(np.float64) @ W.T + b
        results["accuracy"][name] = float(np.mean(logits.argmax(axis=1) == data["y_test"]))
        results["nc"][name] = neural_collapse(
            features[name]["train"]["penultimate"], data["y_train"], head=fc
        )
    for column, model, block, normalize in VARIANTS:
        feats = features[model]
        detector = GaussianDensity(normalize=normalize, reg_covar=reg_covar)
        detector.fit(feats["train"][block], data["y_train"])
        id_scores = detector.score_samples(feats["test"][block])
        results["auroc"][column], results["fpr95"][column] = {}, {}
        for ood_name in data["ood"]:
            ood_scores = detector.score_samples(feats[ood_name][block])
            y = np.r_[np.zeros(len(id_scores)), -np.ones(len(ood_scores))]
            scores = np.r_[id_scores, ood_scores]
            results["auroc"][column][ood_name] = auroc(y, scores)
            results["fpr95"][column][ood_name] = fpr_at_tpr(y, scores, tpr=0.95)
    return results


def _row(label, values, width=12, fmt="{:.4f}"):
    cells = "".join(f"{fmt.format(v):>{width}}" for v in values)
    return f"{label:<24}{cells}"


def report(data, nets, times, results, args):
    names = list(nets)
    print()
    print(f"ID data: {data['name']} ({data['shape']}), {data['n_classes']} classes, "
          f"{len(data['X_train'])} train / {len(data['X_test'])} test")
    print("OOD sets: " + ", ".join(f"{k} ({len(v)})" for k, v in data["ood"].items()))
    print(f"ResNet width {args.width} (feature dim {8 * args.width}), "
          f"{args.epochs} epochs, seed {args.seed}, {torch.get_num_threads()} torch thread(s)")

    print("\n" + _row("", names, fmt="{}"))
    print(_row("train time [s]", [times[n] for n in names], fmt="{:.1f}"))
    print(_row("test accuracy", [results["accuracy"][n] for n in names]))

    print("\nPer epoch: test accuracy and NC1 on "
          f"{min(args.nc_samples, len(data['X_train']))} training samples")
    header = [f"acc {n}" for n in names] + [f"NC1 {n}" for n in names]
    print(_row("epoch", header, fmt="{}"))
    for epoch in range(args.epochs):
        values = [nets[n].history[epoch, "test_acc"] for n in names]
        values += [nets[n].history[epoch, "nc1"] for n in names]
        print(_row(str(epoch + 1), values))

    print(f"\nFinal neural-collapse metrics ({len(data['X_train'])} training samples, "
          "penultimate features, head = fc; 0 = perfect collapse)")
    print(_row("metric", names, fmt="{}"))
    for key in NC_KEYS:
        print(_row(key, [results["nc"][n][key] for n in names]))

    columns = [v[0] for v in VARIANTS]
    for metric, title in (("auroc", "AUROC [%] (higher is better)"),
                          ("fpr95", "FPR@95%TPR [%] (lower is better)")):
        print(f"\nGaussianDensity (DDU, reg_covar={args.reg_covar:g}) {title}")
        print(_row("OOD set", columns, width=12, fmt="{}"))
        table = results[metric]
        for ood_name in data["ood"]:
            print(_row(ood_name, [100 * table[c][ood_name] for c in columns], fmt="{:.1f}"))
        print(_row("mean", [100 * np.mean(list(table[c].values())) for c in columns],
                   fmt="{:.1f}"))
    print("\nplain = GaussianDensity on h; plain+norm = GaussianDensity(normalize=True) on h;"
          "\nL2 = GaussianDensity on h/||h|| of the L2 model; L2 raw h = on its pooled h"
          " before normalisation.")


def plot(nets, results, data, path):
    """Accuracy and NC1 per epoch, and AUROC per OOD set, in one PNG."""
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(14, 4), layout="constrained")
    ax_acc, ax_nc, ax_bar = fig.subplots(1, 3)
    for name, net in nets.items():
        epochs = net.history[:, "epoch"]
        ax_acc.plot(epochs, net.history[:, "test_acc"], marker="o", label=name)
        ax_nc.plot(epochs, net.history[:, "nc1"], marker="o", label=name)
    ax_acc.set(xlabel="epoch", ylabel="test accuracy", title="Test accuracy")
    ax_nc.set(xlabel="epoch", ylabel="NC1 (log scale)", yscale="log",
              title="Within-class variability collapse (NC1)")
    for ax in (ax_acc, ax_nc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()

    ood_names = list(data["ood"])
    columns = [v[0] for v in VARIANTS]
    x = np.arange(len(ood_names))
    width = 0.8 / len(columns)
    for i, column in enumerate(columns):
        heights = [results["auroc"][column][n] for n in ood_names]
        ax_bar.bar(x + (i - (len(columns) - 1) / 2) * width, heights, width, label=column)
    lowest = min(min(results["auroc"][c].values()) for c in columns)
    ax_bar.set_xticks(x, ood_names)
    ax_bar.set(ylabel="AUROC", ylim=(min(0.4, lowest - 0.05), 1.12),
               title="GaussianDensity AUROC per OOD set")
    ax_bar.axhline(0.5, color="gray", lw=0.8, ls=":")
    ax_bar.legend(fontsize="small", loc="upper center", ncols=len(columns) // 2)
    fig.savefig(path, dpi=110)


def main(argv=None):
    """Run the comparison; return 0 (the process exit status)."""
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        data = load_data(args)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(args.threads or threads)
        nets, times = {}, {}
        for name, l2 in MODELS.items():
            if not args.quiet:
                print(f"\nTraining the {name} ResNet (l2_normalize={l2})")
            nets[name], times[name] = train(data, l2, args)
        results = evaluate(nets, data, args.feature_dtype, args.reg_covar)
        report(data, nets, times, results, args)
    finally:
        torch.set_num_threads(threads)
    if args.out:
        plot(nets, results, data, args.out)
        print(f"\nFigure written to {args.out}")
    print(f"Total wall time: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    status = main()
    if status:  # a gallery build runs this block too: exit only on failure
        sys.exit(status)
