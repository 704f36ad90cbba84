"""Tables (Markdown, CSV) of a :class:`~.result.BenchmarkResult`, and :func:`write_report`.

The plots (PNG) are drawn by :mod:`~sklearn_ood.benchmark.plots`; the tables
need nothing beyond NumPy.
"""

import csv
import json
import os

import numpy as np

from .plots import plot_histograms, plot_roc_curves, plot_summary
from .result import GROUP_SUFFIX, METRIC_COLUMNS, decision_summary

__all__ = [
    "CSV_COLUMNS", "markdown_report", "summary_table", "write_csv", "write_report",
    "write_selection",
]

CSV_COLUMNS = ("detector", "ood_set", *METRIC_COLUMNS, "fit_s", "score_s")
_LABELS = {"auroc": "AUROC", "fpr95": "FPR95", "aupr_in": "AUPR-In", "aupr_out": "AUPR-Out"}


# ----------------------------------------------------------------------- tables
def write_csv(rows, path):
    """One line per detector x OOD set (and ``average``); metrics as fractions.

    Examples
    --------
    >>> import io, os, tempfile
    >>> from sklearn_ood.benchmark.report import write_csv
    >>> row = dict(detector="Energy", ood_set="average", auroc=0.9, fpr95=0.25,
    ...            aupr_in=0.8, aupr_out=0.85, fit_s=0.01, score_s=0.02)
    >>> path = os.path.join(tempfile.mkdtemp(), "results.csv")
    >>> write_csv([row], path)
    >>> print(open(path).read().splitlines()[1])
    Energy,average,0.900000,0.250000,0.800000,0.850000,0.010000,0.020000
    """
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({
                k: f"{row[k]:.6f}" if isinstance(row[k], float) else row[k]
                for k in CSV_COLUMNS
            })


def _pct(x):
    return f"{100 * x:.1f}"


def _by_detector(rows):
    out = {}
    for row in rows:
        out.setdefault(row["detector"], {})[row["ood_set"]] = row
    return out


