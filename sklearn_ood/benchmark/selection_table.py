"""How well pseudo-OOD chose, per benchmark run: a table from the runs' result files.

``python -m sklearn_ood.benchmark.selection_table [--rst] DIR [DIR ...]`` reads the
``selection.json`` and ``results.csv`` that ``sklearn-ood benchmark`` wrote to
each ``--out`` folder and prints, per run, for each pseudo-OOD source alone
and for the run's rule: the row it chooses among all rows (default and tuned;
the last, repeated row left out), that row's rank among them by real-OOD
average FPR95 and AUROC (and per OOD group, and over the OOD sets added to the
ID set's groups, e.g. by ``--ood``), its gap to the best row, and the
Spearman correlation between the pseudo-OOD FPR95 and the real average FPR95
across the rows. A source alone chooses the row with its lowest FPR95 (ties:
AUROC); the tuned rows are the rule's. No OOD data enters any choice: the real
metrics only judge it. With ``--why N``, a second table per run shows why: the
``N`` best rows on real OOD and the chosen row, with each source's FPR95 and
rank among all rows.
"""

import argparse
import csv
import json
import os
import sys

import numpy as np
from scipy.stats import spearmanr

from .result import CHOSEN_NAME, GROUP_SUFFIX, TUNED_SUFFIX

__all__ = ["choices", "load_run", "main", "markdown", "rst", "why"]


def load_run(out_dir):
    """``(selection, real)``: the run's ``selection.json`` and, per row, its real
    metrics by OOD set (``"average"``, ``"near average"``, ...) from ``results.csv``."""
    with open(os.path.join(out_dir, "selection.json")) as f:
        selection = json.load(f)
    real = {}
    with open(os.path.join(out_dir, "results.csv"), newline="") as f:
        for row in csv.DictReader(f):
            if not row["detector"].startswith(CHOSEN_NAME):
                real.setdefault(row["detector"], {})[row["ood_set"]] = {
                    "auroc": float(row["auroc"]), "fpr95": float(row["fpr95"])}
    others = _other_sets(selection)
    for metrics in real.values():
        if others and all(s in metrics for s in others):
            metrics[OTHER + GROUP_SUFFIX] = {
                m: float(np.mean([metrics[s][m] for s in others])) for m in ("auroc", "fpr95")}
    return selection, real


#: The column of the OOD sets of a run that are in none of its ID set's groups
#: (e.g. ``--ood`` adds sets to a preset's near- and far-OOD): the check of a
#: choice on OOD sets the preset (and whoever designed the rule on it) never used.
OTHER = "other sets"


def _other_sets(selection):
    groups = selection.get("ood_groups") or {}
    grouped = {s for sets in groups.values() for s in sets}
    return [s for s in selection.get("ood_sets", []) if groups and s not in grouped]


def _columns(selection):
    """The averaged columns: each OOD group, the other sets (if any), then all sets."""
    return ([g + GROUP_SUFFIX for g in selection["ood_groups"]]
            + ([OTHER + GROUP_SUFFIX] if _other_sets(selection) else []) + ["average"])


def _rank_and_gap(real, names, chosen, column, metric):
    values = np.array([real[n][column][metric] for n in names])
    value = real[chosen][column][metric]
    if metric == "fpr95":
        return int(np.sum(values < value)) + 1, 100 * (value - values.min())
    return int(np.sum(values > value)) + 1, 100 * (values.max() - value)


def choices(selection, real):
    """One dict per chooser (each source, then ``"rule"``): the chosen row, its rank and
    gap by real FPR95 and AUROC per column (groups, then ``"average"``), Spearman."""
    names = list(selection["rows"])
    rows = selection["rows"]
    columns = _columns(selection)
    avg_fpr = [real[n]["average"]["fpr95"] for n in names]
    out = []
    for source in [*selection["sources"], "rule"]:
        if source == "rule":
            chosen = selection["chosen"]
            pseudo = [rows[n]["rule"] for n in names]
        else:
            m = [rows[n]["pseudo"][source] for n in names]
            key = [(np.inf if np.isnan(x["fpr95"]) else x["fpr95"],
                    -np.nan_to_num(x["auroc"], nan=-np.inf)) for x in m]
            chosen = names[min(range(len(names)), key=key.__getitem__)]
            pseudo = [x["fpr95"] for x in m]
        entry = {"source": source, "chosen": chosen, "n_rows": len(names),
                 "spearman": float(spearmanr(pseudo, avg_fpr, nan_policy="omit")[0])}
        for column in columns:
            for metric in ("fpr95", "auroc"):
                entry[column, metric] = _rank_and_gap(real, names, chosen, column, metric)
                entry[column, metric, "value"] = 100 * real[chosen][column][metric]
        out.append(entry)
    return out


def _tuned_vs_default(selection, real):
    """Mean real average FPR95 and AUROC of the tuned rows minus their default rows."""
    tuned = [n for n in selection["rows"] if n.endswith(TUNED_SUFFIX)]
    d = [[real[n]["average"][m] - real[n[:-len(TUNED_SUFFIX)]]["average"][m]
          for m in ("fpr95", "auroc")] for n in tuned]
    return len(tuned), 100 * np.mean(d, axis=0) if tuned else (np.nan, np.nan)


