"""Write the documentation pages that are generated, not typed (``docs/generated/``).

Sphinx loads this extension from ``conf.py``; on ``config-inited``, before the
source files are listed, it writes the detector list from the registry
(:func:`sklearn_ood.discovery.describe_detectors`), so the page lists every
detector with what its class declares; and the performance page from the
result files of ``perf/bench_vs_pytorch_ood.py`` (``perf/vs_pytorch_ood*.json``),
so its tables are the ones the runs wrote, with each run's command and date;
and the benchmark's pages from the committed result files of its presets
(``docs/results/<preset>/``: ``results.json``, ``results.csv`` and
``selection.json``, as ``sklearn-ood benchmark --out`` writes them): the results
of each preset, the papers' claims compared on the CIFAR-10 preset's rows, and
how well pseudo-OOD chose (:mod:`sklearn_ood.benchmark.selection_table`).
"""

import json
import math
from pathlib import Path

from sklearn_ood.benchmark import selection_table
from sklearn_ood.benchmark.result import CHOSEN_NAME, GROUP_SUFFIX, decision_summary
from sklearn_ood.discovery import describe_detectors

_INPUTS = {"features": "penultimate features", "maps": "a block's maps",
           "max_avg": "per-channel max and mean of a block's maps",
           "blocks": "pooled outputs of several blocks", "images": "images (runs the model)"}
_HEADS = {"required": "required", "or_logits": "or logits", "optional": "optional", None: "-"}
_LABELS = {"required": "required", "optional": "optional", None: "-"}


def detectors_page():
    """The reStructuredText of the detector list."""
    lines = ["Detectors", "=========", "",
             "Every detector of the library, as its class declares itself "
             "(:class:`~sklearn_ood.discovery.DetectorTags`, listed by",
             ":func:`~sklearn_ood.discovery.describe_detectors`). *Head*: the final linear "
             "layer (``head=``); *or logits*: without it ``X`` is read as logits. *Tuned*: the "
             "knobs of the default pseudo-OOD tuning grid. How each score is computed, and "
             "how faithfully to its paper: :doc:`../user_guide/methods`.", "",
             ".. list-table::", "   :header-rows: 1", "   :widths: 14 16 8 8 14 6 34", "",
             "   * - detector", "     - input", "     - head", "     - labels",
             "     - tuned", "     - ``partial_fit``", "     - what it scores (paper)"]
    for r in describe_detectors():
        tuned = ", ".join(f"``{k}``" for k in r["tuned"]) or "-"
        lines += [f"   * - :class:`~sklearn_ood.{r['name']}`", f"     - {_INPUTS[r['input']]}",
                  f"     - {_HEADS[r['head']]}", f"     - {_LABELS[r['labels']]}",
                  f"     - {tuned}", f"     - {'yes' if r['partial_fit'] else '-'}",
                  f"     - {r['summary'].rstrip('.')} ({r['paper']})"]
    return "\n".join(lines) + "\n"


#: The result files of perf/bench_vs_pytorch_ood.py, relative to the docs folder: the
#: comparison on two threads, then on one (less sensitive to other jobs on the machine).
PERFORMANCE_RESULTS = [Path("..") / "perf" / "vs_pytorch_ood.json",
                       Path("..") / "perf" / "vs_pytorch_ood_1thread.json"]


def _seconds(value):
    return "-" if value is None else f"{value:.3g}"


def _ratio(value):
    return "-" if value is None else f"**{value:.2f}**" if value > 1 else f"{value:.2f}"