def summary_table(result):
    """Markdown: per OOD set ``AUROC / FPR95`` (%), then the averages and the times.

    When the ID set groups its OOD sets (OpenOOD's near- and far-OOD), each
    group's average ``AUROC / FPR95`` (e.g. a "near avg" column) comes before
    the overall averages. The best average AUROC and FPR95 are in bold,
    unless the model's accuracy is near chance (``info["near_chance"]``).
    """
    table = _by_detector(result.rows)
    if not table:
        return "(no row: every detector asked for was skipped or failed, see below)"
    groups = list(result.config.get("ood_groups") or {})
    avgs = {name: sets["average"] for name, sets in table.items()}
    ranked = not result.info.get("near_chance")
    best_auc = max(r["auroc"] for r in avgs.values()) if ranked else None
    best_fpr = min(r["fpr95"] for r in avgs.values()) if ranked else None
    head = (["detector"] + [f"{o} AUROC↑/FPR95↓" for o in result.ood_sets]
            + [f"{g} avg AUROC↑/FPR95↓" for g in groups]
            + ["avg AUROC↑", "avg FPR95↓", "avg AUPR-In↑", "avg AUPR-Out↑",
               "fit s", "score s"])
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for name, sets in table.items():
        avg = sets["average"]
        auc, fpr = _pct(avg["auroc"]), _pct(avg["fpr95"])
        if ranked and np.isclose(avg["auroc"], best_auc):
            auc = f"**{auc}**"
        if ranked and np.isclose(avg["fpr95"], best_fpr):
            fpr = f"**{fpr}**"
        cells = ([name] + [f"{_pct(sets[o]['auroc'])} / {_pct(sets[o]['fpr95'])}"
                           for o in [*result.ood_sets, *(g + GROUP_SUFFIX for g in groups)]]
                 + [auc, fpr, _pct(avg["aupr_in"]), _pct(avg["aupr_out"]),
                    f"{avg['fit_s']:.2f}", f"{avg['score_s']:.2f}"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail_table(result):
    """Markdown: every metric of every detector x OOD set (%)."""
    lines = ["| detector | OOD set | AUROC↑ | FPR95↓ | AUPR-In↑ | AUPR-Out↑ |",
             "|---|---|---:|---:|---:|---:|"]
    for row in result.rows:
        lines.append("| " + " | ".join(
            [row["detector"], row["ood_set"]] + [_pct(row[m]) for m in METRIC_COLUMNS]) + " |")
    return "\n".join(lines)


_SOURCE_LABELS = {"held_out": "held-out classes", "jigsaw": "jigsaw", "noise": "noise",
                  "blur": "blur", "permute": "permute"}


def _pseudo_table(result):
    """Per row: its tuned parameters, pseudo-OOD FPR95 per source, the rule's rank, and
    the real FPR95 (averages: groups, then all) for comparison."""
    pseudo = result.info.get("pseudo") or {}
    if not pseudo:
        return ""
    sources = result.info["sources"]
    table = _by_detector(result.rows)
    groups = list(result.config.get("ood_groups") or {})
    selection = result.info["selection"]
    order = sorted(selection, key=selection.get)
    rank = {name: order.index(name) + 1 for name in selection}
    head = (["detector", "tuned parameters"]
            + [f"{_SOURCE_LABELS.get(s, s)} FPR95↓" for s in sources]
            + ["rule rank↓"] + [f"real {g} FPR95↓" for g in groups]
            + ["real avg FPR95↓", "real avg AUROC↑"])
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---", "---"] + ["---:"] * (len(head) - 2)) + "|"]
    for name, m in pseudo.items():
        params = result.info["tuned"].get(name)
        params = ", ".join(f"{k}={v}" for k, v in params.items()) if params else "(defaults)"
        sets = table[name]
        cells = ([name, params] + [_pct(m[s]["fpr95"]) for s in sources] + [str(rank[name])]
                 + [_pct(sets[g + GROUP_SUFFIX]["fpr95"]) for g in groups]
                 + [_pct(sets["average"]["fpr95"]), _pct(sets["average"]["auroc"])])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_selection(result, path):
    """``selection.json``: what the pseudo-OOD selection saw, for tables across runs.

    Holds the run's ID set, OOD sets and groups, the validation images, the
    sources, the rule and the held-out class splits, the chosen row and, per
    row, its tuned parameters, per-source pseudo-OOD metrics and the rule's
    value. The real-OOD metrics of the rows are in ``results.csv``.
    """
    info = result.info
    rows = {name: {"params": {k: repr(v) for k, v in info["tuned"].get(name, {}).items()},
                   "pseudo": m, "rule": info["selection"][name]}
            for name, m in info["pseudo"].items()}
    doc = {"id_set": result.config["id_set"], "ood_sets": result.ood_sets,
           "ood_groups": result.config.get("ood_groups") or {},
           "validation": info.get("validation", ""), "sources": info["sources"],
           "rule": info["rule"], "held_out": info["held_out"], "chosen": info["chosen"],
           "rows": rows}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)


def _not_run_table(result):
    """Markdown: each skipped or failed row with its reason ("" when every row ran)."""
    rows = [(name, status, reason) for status in ("skipped", "failed")
            for name, reason in result.info.get(status, {}).items()]
    if not rows:
        return ""
    return "\n".join(["| row | status | reason |", "|---|---|---|"] + [
        f"| {name} | {status} | {reason.replace('|', '/')} |" for name, status, reason in rows])


def decisions_table(result):
    """Markdown: per row, the share of ID test and of each OOD set accepted at the plain
    and the conformal threshold ("" without decisions)."""
    accepted = result.info.get("accepted")
    if not accepted:
        return ""
    sets = ["ID test", *result.ood_sets]
    head = "| row | " + " | ".join(f"{s} plain | {s} conformal" for s in sets) + " |"
    lines = [head, "|---|" + "---:|" * (2 * len(sets))]
    for name, a in accepted.items():
        cells = []
        for s in sets:
            for kind in ("plain", "conformal"):
                share = None if a[kind] is None else a[kind].get(s)
                cells.append("--" if share is None else f"{100 * share:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def decision_line(result):
    """Sentences: the lowest, mean and highest ID test acceptance over the rows, and how
    many rows are within one point (and two sampling standard deviations) of it."""
    info = result.info
    summary = decision_summary(info["accepted"], info.get("thresholds"))
    parts = []
    for kind, s in summary.items():
        if s is None:
            continue
        text = (f"{kind} threshold {100 * s['lowest']:.1f} / {100 * s['mean']:.1f} / "
                f"{100 * s['highest']:.1f} %, {s['within_1pt']} of {s['n_rows']} rows within "
                "1 point of the promise")
        if kind == "conformal" and "sd" in s:
            text += (f", {s['within_2sd']} within two standard deviations of the "
                     f"calibration and test draw ({100 * s['sd']:.2f} points)")
        parts.append(text)
    return "ID test images accepted over the rows (lowest / mean / highest): " + \
        "; ".join(parts) + "."


def header_lines(result):
    """The run's settings, model accuracy and timings as Markdown bullet lines."""
    c, info = result.config, result.info
    lines = [
        f"- ID set: **{c['id_set']}**; OOD sets: {', '.join(result.ood_sets)}",
        *(["- OOD paths: " + ", ".join(f"{k} = {v}" for k, v in c["ood_paths"].items())]
          if c.get("ood_paths") else []),
        (f"- model: {c['model']} (blocks {', '.join(c['blocks'])}; head {c['head']}), "
         + (f"loaded from {c['weights']}" if c["weights"] else "the factory's own parameters")
         + " (no training)" if c.get("blocks") else
         f"- model: {c['model']} (width {c['width']}), "
         + (f"loaded from {c.get('models_dir')} (no training)" if c.get("models_dir") else
           f"loaded from {c['weights']}" if c["weights"] else
           f"{c['epochs']} epochs, batch size {c['batch_size']}, augmentation "
           f"{c['augment']}, seed {c['seed']}")),
        "- images: " + ", ".join(f"{k} {v}" for k, v in info["n_images"].items()),
        *([f"- validation (pseudo-OOD tuning, calibrating statistics, conformal "
           f"thresholds): {info['validation']}"]
          if info.get("validation") else []),
        f"- ID test accuracy: plain model {100 * info['accuracy']:.2f} %"
        + (f", L2 model {100 * info['accuracy_l2']:.2f} %" if "accuracy_l2" in info else ""),
        *([f"- **Warning**: {info['near_chance']}"] if info.get("near_chance") else []),
        *(["- OOD groups: " + "; ".join(f"{g} {', '.join(sets)}"
                                          for g, sets in c["ood_groups"].items())]
          if c.get("ood_groups") else []),
        *(["- neural collapse NC1 (fit-set fc inputs, lower = more collapsed): "
           + ", ".join(f"{kind} model {v:.3f}" for kind, v in info["nc1"].items())]
          if info.get("nc1") else []),
        "- time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in info["timings"].items()),
    ]
    return lines


def markdown_report(result):
    """The full ``results.md``: settings, summary table, tuning table, all metrics."""
    parts = ["# sklearn-ood benchmark", "", *header_lines(result), "",
             "Metrics in %. FPR95: fraction of OOD accepted at 95 % ID true-positive rate "
             "(ID positive). fit s / score s: detector fit on the ID fit features / scoring "
             "of the ID test and all OOD sets (feature extraction excluded; tuned rows "
             "include the search).", "", summary_table(result), ""]
    not_run = _not_run_table(result)
    if not_run:
        parts += ["## Rows not run", "",
                  "Skipped: the detector needs what the model lacks. Failed: its fit, scoring "
                  "or search raised. The other rows are not affected.", "", not_run, ""]
    pseudo = _pseudo_table(result)
    if pseudo:
        info = result.info
        parts += ["## Pseudo-OOD tuning", "",
                  "No OOD data: each row's FPR95 on each pseudo-OOD source -- held-out "
                  "classes (the detector fitted without them, head restricted, "
                  f"{len(info['held_out'])} class splits: "
                  + "; ".join(" ".join(map(str, h)) for h in info["held_out"])
                  + ") and the validation images vs their jigsaw puzzles, noisy, blurred "
                  "and pixel-permuted copies. Rule: each candidate's worst rank over the "
                  "sources (ties: the mean rank); \"rule rank\" orders the rows by it, "
                  f"the first is chosen: **{info['chosen']}**. The real FPR95 columns are "
                  "for comparison only.", "", pseudo, ""]
    decisions = decisions_table(result)
    if decisions:
        parts += ["## Decisions", "",
                  "Share in % of each set that `predict` accepts (+1) at the row's plain "
                  "threshold (`offset_`, from its fit rows) and at the conformal threshold "
                  "calibrated on the validation images (never trained on; "
                  "`ConformalDetector`), both promising to accept 95 % of ID inputs "
                  "(`contamination=0.05`). OOD columns: lower is better.", "",
                  decision_line(result), "", decisions, ""]
    if result.info["notes"]:
        parts += ["## Notes", ""] + [f"- {n}" for n in result.info["notes"]] + [""]
    parts += ["## All metrics", "", detail_table(result), ""]
    return "\n".join(parts)


def write_report(result, out_dir, *, plots=True, command=None):
    """Write ``results.md``, ``results.csv``, ``results.json``, ``selection.json`` (with
    tuning) and (unless ``plots=False``) the PNGs.

    ``command`` (the command line that ran, with its paths replaced by
    placeholders) is recorded in ``results.json``. Returns the written paths.
    """
    os.makedirs(out_dir, exist_ok=True)
    md, csv_path = os.path.join(out_dir, "results.md"), os.path.join(out_dir, "results.csv")
    with open(md, "w") as f:
        f.write(markdown_report(result))
    write_csv(result.rows, csv_path)
    paths = [md, csv_path, os.path.join(out_dir, "results.json")]
    write_json(result, paths[-1], command=command)
    if result.info.get("pseudo"):
        paths.append(os.path.join(out_dir, "selection.json"))
        write_selection(result, paths[-1])
    if plots and result.rows:
        paths += plot_summary(result, out_dir)
        paths += plot_roc_curves(result, out_dir)
        paths += plot_histograms(result, out_dir)
    return paths


#: ``results.json`` leaves these ``info`` entries to ``selection.json``.
_JSON_INFO_LEFT_OUT = ("pseudo", "selection")
#: Settings holding paths, and the placeholder ``results.json`` writes instead.
PATH_PLACEHOLDERS = {"data_dir": "DATA", "models_dir": "MODELS", "weights": "WEIGHTS",
                     "val": "VAL", "ood_paths": "OOD_PATH"}


def write_json(result, path, *, command=None):
    """``results.json``: the run's command, date, version, settings, info and rows.

    The record a results page is generated from. Paths of the machine that
    ran (data, models, weights, validation and OOD files) are replaced by
    placeholders (:data:`PATH_PLACEHOLDERS`), so the file can be published.

    Examples
    --------
    >>> import json, os, tempfile
    >>> from sklearn_ood.benchmark.report import write_json
    >>> from sklearn_ood.benchmark.result import BenchmarkResult, metric_rows
    >>> rows = metric_rows("Energy", {"ID test": [3.0, 2.0], "a": [1.0]}, 0.1, 0.2)
    >>> result = BenchmarkResult(rows=rows, scores={}, ood_sets=["a"],
    ...                          config={"id_set": "digits", "data_dir": "shared/data"},
    ...                          info={"accuracy": 0.97})
    >>> path = os.path.join(tempfile.mkdtemp(), "results.json")
    >>> write_json(result, path, command="sklearn-ood benchmark")
    >>> doc = json.load(open(path))
    >>> doc["config"], doc["rows"][0]["auroc"], doc["info"]
    ({'id_set': 'digits', 'data_dir': 'DATA'}, 1.0, {'accuracy': 0.97})
    """
    from datetime import datetime, timezone

    from .. import __version__

    config = dict(result.config)
    for key, placeholder in PATH_PLACEHOLDERS.items():
        if config.get(key):
            config[key] = placeholder
    doc = {"command": command, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "version": __version__, "config": config, "ood_sets": list(result.ood_sets),
           "info": {k: v for k, v in result.info.items() if k not in _JSON_INFO_LEFT_OUT},
           "rows": result.rows}
    text = json.dumps(doc, indent=1, default=_jsonable)
    for key in PATH_PLACEHOLDERS:
        for value in _paths(result.config.get(key)):
            text = text.replace(json.dumps(value)[1:-1], PATH_PLACEHOLDERS[key])
    with open(path, "w") as f:
        f.write(text)


def _paths(value):
    """The machine paths in a setting, longest first: a bare name such as ``data`` is
    no machine path, and replacing it in the text would also rewrite keys and words."""
    if not value:
        return []
    values = value.values() if isinstance(value, dict) else \
        value if isinstance(value, (list, tuple)) else [value]
    return sorted({os.fspath(v) for v in values if v and os.sep in os.fspath(v)},
                  key=len, reverse=True)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
