"""Command line: ``sklearn-ood benchmark`` (or ``python -m sklearn_ood benchmark``).

Building the parser imports neither PyTorch nor scikit-learn (``--help`` is
instant); they are imported when the benchmark runs.
"""

import argparse
import os
import sys

from ..datasets import BENCHMARKS
from .data import EMBEDDED_OOD, OWN_SPLIT
from .exceptions import BenchmarkError
from .settings import ARCHITECTURES, AUGMENTATIONS, ID_SETS, OWN_PRESET

__all__ = ["build_parser", "main"]

#: Exit codes of ``sklearn-ood benchmark``.
EXIT_OK, EXIT_FAILED_ROWS, EXIT_USAGE = 0, 1, 2


def _presets():
    lines = ["defaults per ID set:"]
    for name, p in ID_SETS.items():
        cap = p["max_train"] or "all"
        if p.get("pretrained"):
            groups = "; ".join(f"{g}: {' '.join(sets)}" for g, sets in p["groups"].items())
            lines.append(f"  {name} OOD {groups}; loads {' and '.join(p['pretrained'].values())}"
                         f" from --models-dir (no training), max-train {cap}")
            for key, cap in p.get("caps", {}).items():
                lines.append(f"    {key}: fitted on {cap['max_fit']:,} images, scored on "
                             f"{cap['max_eval']:,} of each set")
            continue
        lines.append(f"  {name:8s} OOD {' '.join(p['ood'])}; {p['model']} width {p['width']}, "
                     f"{p['epochs']} epochs, batch {p['batch_size']}, max-train {cap}, "
                     f"augment {p['augment']}")
    p = OWN_PRESET
    lines.append(f"  a path OOD from --ood (required); {p['model']} width {p['width']}, "
                 f"{p['epochs']} epochs, batch {p['batch_size']}, augment {p['augment']}")
    return "\n".join(lines)


_OWN_HELP = f"""\
your data, your model:
  --id PATH    an .npz file (arrays x: images (N, H, W) or (N, H, W, C), y: class
               labels 0..K-1) or an image folder (one subfolder per class, read at
               32x32 RGB). It is split into {OWN_SPLIT}.
  --ood PATH   .npz files or image folders (images directly inside, or in
               subfolders), read at the ID images' size and channels.
  --model package.module:factory --weights FILE --blocks NAME [NAME ...] --head NAME
               loads your model instead of training one. The module is imported from
               the current folder or the Python path, as `python -m` does.

rows that cannot run:
  Before a detector runs, what it needs of the model is checked: a second (L2)
  model, maps (a --blocks name before the feature block), as many channels in
  the last map as the head's input when it applies the head to them. A row
  that needs what the model lacks is skipped; a row whose fit or scoring
  raises fails. Neither costs the other rows: each skipped or failed row is
  listed with its reason in results.md and on stderr.

exit status:
  0  every requested row was written or skipped for what the model lacks
  1  some rows failed (the others are written)
  2  usage error: bad option, path, model or data (nothing is run)"""


class _CommandParser(argparse.ArgumentParser):
    """A sub-command's parser: an unknown option is reported with its own usage."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


class _ListDetectors(argparse.Action):
    """``--list-detectors``: print each detector's key and row name, and exit."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from .specs import DETECTORS

        width = max(len(s.key) for s in DETECTORS)
        print("detectors (key, name):")
        print("\n".join(f"  {s.key:{width}s}  {s.name}" for s in DETECTORS))
        parser.exit()