def _run_section(path, run):
    """One run's settings and table."""
    s, v, m = run["settings"], run["versions"], run["machine"]
    threads = f"{s['threads']} thread" + ("s" if s["threads"] > 1 else "")
    lines = [f"On {threads}", "-" * len(f"On {threads}"), "",
             f"A bank of {s['n_bank']:,} x {s['d']} {s['dtype']} training rows of {s['k']} "
             f"classes, {s['n_query']:,} queries (RankFeat and Gram: {s['n_maps']:,} training "
             f"and as many query maps of {' x '.join(map(str, s['maps']))}), the median of "
             f"{s['repeats']} rounds. Generated from ``perf/{path.name}``, written on "
             f"{run['date']} (commit {run.get('commit') or 'unknown'}) by::", "",
             f"   {run['command']}", "",
             f"with pytorch-ood {v['pytorch_ood']}, torch {v['torch']}, NumPy {v['numpy']}, "
             f"scikit-learn {v['scikit_learn']}, Python {v['python']} on {m['cpus']} CPUs; "
             f"1-minute load average {m['load_before'][0]} before and {m['load_after'][0]} "
             "after the run (a shared machine: the wall times carry that noise).", "",
             ".. list-table::", "   :header-rows: 1", "",
             "   * - detector", "     - score, ours (s)", "     - score, pytorch-ood (s)",
             "     - score ratio", "     - of which input check (s)", "     - fit, ours (s)",
             "     - fit, pytorch-ood (s)",
             "     - fit ratio", "     - threshold (s)", "     - Spearman"]
    for r in run["rows"]:
        lines += [f"   * - {r['detector']}", f"     - {_seconds(r['score_ours_s'])}",
                  f"     - {_seconds(r['score_theirs_s'])}", f"     - {_ratio(r['score_ratio'])}",
                  f"     - {_seconds(r.get('input_check_s'))}",
                  f"     - {_seconds(r['fit_ours_s'])}", f"     - {_seconds(r['fit_theirs_s'])}",
                  f"     - {_ratio(r['fit_ratio'])}", f"     - {_seconds(r['threshold_s'])}",
                  f"     - {r['spearman']:.4f}"]
    return lines + [""]


def performance_page(results_paths):
    """The reStructuredText of the speed comparison with pytorch-ood, from its result files."""
    lines = ["Performance", "===========", "",
             "Every detector that pytorch-ood also has, timed against pytorch-ood on the same "
             "float32 features in one process (``perf/bench_vs_pytorch_ood.py``):", "",
             "- *score*: our ``score_samples`` of the queries against pytorch-ood's "
             "``predict_*``; *of which input check*: the time our ``score_samples`` spends "
             "checking the input (dtype, shape, finiteness), which pytorch-ood does not do;",
             "- *fit*: our ``fit`` without the threshold (the statistics, input checks "
             "included) against pytorch-ood's ``fit_*``; '-' where pytorch-ood fits nothing;",
             "- *threshold*: the part of our ``fit`` that sets ``offset_``, which pytorch-ood "
             "does not compute: the scores of at most 10,000 training rows (leave-one-out "
             "for KNN and Gram);",
             "- *ratio*: ours / pytorch-ood's, bold above 1; *Spearman*: the rank correlation "
             "of our scores with minus pytorch-ood's on the queries.", ""]
    runs = [(Path(p), json.loads(Path(p).read_text())) for p in results_paths
            if Path(p).is_file()]
    if not runs:
        lines.append("No result file: run ``python perf/bench_vs_pytorch_ood.py``.")
        return "\n".join(lines) + "\n"
    for path, run in runs:
        lines += _run_section(path, run)
    lines += ["How each pair is matched, and where the two differ", "-" * 51, ""]
    lines += [f"- **{r['detector']}**: {r['note']}." for r in runs[0][1]["rows"] if r["note"]]
    return "\n".join(lines) + "\n"


#: The benchmark's presets whose result files are committed in ``docs/results/<preset>/``:
#: what each compares, and the command that makes its files (``OUT``: that folder).
PRESETS = {
    "digits": ("ID: scikit-learn's 8x8 digits 0-7; OOD: digits 8-9 and patches of "
               "scikit-learn's sample photos; a SmallCNN trained by the command",
               "sklearn-ood benchmark --out OUT"),
    "mnist": ("ID: MNIST; OOD: Fashion-MNIST, USPS and texture patches; a ResNet-18 "
              "(width 16) trained by the command",
              "sklearn-ood benchmark --id mnist --data-dir DATA --out OUT"),
    "cifar10-resnet18": ("ID: CIFAR-10; OOD: TinyImageNet (near), Textures and MNIST "
                         "(far); two trained ResNet-18 of width 16, one with an "
                         "L2-normalised penultimate feature (nothing is trained)",
                         "sklearn-ood benchmark --id cifar10-resnet18 --data-dir DATA "
                         "--models-dir MODELS --out OUT"),
}
#: The preset the papers' claims are checked on (the papers' own ID set).
CLAIMS_PRESET = "cifar10-resnet18"
RESULT_FILES = ("results.json", "results.csv", "selection.json")


def load_results(folder):
    """A preset's ``results.json``, or ``None`` when the folder lacks a result file."""
    folder = Path(folder)
    if not all((folder / name).is_file() for name in RESULT_FILES):
        return None
    return json.loads((folder / "results.json").read_text())


