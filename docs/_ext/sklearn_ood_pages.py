"""Write the documentation pages that are generated, not typed (``docs/generated/``).

Sphinx loads this extension from ``conf.py``; on ``config-inited``, before the
source files are listed, it writes the detector list from the registry
(:func:`sklearn_ood.discovery.describe_detectors`), so the page lists every
detector with what its class declares; and the performance page from the
result files of ``perf/bench_vs_pytorch_ood.py`` (``perf/vs_pytorch_ood*.json``),
so its tables are the ones the runs wrote, with each run's command and date.
"""

import json
from pathlib import Path

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
             "for KNN; Gram computes its leave-one-out scores inside its fit);",
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


def write_pages(srcdir):
    """Write the generated pages into ``srcdir/generated``; a file only when it changed."""
    folder = Path(srcdir) / "generated"
    folder.mkdir(exist_ok=True)
    pages = {"detectors": detectors_page(),
             "performance": performance_page([Path(srcdir) / p for p in PERFORMANCE_RESULTS])}
    for name, text in pages.items():
        path = folder / f"{name}.rst"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def setup(app):
    app.connect("config-inited", lambda app, config: write_pages(app.srcdir))
    return {"parallel_read_safe": True}