def build_parser():
    """The ``sklearn-ood`` argument parser (sub-command ``benchmark``)."""
    parser = argparse.ArgumentParser(
        prog="sklearn-ood",
        description="sklearn-ood: out-of-distribution detection for PyTorch models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND",
                                parser_class=_CommandParser)
    sub.required = True
    known_ood = ", ".join(list(EMBEDDED_OOD) + sorted(BENCHMARKS))
    b = sub.add_parser(
        "benchmark", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="train (or load) a small model and compare every detector on ID vs OOD sets",
        description=(
            "Train two small classifiers (plain and L2-normalised penultimate feature) on "
            "an ID set, or load them, extract features once, run every detector of the "
            "library on the ID test set vs each OOD set, and write results.md, "
            "results.csv and PNG plots (ROC curves, score histograms, summary). "
            "Detectors with knobs also get a row tuned on pseudo-OOD (held-out classes, "
            "and jigsaw puzzles, noisy, blurred and pixel-permuted copies of validation "
            "images the models were not trained on; no OOD data)."),
        epilog=_presets() + "\n\n" + _OWN_HELP)
    b.add_argument("--id", dest="id_set", default="digits", metavar="NAME|PATH",
                   help=f"in-distribution set: {', '.join(ID_SETS)} (default: digits, "
                        "embedded, no files needed; "
                        "mnist: mnist_train/mnist_test; cifar10: cifar10_train4k/test1k; "
                        "cifar10-resnet18: cifar10_train20k_jpeg/test_jpeg with the trained "
                        "models of --models-dir, OOD split into near and far as in OpenOOD), "
                        "or a path to your .npz file or image folder, split into "
                        f"{OWN_SPLIT.replace('%', '%%')} (see below)")
    b.add_argument("--ood", nargs="+", metavar="NAME|PATH",
                   help=f"OOD sets, loaded at the ID set's size and channels (known: "
                        f"{known_ood}; digits_8_9 and photo_patches only with --id digits), "
                        "or paths to .npz files or image folders. Default: see below")
    b.add_argument("--data-dir", metavar="DIR",
                   help="folder with the shared .npz files; required for every set but the "
                        "embedded ones")
    b.add_argument("--models-dir", metavar="DIR",
                   help="folder with the trained models of an ID set that loads them "
                        "(--id cifar10-resnet18: its plain and L2 state dicts, see below); "
                        "nothing is trained")
    b.add_argument("--model", metavar="ARCH|MODULE:FACTORY",
                   help=f"architecture to train: {', '.join(ARCHITECTURES)} (default: per ID "
                        "set, see below); or your model, package.module:factory (a callable "
                        "returning an nn.Module, imported from the current folder or the "
                        "Python path), with --blocks and --head: nothing is trained")
    b.add_argument("--width", type=int, metavar="N",
                   help="channels of the first block (default: per ID set; 16 for a "
                        "non-default architecture)")
    b.add_argument("--epochs", type=int, metavar="N", help="training epochs (default: per ID set)")
    b.add_argument("--batch-size", type=int, metavar="N",
                   help="training batch size (default: per ID set)")
    b.add_argument("--lr", type=float, metavar="LR",
                   help="initial SGD learning rate, cosine schedule (default: 0.05)")
    b.add_argument("--augment", choices=AUGMENTATIONS,
                   help="training augmentation: random horizontal flip + 4-pixel padded "
                        "crop, or none (default: flip-crop for cifar10, none otherwise)")
    b.add_argument("--weights", metavar="PATH",
                   help="load both models from a file written by --save-weights "
                        "(torch.load(weights_only=True)) instead of training; with "
                        "--model package.module:factory: your model's state dict (default: "
                        "the factory's own parameters)")
    b.add_argument("--blocks", nargs="+", metavar="NAME",
                   help="with your model: module names (as in model.named_modules()) to "
                        "read. The LAST is the feature block, whose flattened output feeds "
                        "--head; those before it must output maps (N, C, H, W): the last of "
                        "them gives the maps of the map-based detectors, all of them the "
                        "per-block averages of MultiBlockMahalanobis")
    b.add_argument("--head", metavar="NAME",
                   help="with your model: the module name of its final nn.Linear")
    b.add_argument("--val", metavar="PATH",
                   help="validation images for pseudo-OOD tuning: an .npz file (arrays x: "
                        "images, y: class labels in the ID set's order) of images your "
                        "model was NOT trained on; the fit set is then every "
                        "training image (default: a stratified 10%% of the training images "
                        "held out from training; cifar10-resnet18: 1,000 test images)")
    b.add_argument("--save-weights", metavar="PATH", help="save the trained models to PATH")
    b.add_argument("--seed", type=int, default=0,
                   help="seed of the data split, training, jigsaw puzzles (default: 0); "
                        "the same seed gives the same table")
    b.add_argument("--detectors", nargs="+", metavar="NAME",
                   help="run only these detectors (keys or names, case-insensitive; "
                        "default: all, as --list-detectors prints them)")
    b.add_argument("--list-detectors", action=_ListDetectors,
                   help="print the key and row name of every detector, and exit")
    b.add_argument("--max-train", type=int, metavar="N",
                   help="use at most N ID training images (stratified; 0 = all) to train "
                        "the models and fit the detectors (default: per ID set)")
    b.add_argument("--out", default="benchmark_out", metavar="DIR",
                   help="output folder (default: benchmark_out)")
    b.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    b.add_argument("--no-tune", action="store_true",
                   help="skip the pseudo-OOD tuned rows")
    b.add_argument("--threads", type=int, default=1, metavar="N",
                   help="CPU threads of torch, BLAS and OpenMP (default: 1; on a shared or "
                        "loaded machine more threads oversubscribe the cores and were "
                        "measured much slower: see perf/README.md)")
    b.add_argument("--quiet", action="store_true",
                   help="no log lines (the table, warnings and skipped or failed rows are "
                        "still printed). Progress bars are shown only when stderr is a "
                        "terminal")
    return parser