def _missing(preset):
    command = PRESETS[preset][1].replace("OUT", f"docs/results/{preset}")
    return [f"No result files yet: ``docs/results/{preset}/`` is made by::", "",
            f"   {command}", "",
            "(its ``results.json``, ``results.csv`` and ``selection.json`` are the files the "
            "documentation reads).", ""]


def _pct(value):
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{100 * value:.1f}"


def _metrics(run):
    """``{row: {ood_set: {"auroc": ..., "fpr95": ...}}}`` of the run's rows, without the
    row repeating the chosen one."""
    table = {}
    for r in run["rows"]:
        if not r["detector"].startswith(CHOSEN_NAME):
            table.setdefault(r["detector"], {})[r["ood_set"]] = r
    return table


def _columns(run):
    """The averaged columns of a run: one per OOD group, then the average over all sets."""
    groups = list(run["config"].get("ood_groups") or {})
    return [g + GROUP_SUFFIX for g in groups] + ["average"]


def _fpr_key(metrics):
    fpr, auroc = metrics["average"]["fpr95"], metrics["average"]["auroc"]
    return (math.inf if fpr is None or math.isnan(fpr) else fpr,
            -(auroc if auroc is not None and not math.isnan(auroc) else -math.inf))


def _list_table(head, rows):
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [head, *rows]:
        lines += [f"   * - {row[0]}"] + [f"     - {cell}" for cell in row[1:]]
    return lines + [""]


def _run_facts(run, preset):
    """The command, date, version, accuracy, images and validation of one run."""
    info = run["info"]
    accuracy = f"{100 * info['accuracy']:.2f} %"
    if info.get("accuracy_l2") is not None:
        accuracy += f" (L2-normalised model: {100 * info['accuracy_l2']:.2f} %)"
    images = ", ".join(f"{name} {n:,}" for name, n in info.get("n_images", {}).items())
    lines = [f"Written on {run['date']} by sklearn-ood {run['version']}, with::", "",
             f"   {run['command']}", "",
             f"- ID test accuracy: {accuracy}",
             f"- images per set: {images}",
             f"- validation (pseudo-OOD only): {info.get('validation', '-')}"]
    timings = info.get("timings") or {}
    if timings:
        lines.append("- time per stage (s, on the machine that ran it): " + ", ".join(
            f"{stage} {seconds:,.1f}" for stage, seconds in timings.items())
            + f"; {sum(timings.values()):,.0f} in all")
    groups = run["config"].get("ood_groups") or {}
    if groups:
        lines.append("- OOD groups: " + "; ".join(f"{g}: {', '.join(s)}"
                                                  for g, s in groups.items()))
    for kind in ("skipped", "failed"):
        for row, reason in (info.get(kind) or {}).items():
            lines.append(f"- {kind}: {row} ({reason})")
    lines += ["- every metric per OOD set, AUPR and timings: "
              f":download:`results.csv <../results/{preset}/results.csv>`", ""]
    return lines


def results_table(run):
    """The rows of one run sorted by average FPR95, the chosen row marked: (head, rows)."""
    metrics = _metrics(run)
    columns = _columns(run)
    chosen = run["info"].get("chosen")
    head = ["rank", "detector"] + [f"{c.removesuffix(GROUP_SUFFIX)} AUROC / FPR95"
                                   for c in columns[:-1]] + ["avg AUROC", "avg FPR95"]
    rows = []
    for rank, name in enumerate(sorted(metrics, key=lambda n: _fpr_key(metrics[n])), 1):
        m = metrics[name]
        label = (f"**{name}** (chosen by pseudo-OOD)" if name == chosen else name)
        rows.append([str(rank), label]
                    + [f"{_pct(m[c]['auroc'])} / {_pct(m[c]['fpr95'])}" for c in columns[:-1]]
                    + [_pct(m["average"]["auroc"]), _pct(m["average"]["fpr95"])])
    return head, rows


