"""The generated documentation pages of the benchmark's results (docs/_ext/sklearn_ood_pages.py),
built from a two-row fixture of the files a run writes."""

import csv
import importlib.util
import json
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
pytestmark = pytest.mark.skipif(not DOCS.is_dir(), reason="docs/ is not installed with the package")

# Two detectors on one near and one far OOD set; fractions, as results.json holds them.
METRICS = {"Energy": {"a": (0.92, 0.40), "b": (0.88, 0.20)},
           "KNN": {"a": (0.70, 0.46), "b": (0.90, 0.10)}}


def _pages():
    spec = importlib.util.spec_from_file_location(
        "_sklearn_ood_pages", DOCS / "_ext" / "sklearn_ood_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(detector, ood_set, auroc, fpr95):
    return dict(detector=detector, ood_set=ood_set, auroc=auroc, fpr95=fpr95, aupr_in=0.5,
                aupr_out=0.5, fit_s=0.1, score_s=0.1)


def _write_run(folder, chosen="Energy"):
    rows = []
    for name, sets in METRICS.items():
        (aa, fa), (ab, fb) = sets["a"], sets["b"]
        rows += [_row(name, "a", aa, fa), _row(name, "b", ab, fb),
                 _row(name, "near average", aa, fa), _row(name, "far average", ab, fb),
                 _row(name, "average", (aa + ab) / 2, (fa + fb) / 2)]
    # the row repeating the chosen one is not a row of its own in the pages
    rows += [dict(r, detector="tuned, method chosen by pseudo-OOD: " + chosen)
             for r in rows if r["detector"] == chosen]
    folder.mkdir(parents=True)
    groups = {"near": ["a"], "far": ["b"]}
    (folder / "results.json").write_text(json.dumps({
        "command": "sklearn-ood benchmark --id fixture --out OUT", "date": "2026-01-02T03:04:05Z",
        "version": "9.9", "config": {"id_set": "fixture", "ood_sets": ["a", "b"],
                                     "ood_groups": groups, "seed": 0},
        "ood_sets": ["a", "b"],
        "info": {"accuracy": 0.875, "timings": {"extract": 1.0},
                 "n_images": {"ID test": 10, "a": 7, "b": 5}, "validation": "4 images",
                 "chosen": chosen, "skipped": {"NAP": "needs maps"}, "failed": {},
                 "thresholds": {n: {"offset": 0.0, "conformal": 0.1, "alpha": 0.05,
                                    "n_calibration": 100, "n_test": 400} for n in METRICS},
                 "accepted": {
                     "Energy": {"plain": {"ID test": 0.90, "a": 0.5, "b": 0.3},
                                "conformal": {"ID test": 0.955, "a": 0.6, "b": 0.4}},
                     "KNN": {"plain": {"ID test": 0.945, "a": 0.2, "b": 0.1},
                             "conformal": None}}},
        "rows": rows}))
    with open(folder / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    pseudo = {"jigsaw": {"fpr95": 0.3, "auroc": 0.8}}
    (folder / "selection.json").write_text(json.dumps({
        "id_set": "fixture", "ood_sets": ["a", "b"], "ood_groups": groups,
        "validation": "4 images", "sources": ["jigsaw"], "rule": "worst_rank", "chosen": chosen,
        "rows": {name: {"params": {}, "pseudo": {"jigsaw": dict(pseudo["jigsaw"], fpr95=f)},
                        "rule": r}
                 for (name, f, r) in [("Energy", 0.2, 1.0), ("KNN", 0.6, 2.0)]}}))


def _table_rows(page):
    """The cells of each list-table row of a page, as lists of strings."""
    rows, current = [], None
    for line in page.splitlines():
        if line.startswith("   * - "):
            current = [line[7:]]
            rows.append(current)
        elif line.startswith("     - ") and current is not None:
            current.append(line[7:])
    return rows


def test_results_page_sorts_by_average_fpr95_and_marks_the_chosen_row(tmp_path):
    pages = _pages()
    preset = next(iter(pages.PRESETS))
    _write_run(tmp_path / preset)
    page = pages.results_page(tmp_path)
    assert "sklearn-ood benchmark --id fixture --out OUT" in page
    assert "2026-01-02T03:04:05Z" in page and "87.50 %" in page
    assert "ID test 10, a 7, b 5" in page and "4 images" in page and "NAP (needs maps)" in page
    assert "- time per stage (s, on the machine that ran it): extract 1.0; 1 in all" in page
    # by average FPR95: KNN (0.46 + 0.10) / 2 = 28.0 % before Energy (0.4 + 0.2) / 2 = 30.0 %,
    # although Energy has the higher average AUROC
    rows = _table_rows(page)
    assert rows[0] == ["rank", "detector", "near AUROC / FPR95", "far AUROC / FPR95",
                       "avg AUROC", "avg FPR95"]
    assert rows[1] == ["1", "KNN", "70.0 / 46.0", "90.0 / 10.0", "80.0", "28.0"]
    assert rows[2] == ["2", "**Energy** (chosen by pseudo-OOD)", "92.0 / 40.0", "88.0 / 20.0",
                       "90.0", "30.0"]
    assert rows[3][0] == "detector"  # the decisions table: the repeated chosen row is not listed
    # a preset without result files names the command that makes them
    other = list(pages.PRESETS)[1]
    assert f"--out docs/results/{other}" in page.split(f"\n{other}\n", 1)[1]


def test_claim_tables_compare_pairs_and_name_the_missing_ones(tmp_path):
    pages = _pages()
    _write_run(tmp_path / "run", chosen="KNN")
    run = pages.load_results(tmp_path / "run")
    head, rows, missing = pages.claim_table(run, [("Energy", "KNN"), ("Energy", "NAP")])
    assert head[0] == "A vs B" and head[-1] == "A better on"
    assert rows == [["Energy vs KNN", "92.0 / 70.0 (+22.0)", "40.0 / 46.0 (-6.0)",
                     "88.0 / 90.0 (-2.0)", "20.0 / 10.0 (+10.0)", "90.0 / 80.0 (+10.0)",
                     "30.0 / 28.0 (+2.0)", "near AUROC, near FPR95, avg AUROC"]]
    assert missing == [("Energy", "NAP")]


def test_selection_page_is_the_selection_table_of_each_preset(tmp_path):
    pages = _pages()
    preset = next(iter(pages.PRESETS))
    _write_run(tmp_path / preset)
    page = pages.selection_page(tmp_path)
    rows = _table_rows(page)
    # the rule's choice, Energy, and the run's real metrics of it
    assert ["rule: worst_rank", "Energy"] == rows[2][:2] and rows[2][4].startswith("30.0 / 90.0")
    assert "Energy (#2) **chosen**" in page
    assert "No result files yet" in page  # the other presets


def test_results_page_shows_each_rows_decisions(tmp_path):
    pages = _pages()
    preset = next(iter(pages.PRESETS))
    _write_run(tmp_path / preset)
    page = pages.results_page(tmp_path)
    rows = _table_rows(page)
    i = rows.index(["detector", "ID test: plain", "ID test: conformal", "OOD: plain",
                    "OOD: conformal"])
    # OOD: the mean over the sets a and b; KNN has no conformal threshold
    assert rows[i + 1] == ["Energy", "90.0", "95.5", "40.0", "50.0"]
    assert rows[i + 2] == ["KNN", "94.5", "-", "15.0", "-"]
    # sd = sqrt(0.05 * 0.95 * (1 / 102 + 1 / 400)) = 2.42 points; Energy is 0.5 from 95
    assert "90.0 to 94.5 % of the ID test images (mean 92.2); 1 of 2 rows within 1" in page
    assert "1 of 1 rows within 1 point of 95 %, 1 within two standard deviations" in page
    assert "(2.42 points each)" in page


def test_the_claims_compare_rows_the_benchmark_has():
    from sklearn_ood.benchmark.result import TUNED_SUFFIX
    from sklearn_ood.benchmark.specs import DETECTORS

    names = {s.name for s in DETECTORS} | {s.name + TUNED_SUFFIX for s in DETECTORS}
    pairs = [pair for _, _, claim_pairs in _pages().CLAIMS for pair in claim_pairs]
    assert {name for pair in pairs for name in pair} <= names