def _benchmark(args):
    from .report import header_lines, summary_table, write_report
    from .runner import run_benchmark

    result = run_benchmark(
        args.id_set, args.ood, data_dir=args.data_dir, models_dir=args.models_dir,
        model=args.model, width=args.width,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, augment=args.augment,
        weights=args.weights,
        save_weights_to=args.save_weights, seed=args.seed, detectors=args.detectors,
        max_train=args.max_train, tune=not args.no_tune, progress=not args.quiet,
        blocks=args.blocks, head=args.head, val=args.val)
    paths = write_report(result, args.out, plots=not args.no_plots,
                         command=public_command(args.argv))
    print("\n".join(header_lines(result)))
    print()
    print(summary_table(result))
    if "chosen" in result.info:
        print(f"\nchosen by pseudo-OOD: {result.info['chosen']}")
    print(f"\nwrote {len(paths)} files to {args.out}")
    return _problems(result)


#: Options whose value is a path, and the placeholder a published command shows.
_PATH_OPTIONS = {"--data-dir": "DATA", "--models-dir": "MODELS", "--out": "OUT",
                 "--val": "VAL", "--weights": "WEIGHTS", "--save-weights": "WEIGHTS"}


def public_command(argv):
    """The command line as ``results.json`` records it: path values as placeholders.

    Examples
    --------
    >>> from sklearn_ood.benchmark.cli import public_command
    >>> public_command(["benchmark", "--id", "mnist", "--data-dir", "shared/data",
    ...                 "--out=runs/mnist", "--ood", "usps", "more/ood.npz"])
    'sklearn-ood benchmark --id mnist --data-dir DATA --out OUT --ood usps PATH'
    """
    words, option = ["sklearn-ood"], None
    for word in argv:
        if word.startswith("--") and "=" in word:
            name, _, value = word.partition("=")
            words += [name, _PATH_OPTIONS.get(name) or _public_value(value)]
            option = None
            continue
        if word.startswith("-"):
            option = word
            words.append(word)
            continue
        words.append(_PATH_OPTIONS.get(option) or _public_value(word))
    return " ".join(words)


def _public_value(word):
    looks_like_a_path = os.sep in word or word.endswith((".npz", ".pt", ".pth"))
    return "PATH" if looks_like_a_path else word


def _problems(result):
    """Print the warnings and the rows not written on stderr; return the exit code."""
    info = result.info
    if info.get("near_chance"):
        print(f"sklearn-ood benchmark: warning: {info['near_chance']}", file=sys.stderr)
    for name, reason in info.get("skipped", {}).items():
        print(f"sklearn-ood benchmark: skipped {name}: {reason}", file=sys.stderr)
    for name, reason in info.get("failed", {}).items():
        print(f"sklearn-ood benchmark: FAILED {name}: {reason}", file=sys.stderr)
    if info.get("failed"):
        print(f"sklearn-ood benchmark: {len(info['failed'])} row(s) failed; the other rows "
              "are written.", file=sys.stderr)
        return EXIT_FAILED_ROWS
    return EXIT_OK


def main(argv=None):
    """Run the command line; return the exit code.

    0: every requested row was written, or skipped because the model lacks
    what its detector needs; 1: some rows failed (the others are written);
    2: a usage error (nothing is run).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code or 0)
    if args.threads < 1:
        print(f"sklearn-ood benchmark: error: --threads must be >= 1; got {args.threads}.",
              file=sys.stderr)
        return EXIT_USAGE
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        with threadpool_limits(args.threads):
            return _benchmark(args)
    except (BenchmarkError, FileNotFoundError) as exc:
        print(f"sklearn-ood benchmark: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        torch.set_num_threads(threads)