def results_page(results_dir):
    """The reStructuredText of every preset's results, from ``results_dir/<preset>/``."""
    lines = ["Benchmark results", "=================", "",
             "What ``sklearn-ood benchmark`` measured on each preset, generated from the "
             "result files of the run (``docs/results/<preset>/``), with the command that "
             "wrote them (``DATA`` and ``MODELS``: the folders of the data sets and the "
             "trained models). Every detector runs with its documented defaults; a row "
             "marked *tuned (pseudo-OOD)* chose its knobs on ID validation images and "
             "their pseudo-OOD copies, without OOD data; the row in bold is the one the "
             "pseudo-OOD rule chose among all rows (see :doc:`../user_guide/tuning`).", "",
             "Metrics in %: AUROC (higher is better) and FPR95, the share of OOD images "
             "accepted when 95 % of the ID test images are (lower is better), averaged over "
             "the OOD sets (and over each group's sets, when the preset groups them into "
             "near- and far-OOD). The rows are sorted by average FPR95. Read each table as "
             "one model on a few OOD sets, not as a ranking of the methods.", ""]
    for preset, (what, _) in PRESETS.items():
        lines += [preset, "-" * len(preset), "", what + ".", ""]
        run = load_results(Path(results_dir) / preset)
        if run is None:
            lines += _missing(preset)
            continue
        lines += _run_facts(run, preset) + _list_table(*results_table(run))
        lines += decisions_section(run)
    return "\n".join(lines) + "\n"


def decisions_section(run):
    """The run's decisions: per row, the share of ID test and of OOD images accepted at
    the plain and the conformal threshold ([] when the run has none)."""
    info = run["info"]
    accepted = info.get("accepted")
    if not accepted:
        return []
    summary = decision_summary(accepted, info.get("thresholds"))
    c, p = summary["conformal"], summary["plain"]
    lines = ["Decisions", "~" * 9, "",
             "The share of images ``predict`` accepts, in %, at each row's plain threshold "
             "(``offset_``, from its fit rows) and at the conformal threshold calibrated on "
             "the validation images (:doc:`../user_guide/conformal`); both promise 95 % of "
             "the ID images. OOD: the mean share over the OOD sets (lower is better).", ""]
    if p is not None:
        lines.append(f"- plain threshold: {_pct(p['lowest'])} to {_pct(p['highest'])} % "
                     f"of the ID test images (mean {_pct(p['mean'])}); {p['within_1pt']} of "
                     f"{p['n_rows']} rows within 1 point of 95 %")
    if c is not None:
        line = (f"- conformal threshold: {_pct(c['lowest'])} to {_pct(c['highest'])} % "
                f"(mean {_pct(c['mean'])}); {c['within_1pt']} of {c['n_rows']} rows within "
                "1 point of 95 %")
        if "sd" in c:
            line += (f", {c['within_2sd']} within two standard deviations of the sampling "
                     f"of calibration and test images ({100 * c['sd']:.2f} points each)")
        lines.append(line)
    lines.append("")
    head = ["detector", "ID test: plain", "ID test: conformal", "OOD: plain", "OOD: conformal"]
    rows = []
    for name in sorted(accepted, key=str.lower):
        if name.startswith(CHOSEN_NAME):
            continue
        a = accepted[name]
        cells = []
        for kind in ("plain", "conformal"):
            shares = a[kind]
            cells.append(_pct(None if shares is None else shares["ID test"]))
        for kind in ("plain", "conformal"):
            shares = a[kind]
            ood = None if shares is None else \
                sum(shares[s] for s in run["ood_sets"]) / len(run["ood_sets"])
            cells.append(_pct(ood))
        rows.append([name, cells[0], cells[1], cells[2], cells[3]])
    return lines + _list_table(head, rows)