def _tables(out_dirs):
    """Per run: its caption, the column labels and one list of cells per chooser."""
    for out_dir in out_dirs:
        selection, real = load_run(out_dir)
        columns = _columns(selection)
        labels = ([f"{c.removesuffix(GROUP_SUFFIX)} FPR95 / AUROC (rank, gap)"
                   for c in columns[:-1]] + ["avg FPR95 / AUROC (rank, gap)"])
        n_tuned, (d_fpr, d_auc) = _tuned_vs_default(selection, real)
        entries = choices(selection, real)
        caption = (f"{selection['id_set']} (OOD: {', '.join(selection['ood_sets'])}; "
                   f"{entries[0]['n_rows']} rows; {n_tuned} tuned rows vs their default "
                   f"rows: {d_fpr:+.1f} FPR95, {d_auc:+.1f} AUROC on average)")
        rows = []
        for e in entries:
            cells = []
            for column in columns:
                (rf, gf), (ra, ga) = e[column, "fpr95"], e[column, "auroc"]
                cells.append(f"{e[column, 'fpr95', 'value']:.1f} / "
                             f"{e[column, 'auroc', 'value']:.1f} (#{rf}, +{gf:.1f} / "
                             f"#{ra}, -{ga:.1f})")
            name = ("rule: " + selection["rule"] if e["source"] == "rule"
                    else e["source"] + " alone")
            rows.append([name, e["chosen"], *cells, f"{e['spearman']:+.2f}"])
        yield caption, ["chooser", "chosen row", *labels, "Spearman"], rows


def why(selection, real, n):
    """The ``n`` best rows by real average FPR95, then the chosen row (when not among
    them): their real FPR95 per group and on average, then each source's FPR95 and
    the row's rank by it among all rows (ties: AUROC), and the worst of those ranks.

    Returns
    -------
    head : list of str
    rows : list of list of str
    """
    names = list(selection["rows"])
    sources = selection["sources"]
    columns = _columns(selection)
    ranks = {}
    for source in sources:
        m = [selection["rows"][x]["pseudo"][source] for x in names]
        keys = [(np.inf if np.isnan(v["fpr95"]) else v["fpr95"],
                 -np.nan_to_num(v["auroc"], nan=-np.inf)) for v in m]
        for x, k in zip(names, keys):
            ranks[x, source] = 1 + sum(other < k for other in keys)
    shown = sorted(names, key=lambda x: real[x]["average"]["fpr95"])[:n]
    if selection["chosen"] not in shown:
        shown.append(selection["chosen"])
    head = (["row (real FPR95 rank)"] + [f"real {c.removesuffix(GROUP_SUFFIX)} FPR95"
                                         for c in columns]
            + [f"{s} FPR95 (rank)" for s in sources] + ["worst rank"])
    rows = []
    for x in shown:
        rank = 1 + sum(real[o]["average"]["fpr95"] < real[x]["average"]["fpr95"]
                       for o in names)
        label = f"{x} (#{rank})" + (" **chosen**" if x == selection["chosen"] else "")
        rows.append([label] + [f"{100 * real[x][c]['fpr95']:.1f}" for c in columns]
                    + [f"{100 * selection['rows'][x]['pseudo'][s]['fpr95']:.1f} "
                       f"(#{ranks[x, s]})" for s in sources]
                    + [str(max(ranks[x, s] for s in sources))])
    return head, rows


def markdown(out_dirs, n_why=0):
    """Markdown tables of :func:`choices` (and :func:`why`), one per run folder."""
    parts = []
    for out_dir, (caption, head, rows) in zip(out_dirs, _tables(out_dirs)):
        parts += [f"**{caption}**", "", "| " + " | ".join(head) + " |",
                  "|---|---|" + "---:|" * (len(head) - 2)]
        parts += ["| " + " | ".join(r) + " |" for r in rows] + [""]
        if n_why:
            head, rows = why(*load_run(out_dir), n_why)
            parts += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
            parts += ["| " + " | ".join(r) + " |" for r in rows] + [""]
    return "\n".join(parts)


def _rst_table(caption, head, rows):
    lines = [f".. list-table:: {caption}", "   :header-rows: 1", ""]
    for row in [head, *rows]:
        lines += [f"   * - {row[0]}"] + [f"     - {cell}" for cell in row[1:]]
    return lines + [""]


def rst(out_dirs, n_why=0):
    """reStructuredText list-tables of :func:`choices` (and :func:`why`), per run folder."""
    parts = []
    for out_dir, (caption, head, rows) in zip(out_dirs, _tables(out_dirs)):
        parts += _rst_table(caption, head, rows)
        if n_why:
            selection, real = load_run(out_dir)
            parts += _rst_table(f"{selection['id_set']}: why (the {n_why} best rows on real "
                                "OOD and the chosen row; ranks among all rows)",
                                *why(selection, real, n_why))
    return "\n".join(parts)


def main(argv=None):
    """Print :func:`markdown` (or, with ``--rst``, :func:`rst`) of the run folders."""
    parser = argparse.ArgumentParser(prog="python -m sklearn_ood.benchmark.selection_table",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--rst", action="store_true",
                        help="reStructuredText list-tables (default: Markdown)")
    parser.add_argument("--why", type=int, default=0, metavar="N",
                        help="also tabulate the N best rows on real OOD and the chosen row, "
                             "with each source's FPR95 and rank")
    parser.add_argument("out_dirs", nargs="+", metavar="DIR",
                        help="--out folders of sklearn-ood benchmark runs")
    args = parser.parse_args(argv)
    print((rst if args.rst else markdown)(args.out_dirs, args.why))
    return 0


if __name__ == "__main__":
    sys.exit(main())