#: The papers' claims checked on the CIFAR-10 preset: each a title, what the paper claims
#: and how our rows test it, and the pairs of rows compared (``A``, ``B``: "is A better?").
CLAIMS = [
    ("NAN: Negative-Aware Norm (Park et al., ICCV 2023)",
     "The paper finds that dividing a map's L1 norm by its number of active units (the "
     "sparsity term) separates OOD better than the L1 norm alone (its Table 5), that NAN "
     "alone is close to KNN and above Mahalanobis, Energy and MSP, and that rescaling a "
     "KNN or a Mahalanobis-type score (SSD in the paper, plain Mahalanobis here) by NAN "
     "improves it (its Table 3). *NegativeAwareNorm (L1 only)* is "
     "``NegativeAwareNorm(divide_by_active=False)`` on the same map.",
     [("NegativeAwareNorm", "NegativeAwareNorm (L1 only)"),
      ("NegativeAwareNorm", "KNN"), ("NegativeAwareNorm", "Mahalanobis"),
      ("NegativeAwareNorm", "Energy"), ("NegativeAwareNorm", "MaxSoftmax"),
      ("KNN+NegativeAwareNorm", "KNN"), ("Mahalanobis+NegativeAwareNorm", "Mahalanobis")]),
    ("Block selection: FeatureNorm and NormRatio (Yu et al., CVPR 2023)",
     "The paper selects the block whose FeatureNorm separates ID images from their jigsaw "
     "puzzles best (NormRatio) and claims that FeatureNorm of that block beats FeatureNorm "
     "of the last block and lowers FPR95 against the logit-based scores.",
     [("BlockSelection", "FeatureNorm"), ("BlockSelection", "MaxSoftmax"),
      ("BlockSelection", "Energy")]),
    ("L2-normalised features and neural collapse (Haas et al., TMLR 2023)",
     "The paper claims, qualitatively, that training with an L2-normalised penultimate "
     "feature makes a class-conditional Gaussian density (DDU's GDA, our "
     ":class:`~sklearn_ood.GaussianDensity`) a better OOD detector at comparable accuracy, "
     "and that the density belongs on the normalised feature. The two models of the preset "
     "were trained identically except for the normalisation.",
     [("GaussianDensity (L2 model)", "GaussianDensity"),
      ("GaussianDensity (L2 model)", "GaussianDensity (L2 model, pre-norm h)")]),
    ("NAP-E against Energy (Wan et al., arXiv 2402.18162)",
     "The paper combines its activation prior with the energy score (NAP-E, weight 0.4) and "
     "reports it above Energy on CIFAR-10, near-OOD (CIFAR-100) included, with a "
     "DenseNet-101 rather than a ResNet-18.",
     [("NAP-E (w=0.4)", "Energy"), ("NAP", "Energy"),
      ("NAP-E (w=0.4), tuned (pseudo-OOD)", "Energy")]),
    ("LINe against ReAct and DICE (Ahn et al., CVPR 2023)",
     "The paper claims that masking the important neurons and weights (LINe) beats "
     "clipping (ReAct) and weight sparsification (DICE). LINe runs with the CIFAR defaults "
     "of the authors' code; the tuned rows chose their knobs on pseudo-OOD.",
     [("LINe", "ReAct"), ("LINe", "DICE"),
      ("LINe, tuned (pseudo-OOD)", "ReAct, tuned (pseudo-OOD)"),
      ("LINe, tuned (pseudo-OOD)", "DICE, tuned (pseudo-OOD)")]),
]
#: The baselines that OpenOOD v1.5 also reports for a CIFAR-10 ResNet-18.
OPENOOD_BASELINES = ["KNN", "ViM", "ReAct", "Energy", "MaxSoftmax"]


def _diff_cell(a, b, metric):
    if a[metric] is None or b[metric] is None:
        return "-"
    return f"{_pct(a[metric])} / {_pct(b[metric])} ({100 * (a[metric] - b[metric]):+.1f})"


def claim_table(run, pairs):
    """``(head, rows, missing)``: per pair of rows present in the run, A / B (A - B) by
    AUROC and FPR95 on each averaged column, and where A is better; ``missing`` lists the
    pairs left out because a row is not in the run."""
    metrics = _metrics(run)
    columns = _columns(run)
    names = [c.removesuffix(GROUP_SUFFIX).replace("average", "avg") for c in columns]
    head = (["A vs B"] + [f"{n} {m} A / B (A - B)" for n in names for m in ("AUROC", "FPR95")]
            + ["A better on"])
    rows, missing = [], []
    for a, b in pairs:
        if a not in metrics or b not in metrics:
            missing.append((a, b))
            continue
        cells, better = [], []
        for column, name in zip(columns, names):
            ma, mb = metrics[a][column], metrics[b][column]
            cells += [_diff_cell(ma, mb, "auroc"), _diff_cell(ma, mb, "fpr95")]
            if ma["auroc"] > mb["auroc"]:
                better.append(f"{name} AUROC")
            if ma["fpr95"] < mb["fpr95"]:
                better.append(f"{name} FPR95")
        rows.append([f"{a} vs {b}", *cells, ", ".join(better) or "nothing"])
    return head, rows, missing


def claims_page(folder):
    """The papers' claims, compared on the rows of the CIFAR-10 preset's result files."""
    lines = ["Do the papers' claims hold?", "===========================", "",
             "Each seed paper's comparison re-run on the papers' own ID set, CIFAR-10, "
             "with the rows of the ``cifar10-resnet18`` preset (:doc:`results`). The "
             "setting is not the papers': the models are ResNet-18 of width 16 (a "
             "128-d feature, where the papers use width 64) trained for 20 epochs, and "
             "the OOD sets are TinyImageNet (near-OOD), Textures and MNIST (far-OOD) "
             "instead of the papers' CIFAR-100, SVHN, LSUN, iSUN or Places. A claim that "
             "holds here holds for a weaker model on other OOD sets; one that fails may "
             "still hold in the paper's setting.", "",
             "How to read a table: each line compares row *A* with row *B* of the results "
             "table; a cell gives A / B and the difference A - B, in %, for AUROC (higher is "
             "better) and FPR95 (lower is better) on each group's average and on the "
             "average over all sets. *A better on* lists the columns where A beats B; a "
             "claim that A beats B holds where it lists them all.", ""]
    run = load_results(folder)
    if run is None:
        return "\n".join(lines + _missing(CLAIMS_PRESET)) + "\n"
    info = run["info"]
    lines += [f"Rows from the run of {run['date']}::", "", f"   {run['command']}", "",
              f"ID test accuracy {100 * info['accuracy']:.2f} %"
              + (f" (L2-normalised model {100 * info['accuracy_l2']:.2f} %)"
                 if info.get("accuracy_l2") is not None else "") + ".", ""]
    for title, text, pairs in CLAIMS:
        lines += [title, "-" * len(title), "", text, ""]
        head, rows, missing = claim_table(run, pairs)
        if rows:
            lines += _list_table(head, rows)
        for a, b in missing:
            lines += [f"*{a}* vs *{b}*: not compared, the run has no row "
                      f"*{a if a not in _metrics(run) else b}*.", ""]
        if "neural collapse" in title and info.get("nc1"):
            lines += ["Neural collapse NC1 of the fit set's penultimate features (lower is "
                      "more collapsed; :func:`~sklearn_ood.neural_collapse`): "
                      + ", ".join(f"{kind} model {value:.3f}"
                                  for kind, value in info["nc1"].items()) + ".", ""]
    title = "The shared baselines against OpenOOD v1.5"
    lines += [title, "-" * len(title), "",
              "OpenOOD v1.5 publishes these baselines for a CIFAR-10 ResNet-18 (width 64, "
              "trained for 100 epochs) on near-OOD CIFAR-100 and TinyImageNet and far-OOD "
              "MNIST, SVHN, Textures and Places365 (``results/cifar10.csv`` of its "
              "repository). Our rows of the same detectors, ranked by average FPR95 among "
              "all rows of the run; compare their order, not their values, with OpenOOD's.", ""]
    metrics = _metrics(run)
    order = sorted(metrics, key=lambda n: _fpr_key(metrics[n]))
    columns = _columns(run)
    head = ["detector", "rank"] + [f"{c.removesuffix(GROUP_SUFFIX)} AUROC / FPR95"
                                   for c in columns]
    rows = [[n, str(order.index(n) + 1)]
            + [f"{_pct(metrics[n][c]['auroc'])} / {_pct(metrics[n][c]['fpr95'])}"
               for c in columns] for n in OPENOOD_BASELINES if n in metrics]
    lines += _list_table(head, rows)
    return "\n".join(lines) + "\n"


def selection_page(results_dir):
    """How well pseudo-OOD chose on each preset (:func:`selection_table.rst`)."""
    lines = []
    for preset in PRESETS:
        folder = Path(results_dir) / preset
        if load_results(folder) is None:
            lines += [f"**{preset}**", ""] + _missing(preset)
        else:
            lines += [selection_table.rst([str(folder)], n_why=8), ""]
    return "\n".join(lines) + "\n"


def write_pages(srcdir):
    """Write the generated pages into ``srcdir/generated``; a file only when it changed."""
    folder = Path(srcdir) / "generated"
    folder.mkdir(exist_ok=True)
    results = Path(srcdir) / "results"
    pages = {"detectors": detectors_page(),
             "performance": performance_page([Path(srcdir) / p for p in PERFORMANCE_RESULTS]),
             "results": results_page(results),
             "papers": claims_page(results / CLAIMS_PRESET),
             "selection": selection_page(results)}
    for name, text in pages.items():
        path = folder / f"{name}.rst"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def setup(app):
    app.connect("config-inited", lambda app, config: write_pages(app.srcdir))
    return {"parallel_read_safe": True}
