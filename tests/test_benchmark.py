"""The benchmark command: end-to-end runs on tiny settings, errors, determinism, weights."""

import ast
import csv
import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import ParameterGrid

from sklearn_ood import KNN, Mahalanobis, benchmark, metrics
from sklearn_ood._base import BaseDetector
from sklearn_ood._calibration import CALIBRATION_CONSTRAINTS
from sklearn_ood._tags import DetectorTags, get_detector_tags
from sklearn_ood.discovery import all_detectors
from sklearn_ood.benchmark import DETECTORS, BenchmarkError, run_benchmark
from sklearn_ood.benchmark import models, result, sources, specs
from sklearn_ood.benchmark.cli import main
from sklearn_ood.benchmark.evaluate import Inputs, evaluate, evaluate_all, sample_rows
from sklearn_ood.benchmark.settings import resolve_settings
from sklearn_ood.benchmark.specs import DetectorSpec
from sklearn_ood.benchmark.data import PSEUDO_PREFIX
from sklearn_ood.benchmark.sources import SOURCES, class_splits, search_rows
from sklearn_ood.benchmark.tune import add_tuned_rows, rule_values, search

TINY = ["--epochs", "1", "--max-train", "300", "--quiet"]
METRICS = ("auroc", "fpr95", "aupr_in", "aupr_out")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def metric_columns(rows):
    return [(r["detector"], r["ood_set"], *(r[m] for m in METRICS)) for r in rows]


# ------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """Every detector (and the tuned rows) on the embedded default, tiny settings."""
    out = tmp_path_factory.mktemp("full")
    code = main(["benchmark", "--out", str(out), "--no-plots", "--epochs", "2",
                 "--max-train", "300", "--quiet"])
    return code, out


def test_full_run_writes_one_row_per_detector_and_set(full_run):
    code, out = full_run
    assert code == 0
    rows = read_csv(out / "results.csv")
    assert list(rows[0]) == ["detector", "ood_set", *METRICS, "fit_s", "score_s"]
    sets = {"digits_8_9", "photo_patches", "average"}
    by_detector = {}
    for row in rows:
        by_detector.setdefault(row["detector"], set()).add(row["ood_set"])
    assert all(s == sets for s in by_detector.values())
    assert len(rows) == 3 * len(by_detector)
    names = set(by_detector)
    assert {spec.name for spec in DETECTORS} <= names  # every detector of the library
    tunable = [spec.name for spec in DETECTORS if spec.grid is not None]
    assert {n + result.TUNED_SUFFIX for n in tunable} <= names
    assert sum(n.startswith(result.CHOSEN_NAME) for n in names) == 1
    for row in rows:
        values = [float(row[m]) for m in METRICS]
        assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values), row
        assert float(row["fit_s"]) >= 0 and float(row["score_s"]) >= 0
    # the average row is the mean over the OOD sets
    for name in names:
        mine = [r for r in rows if r["detector"] == name]
        avg = next(r for r in mine if r["ood_set"] == "average")
        for m in METRICS:
            per_set = [float(r[m]) for r in mine if r["ood_set"] != "average"]
            assert float(avg[m]) == pytest.approx(np.mean(per_set), abs=2e-6)
    assert not list(out.glob("*.png"))  # --no-plots


def test_full_run_records_its_decisions_and_results_json(full_run):
    _, out = full_run
    doc = json.loads((out / "results.json").read_text())
    assert doc["command"].startswith("sklearn-ood benchmark --out OUT --no-plots")
    assert str(out) not in (out / "results.json").read_text()
    assert doc["config"]["id_set"] == "digits" and doc["ood_sets"] == ["digits_8_9",
                                                                        "photo_patches"]
    assert doc["rows"] == [{k: pytest.approx(float(v), abs=1e-6) if k not in ("detector", "ood_set")
                            else v for k, v in r.items()} for r in read_csv(out / "results.csv")]
    thresholds, accepted = doc["info"]["thresholds"], doc["info"]["accepted"]
    rows = {r["detector"] for r in doc["rows"]}
    assert set(accepted) == set(thresholds) == rows
    energy = accepted["Energy"]
    # the plain share is the share of ID test scores at or above offset_, as predict has it
    assert 0.0 <= energy["plain"]["ID test"] <= 1.0
    assert set(energy["conformal"]) == {"ID test", "digits_8_9", "photo_patches"}
    n_val = thresholds["Energy"]["n_calibration"]
    assert n_val == doc["info"]["n_images"]["validation"] and thresholds["Energy"]["alpha"] == 0.05
    # the conformal threshold is an order statistic of the validation scores: the
    # k-th smallest with k = floor(0.05 (n + 1)), so it is no larger than the median
    assert thresholds["Energy"]["conformal"] is not None
    text = (out / "results.md").read_text()
    assert "## Decisions" in text and "ID test images accepted over the rows" in text


def test_full_run_markdown_table_parses(full_run):
    _, out = full_run
    text = (out / "results.md").read_text()
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append([c.strip() for c in line.strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    summary = tables[0]
    assert summary[0][0] == "detector" and set(summary[1]) <= {"---", "---:"}
    n_detectors = len({r["detector"] for r in read_csv(out / "results.csv")})
    assert len(summary) - 2 == n_detectors
    assert all(len(row) == len(summary[0]) for row in summary)
    assert "ID test accuracy" in text


def test_plots_are_png(tmp_path):
    out = tmp_path / "plots"
    assert main(["benchmark", "--out", str(out), *TINY, "--no-tune",
                 "--detectors", "energy", "KNN"]) == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["hist_energy.png", "hist_knn.png", "roc_digits_8_9.png",
                    "roc_photo_patches.png", "summary.png"]
    for name in pngs:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    assert len(read_csv(out / "results.csv")) == 2 * 3


def test_metrics_match_a_hand_computation():
    result = run_benchmark(epochs=1, max_train=300, tune=False,
                           detectors=["energy", "negative_aware_norm"])
    for row in result.rows:
        if row["ood_set"] == "average":
            continue
        s_id = result.scores[row["detector"]]["ID test"]
        s_ood = result.scores[row["detector"]][row["ood_set"]]
        # AUROC: P(ID score > OOD score) + P(tie) / 2, over all pairs
        diff = s_id[:, None] - s_ood[None, :]
        auroc = (np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / diff.size
        # FPR95: largest threshold keeping >= 95 % of ID scores, OOD accepted above it
        ranked = np.sort(s_id)[::-1]
        threshold = ranked[math.ceil(0.95 * len(ranked)) - 1]
        fpr = np.mean(s_ood >= threshold)
        assert row["auroc"] == pytest.approx(auroc, abs=1e-12)
        assert row["fpr95"] == pytest.approx(fpr, abs=1e-12)
    assert 0.0 <= result.info["accuracy"] <= 1.0


def test_result_as_records_and_as_a_data_frame(monkeypatch):
    rows = result.metric_rows("X", {"ID test": [3.0, 2.0], "a": [1.0], "b": [2.5]}, 0.5, 0.25)
    res = result.BenchmarkResult(rows, scores={}, ood_sets=["a", "b"], config={})
    records = res.to_records()
    assert [(r["ood_set"], r["auroc"], r["fit_s"]) for r in records] == [
        ("a", 1.0, 0.5), ("b", 0.5, 0.5), ("average", 0.75, 0.5)]
    assert all(list(r) == list(result.ROW_COLUMNS) for r in records)
    frame = res.to_frame()
    assert list(frame.columns) == list(result.ROW_COLUMNS)
    assert frame.to_dict("records") == records
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    with pytest.raises(ImportError, match=r"to_frame needs pandas: install it.*to_records\(\)"):
        res.to_frame()


# ----------------------------------------------------------------------- errors
def test_help_exits_zero(capsys):
    assert main(["benchmark", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--id", "--ood", "--data-dir", "--model", "--width", "--epochs",
                   "--batch-size", "--weights", "--save-weights", "--seed", "--detectors",
                   "--max-train", "--out", "--no-plots", "--no-tune", "--quiet"):
        assert option in out
    assert main(["--help"]) == 0
    assert "benchmark" in capsys.readouterr().out


def test_list_detectors_prints_every_key(capsys):
    assert main(["benchmark", "--list-detectors"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {spec.key} " in out and spec.name in out for spec in DETECTORS)


def test_parser_and_help_import_neither_torch_nor_sklearn():
    code = (
        "import contextlib, io, sys\n"
        "from sklearn_ood.__main__ import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['--help']) == 0 and main(['benchmark', '--help']) == 0\n"
        "print(sorted(m for m in ('torch', 'sklearn', 'scipy', 'skorch') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_package_exports_are_imported_on_first_access():
    import sklearn_ood

    assert set(sklearn_ood.__all__) == set(sklearn_ood._EXPORTS)
    assert all(getattr(sklearn_ood, name).__name__ == name for name in sklearn_ood.__all__)
    assert set(benchmark.__all__) <= set(dir(benchmark))
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        sklearn_ood.nothing  # noqa: B018


def test_unknown_option_prints_the_benchmark_usage(capsys):
    assert main(["benchmark", "--epoch", "3", "--frobnicate"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: sklearn-ood benchmark ")
    assert "sklearn-ood benchmark: error: unrecognized arguments: --frobnicate" in err


def test_python_dash_m_help():
    proc = subprocess.run([sys.executable, "-m", "sklearn_ood", "benchmark", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "--data-dir" in proc.stdout


def test_unknown_ood_set(tmp_path, capsys):
    code = main(["benchmark", "--ood", "svhn", "--out", str(tmp_path), *TINY])
    assert code != 0
    err = capsys.readouterr().err
    assert "--ood 'svhn': no such file or folder, nor a known OOD set" in err
    assert "photo_patches" in err and "fashion_mnist" in err  # lists the known ones
    assert not (tmp_path / "results.csv").exists()


def test_unknown_id_set(capsys):
    assert main(["benchmark", "--id", "svhn"]) != 0
    err = capsys.readouterr().err
    assert "--id 'svhn': no such file or folder, nor a known ID set" in err
    assert "mnist" in err and "cifar10" in err and "a path to an .npz file" in err


def test_detectors_are_named_after_their_classes():
    keys = [spec.key for spec in DETECTORS]
    names = [spec.name for spec in DETECTORS]
    assert len(set(keys)) == len(keys) and len(set(names)) == len(names)
    for spec in DETECTORS:
        assert spec.key == spec.key.lower() and " " not in spec.key
    assert {"MaxSoftmax", "NegativeAwareNorm", "NegativeAwareNorm (L2 model)",
            "Mahalanobis+NegativeAwareNorm", "KNN+NegativeAwareNorm"} <= set(names)
    assert not any(old in name for name in names for old in ("MSP", "NAN"))
    assert not any("gda" in key for key in keys)
    # --detectors takes a key or a name, in any case; the table keeps its own order
    chosen = specs.select_detectors(["NEGATIVEAWARENORM (l2 MODEL)", "max_softmax", "KNN"])
    assert [spec.key for spec in chosen] == ["knn", "max_softmax", "negative_aware_norm-l2"]


def test_every_registered_detector_is_a_row_or_says_why_not():
    from sklearn_ood.discovery import all_detectors

    rows = {spec.name for spec in DETECTORS}
    for name, cls in all_detectors():
        key = specs._key(cls)
        assert (key in specs.NOT_RUN) != any(row.split(" (")[0] == name for row in rows), name
    assert set(specs.NOT_RUN) == {"mc_dropout"}


def test_unknown_detector(tmp_path, capsys):
    assert main(["benchmark", "--detectors", "energy", "foo", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "foo" in err and "knn" in err
    assert main(["benchmark", "--detectors", "energi", "Mahalanobi", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'energi': did you mean 'energy'?" in err
    assert "'Mahalanobi': did you mean 'mahalanobis' or" in err


def test_bad_data_dir(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["benchmark", "--id", "mnist", "--data-dir", str(missing), *TINY]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "not a directory" in err
    assert main(["benchmark", "--id", "mnist", *TINY]) == 2
    assert "--data-dir is required" in capsys.readouterr().err
    # an existing folder without the files: the message names the missing file
    assert main(["benchmark", "--id", "mnist", "--data-dir", str(tmp_path), *TINY]) == 2
    assert "mnist_train.npz" in capsys.readouterr().err


def test_threads_option_limits_blas_during_the_run_only(tmp_path, monkeypatch):
    from threadpoolctl import threadpool_info

    from sklearn_ood.benchmark import runner

    def blas_threads():
        return {i["filepath"]: i["num_threads"] for i in threadpool_info()
                if i["user_api"] == "blas"}

    before, seen = blas_threads(), []

    def fake_run(*args, **kwargs):
        seen.append(blas_threads())
        raise BenchmarkError("stop after the check")

    monkeypatch.setattr(runner, "run_benchmark", fake_run)
    assert main(["benchmark", "--threads", "1", "--out", str(tmp_path), *TINY]) == 2
    assert before and set(seen[0].values()) == {1}
    assert blas_threads() == before


def test_progress_bars_only_on_a_terminal(tmp_path, capsys):
    """A redirected log (here: captured) gets the log lines, no bars or colour codes."""
    assert main(["benchmark", "--epochs", "1", "--max-train", "100", "--no-tune", "--no-plots",
                 "--detectors", "energy", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "extracting features: plain model" in err and "s] training the plain" in err
    assert "epoch" in err and "train_loss" in err  # skorch's epoch table stays
    assert "\r" not in err and "\x1b[" not in err and "it/s" not in err and "img/s" not in err


def test_bad_weights_file(tmp_path, capsys):
    path = tmp_path / "w.pt"
    path.write_bytes(b"not a torch file")
    assert main(["benchmark", "--weights", str(path), "--out", str(tmp_path), *TINY]) == 2
    assert "cannot be read" in capsys.readouterr().err


# ------------------------------------------------------------ determinism, weights
def test_same_seed_same_table(tmp_path):
    args = [*TINY, "--no-plots", "--detectors", "energy", "react", "knn", "negative_aware_norm-l2",
            "--seed", "3", "--augment", "flip-crop"]
    assert main(["benchmark", "--out", str(tmp_path / "a"), *args]) == 0
    assert main(["benchmark", "--out", str(tmp_path / "b"), *args]) == 0
    a = read_csv(tmp_path / "a" / "results.csv")
    b = read_csv(tmp_path / "b" / "results.csv")
    assert metric_columns(a) == metric_columns(b)
    assert any("tuned" in r["detector"] for r in a)


def test_weights_round_trip(tmp_path, monkeypatch):
    path = str(tmp_path / "models.pt")
    kwargs = dict(epochs=1, max_train=300, tune=False, seed=1,
                  detectors=["energy", "gaussian_density-l2", "nap"])
    first = run_benchmark(save_weights_to=path, **kwargs)

    def no_training(*args, **kw):
        raise AssertionError("--weights must not train")

    monkeypatch.setattr(models, "train_model", no_training)
    second = run_benchmark(weights=path, **kwargs)
    assert first.scores.keys() == second.scores.keys()
    for name, sets in first.scores.items():
        for set_name, scores in sets.items():
            np.testing.assert_array_equal(scores, second.scores[name][set_name])
    assert second.config["weights"] == path
    # the CLI reads the same file
    out = tmp_path / "cli"
    assert main(["benchmark", "--weights", path, "--out", str(out), "--no-plots", "--quiet",
                 "--max-train", "300", "--seed", "1", "--no-tune",
                 "--detectors", "energy", "gaussian_density-l2", "nap"]) == 0
    rows = read_csv(out / "results.csv")
    assert [float(r["auroc"]) for r in rows] == pytest.approx(
        [r["auroc"] for r in first.rows], abs=1e-6)


def test_weights_for_another_setting_are_refused(tmp_path):
    path = str(tmp_path / "models.pt")
    run_benchmark(epochs=1, max_train=300, detectors=["energy"], tune=False,
                  save_weights_to=path)
    with pytest.raises(BenchmarkError, match="was saved for"):
        run_benchmark(id_set="mnist", ood_sets=["fashion_mnist"],
                      data_dir=str(_fake_data_dir(tmp_path)), weights=path,
                      detectors=["energy"], tune=False, max_train=100)


def test_flip_crop_collate_gives_shifted_windows():
    import torch

    rng = np.random.default_rng(0)
    images = rng.random((6, 2, 5, 7), dtype=np.float32)
    batch = [(torch.from_numpy(x), torch.tensor(i)) for i, x in enumerate(images)]
    torch.manual_seed(0)
    X, y = models.flip_crop_collate(batch)
    assert X.shape == (6, 2, 5, 7) and y.tolist() == list(range(6))
    for x, out in zip(images, X.numpy()):
        # out must be a 5x7 window of the zero-padded image or of its mirror image
        windows = []
        for candidate in (x, x[:, :, ::-1]):
            padded = np.zeros((2, 13, 15), dtype=np.float32)
            padded[:, 4:9, 4:11] = candidate
            windows += [padded[:, a:a + 5, b:b + 7] for a in range(9) for b in range(9)]
        assert any(np.array_equal(out, w) for w in windows)


# --------------------------------------------------------- files from --data-dir
def _fake_data_dir(tmp_path):
    """Tiny random stand-ins for the shared .npz files (same names and geometry)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)

    def save(name, n, shape, n_classes=10):
        x = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        y = np.arange(n) % n_classes
        np.savez(folder / name, x=x, y=y)

    save("mnist_train.npz", 240, (28, 28))
    save("mnist_test.npz", 60, (28, 28))
    save("fashion_mnist_test.npz", 40, (28, 28))
    save("skimage_texture_patches.npz", 30, (32, 32), n_classes=3)
    return folder


def test_data_dir_sets_are_resized_to_the_id_geometry(tmp_path):
    data_dir = str(_fake_data_dir(tmp_path))
    result = run_benchmark(
        "mnist", ["fashion_mnist", "textures"], data_dir=data_dir, model="resnet18", width=4,
        epochs=1, max_train=0, detectors=["energy", "negative_aware_norm"], tune=False)
    assert result.ood_sets == ["fashion_mnist", "textures"]
    assert result.info["n_images"] == {"fit": 190, "validation": 50, "ID test": 60,
                                       "fashion_mnist": 40, "textures": 30}
    assert len(result.scores["Energy"]["textures"]) == 30
    assert result.config["model"] == "resnet18"
    assert os.path.isdir(data_dir)


# --------------------------------------------------------------------- layers
def _package_imports(module):
    """The benchmark modules that ``module`` imports (its relative imports)."""
    source = (Path(benchmark.__file__).parent / f"{module}.py").read_text()
    return {node.module for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.ImportFrom) and node.level == 1}


def test_report_reads_a_result_and_imports_no_stage_of_the_run():
    assert _package_imports("report") == {"plots", "result"}
    assert _package_imports("plots") == {"result"}


# ------------------------------------------------------------------- settings
def test_settings_fill_in_the_presets_and_are_frozen():
    settings = resolve_settings(model="resnet18", epochs=2,
                                detectors=["gaussian_density-l2", "energy"])
    assert settings.ood_sets == ("digits_8_9", "photo_patches")
    # a non-default architecture gets width 16; the rest comes from the digits preset
    assert (settings.width, settings.epochs, settings.batch_size, settings.max_train,
            settings.augment) == (16, 2, 64, 0, "none")
    assert settings.model_kinds == ("plain", "l2")
    assert settings.eval_sets == ("ID test", "digits_8_9", "photo_patches")
    assert settings.config()["detectors"] == ["energy", "gaussian_density-l2"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.seed = 1


@pytest.mark.parametrize("option, message", [
    (dict(width=0), "--width must be an integer >= 1; got 0"),
    (dict(epochs=1.5), "--epochs must be an integer >= 1"),
    (dict(max_train=50), "--max-train must be 0 .no cap. or at least 100; got 50"),
    (dict(model="vgg"), "Unknown model 'vgg'; choose from smallcnn, resnet18"),
    (dict(augment="rotate"), "Unknown augmentation 'rotate'"),
    (dict(weights="/nonexistent/w.pt"), "does not exist or is not a file"),
])
def test_settings_refuse_bad_options(option, message):
    with pytest.raises(BenchmarkError, match=message):
        resolve_settings(**option)


# ------------------------------------------------------------ evaluate, tune
class _Recorder(BaseDetector):
    """Keeps what ``fit`` received; scores the first feature."""

    _parameter_constraints = {**BaseDetector._parameter_constraints,
                              "random_state": ["random_state"]}

    def __init__(self, *, random_state=None, contamination=0.05):
        self.random_state = random_state
        self.contamination = contamination

    def _fit(self, X, y):
        self.X_, self.y_ = X, y

    def _score(self, X):
        return X[:, 0]


def _inputs(seed=3):
    """Features of one fake model: two ID classes, four pseudo-OOD sets, far OOD."""
    rng = np.random.default_rng(0)

    def blobs(n):
        return rng.normal(size=(n, 4)) + np.where(np.arange(n) % 2, 2.0, -2.0)[:, None]

    sets = {"fit": blobs(80), "validation": blobs(30), "ID test": blobs(30),
            "far": rng.normal(size=(20, 4)) + [6.0, -6.0, 6.0, -6.0]}
    for i, name in enumerate(SOURCES[1:]):
        sets[PSEUDO_PREFIX + name] = rng.normal(scale=1.0 + 0.5 * i, size=(30, 4))
    labels = {"fit": np.arange(80) % 2, "validation": np.arange(30) % 2,
              "ID test": np.arange(30) % 2}
    # "images": the same rows, for specs that stand for detectors running the model
    features = {"plain": {name: {"h": X, "images": X} for name, X in sets.items()}}
    return Inputs({"plain": None}, features, labels, ("ID test", "far"), seed)


def test_evaluate_fits_the_capped_fit_rows_and_scores_every_set():
    inputs = _inputs()
    spec = DetectorSpec("recorder", "Recorder", lambda net: _Recorder(), labels=True,
                        max_fit=25, note=lambda detector, n_fit: f"fitted on {n_fit}")
    evaluation = evaluate(spec, inputs)
    rows = sample_rows(80, 25, inputs.seed)
    assert len(rows) == 25 and np.all(np.diff(rows) > 0)  # a sample, in order
    h = inputs.features["plain"]
    np.testing.assert_array_equal(evaluation.detector.X_, h["fit"]["h"][rows])
    np.testing.assert_array_equal(evaluation.detector.y_, inputs.labels["fit"][rows])
    assert evaluation.detector.random_state == inputs.seed  # seeded by the run
    assert evaluation.note == "fitted on 25"
    assert list(evaluation.scores) == ["ID test", "far"]
    np.testing.assert_array_equal(evaluation.scores["far"], h["far"]["h"][:, 0])
    assert [r["ood_set"] for r in evaluation.rows()] == ["far", "average"]
    # no labels unless the spec asks; no cap without max_fit
    plain = evaluate(dataclasses.replace(spec, labels=False, max_fit=None), inputs)
    assert plain.detector.y_ is None and len(plain.detector.X_) == 80


class _CalibratedRecorder(BaseDetector):
    """Keeps what ``fit`` received, calibration rows apart."""

    _detector_tags = DetectorTags(input="features", calibrated=("cal_",))
    _parameter_constraints = {**BaseDetector._parameter_constraints, **CALIBRATION_CONSTRAINTS}

    def __init__(self, *, calibration_size=None, random_state=None, contamination=0.05):
        self.calibration_size = calibration_size
        self.random_state = random_state
        self.contamination = contamination

    def _fit(self, X, y, X_cal, y_cal):
        self.X_, self.y_, self.cal_ = X, y, (X_cal, y_cal)

    def _score(self, X):
        return X[:, 0]


def test_evaluate_calibrates_on_the_validation_rows_when_the_spec_says_so():
    inputs = _inputs()
    spec = DetectorSpec("recorder", "Recorder", lambda net: _CalibratedRecorder(),
                        labels=True, calibrate=True)
    detector = evaluate(spec, inputs).detector
    h = inputs.features["plain"]
    np.testing.assert_array_equal(detector.X_, h["fit"]["h"])  # the modelling rows
    np.testing.assert_array_equal(detector.y_, inputs.labels["fit"])
    np.testing.assert_array_equal(detector.cal_[0], h["validation"]["h"])
    np.testing.assert_array_equal(detector.cal_[1], inputs.labels["validation"])
    unlabelled = evaluate(dataclasses.replace(spec, labels=False), inputs).detector
    assert unlabelled.y_ is None and unlabelled.cal_[1] is None
    # the registry's specs calibrate exactly the detectors that declare it
    assert {s.name.split(" ")[0] for s in DETECTORS if s.calibrate} == {
        name for name, cls in all_detectors() if get_detector_tags(cls).calibrated}


def test_stages_feature_is_every_stage_averaged_and_other_keys_unchanged():
    import torch

    from sklearn_ood import BlockFeatureExtractor
    from sklearn_ood.benchmark.features import extract_features, stage_channels
    from sklearn_ood.models import SmallCNN

    torch.manual_seed(0)
    net = SmallCNN(3, in_channels=1, width=4)
    X = np.random.default_rng(0).normal(size=(6, 1, 8, 8)).astype(np.float32)
    f = extract_features(net, X, progress=False)
    assert stage_channels(net) == [4, 8, 16]
    avg = BlockFeatureExtractor(net, list(net.block_names), reduce="avg").fit(X).transform(X)
    np.testing.assert_allclose(f["stages"], avg, rtol=1e-6)
    last = BlockFeatureExtractor(net, [net.block_names[-1], "penultimate"],
                                 reduce={net.block_names[-1]: ["max", "avg", "flatten"],
                                         "penultimate": "flatten"}).fit(X).transform(X)
    np.testing.assert_array_equal(f["h"], last[:, -net.fc.in_features:])
    np.testing.assert_array_equal(f["maxavg"], last[:, :32])
    np.testing.assert_array_equal(f["maps"].reshape(6, -1), last[:, 32:32 + 16 * 4])


def test_restricted_model_keeps_the_rows_of_the_kept_classes():
    import torch

    from sklearn_ood.models import SmallCNN

    torch.manual_seed(0)
    net = SmallCNN(4, in_channels=1, width=4).eval()
    X = torch.from_numpy(np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32))
    copy = sources.restricted_model(net, np.array([0, 2]))
    with torch.no_grad():
        full, kept = net(X), copy(X)
    torch.testing.assert_close(kept, full[:, [0, 2]])
    assert net.fc.out_features == 4 and copy.fc.out_features == 2  # the original is intact


def test_rule_values_prefer_the_candidate_no_source_ranks_last():
    # a: 2nd of 3 on every source; b: 1st on four, last on jigsaw; c: last on four.
    good = {"fpr95": 0.2, "auroc": 0.9}
    a = dict.fromkeys(SOURCES, good)
    b = dict(dict.fromkeys(SOURCES, {"fpr95": 0.1, "auroc": 0.95}),
             jigsaw={"fpr95": 0.9, "auroc": 0.5})
    c = dict(dict.fromkeys(SOURCES, {"fpr95": 0.5, "auroc": 0.7}), jigsaw=good)
    assert int(np.argmin(rule_values([a, b, c], "worst_rank"))) == 0
    assert int(np.argmin(rule_values([a, b, c], "mean_rank"))) == 1  # forgives jigsaw
    # equal FPR95: the AUROC decides; a NaN ranks last
    tie = dict(a, held_out={"fpr95": 0.2, "auroc": 0.95})
    assert int(np.argmin(rule_values([a, tie], "worst_rank"))) == 1
    nan = dict(a, noise={"fpr95": float("nan"), "auroc": float("nan")})
    assert int(np.argmin(rule_values([nan, a], "worst_rank"))) == 1


def _ranks(values):
    """1 = lowest key, ties share the mean of their ranks."""
    return [1 + sum(v < x for v in values) + 0.5 * (sum(v == x for v in values) - 1)
            for x in values]


def _sources_by_hand(make, inputs, labels=False):
    """Per-source pseudo-OOD FPR95 and AUROC of ``make()``, every detector fitted by hand."""
    h, y_fit, y_val = inputs.features["plain"], inputs.labels["fit"], inputs.labels["validation"]
    fitted = make().fit(h["fit"]["h"], y_fit if labels else None)
    val = fitted.score_samples(h["validation"]["h"])
    out = {}
    for name in SOURCES[1:]:
        ood = fitted.score_samples(h[PSEUDO_PREFIX + name]["h"])
        y = np.r_[np.zeros(len(val)), -np.ones(len(ood))]
        out[name] = (metrics.fpr_at_tpr(y, np.r_[val, ood]), metrics.auroc(y, np.r_[val, ood]))
    per_split = []
    for held in (0, 1):  # two classes: each held out once, the other kept
        kept = y_fit != held
        s = make().fit(h["fit"]["h"][kept], np.zeros(kept.sum(), int) if labels else None
                       ).score_samples(h["validation"]["h"])
        y = np.where(y_val == held, -1, 0)
        per_split.append((metrics.fpr_at_tpr(y, s), metrics.auroc(y, s)))
    out["held_out"] = tuple(np.mean(per_split, axis=0))
    return {k: dict(zip(("fpr95", "auroc"), v)) for k, v in out.items()}


def _winner_by_hand(pseudo, worst):
    """The first best candidate by worst rank (ties: mean rank), or by mean rank."""
    keys = [[(p[s]["fpr95"], -p[s]["auroc"]) for p in pseudo] for s in SOURCES]
    ranks = np.array([_ranks(k) for k in keys]).T
    if worst:
        return min(range(len(pseudo)), key=lambda i: (ranks[i].max(), ranks[i].mean(), i))
    return min(range(len(pseudo)), key=lambda i: (ranks[i].mean(), i))


def test_search_keeps_the_hand_computed_best_candidate_fitted():
    inputs = _inputs()
    assert [h.tolist() for h in class_splits(inputs.labels["fit"], inputs.seed)] in (
        [[0], [1]], [[1], [0]])
    spec = DetectorSpec("knn", "KNN", lambda net: KNN(), grid=lambda n: None)
    grid = {"n_neighbors": [1, 3, 10, 30]}
    splits = class_splits(inputs.labels["fit"], inputs.seed)
    best = search(spec, ParameterGrid(grid), inputs, lambda message: None, splits)
    by_hand = [_sources_by_hand(lambda: KNN(n_neighbors=k), inputs) for k in grid["n_neighbors"]]
    winner = _winner_by_hand(by_hand, worst=False)  # knobs: the best mean rank
    assert best.params == {"n_neighbors": grid["n_neighbors"][winner]}
    for source in SOURCES:
        assert best.pseudo[source] == pytest.approx(by_hand[winner][source])
    assert best.detector.n_neighbors == best.params["n_neighbors"]
    assert best.n_fit == 80


def test_search_fits_each_candidate_once_on_the_capped_rows_and_skips_failures(monkeypatch):
    inputs = _inputs()
    fits = []

    class Counted(_Recorder):
        def __init__(self, *, random_state=None, contamination=0.05, fail=False):
            super().__init__(random_state=random_state, contamination=contamination)
            self.fail = fail

        def _fit(self, X, y):
            if self.fail:
                raise ValueError("this candidate cannot fit")
            fits.append((len(X), len(np.unique(y))))
            super()._fit(X, y)

    spec = DetectorSpec("counted", "Counted", lambda net: Counted(), features="images",
                        max_fit=25, max_eval=20, labels=True,
                        grid=lambda n: {"fail": [True, False]})
    messages = []
    assert search_rows(spec, inputs) == slice(None)  # 30 validation rows: fewer than 200
    monkeypatch.setattr(sources, "MIN_SEARCH_ROWS", 2)
    monkeypatch.setattr(sources, "restricted_model", lambda model, kept: model)  # no model
    rows, info = add_tuned_rows([evaluate(spec, inputs)], inputs, log=messages.append)
    # On the fit rows (2 classes), the default row's fit only: the candidate with its
    # parameters (fail=False) is that row, and the winner is not fitted again. The
    # search of a detector that runs the model reads a fifth of its capped sample: 4
    # of the 30 validation rows (and the same rows of their corrupted copies); the
    # held-out source fits the detector once per class split, on 25 // 5 rows of one
    # class.
    rows_read = search_rows(spec, inputs)
    np.testing.assert_array_equal(rows_read, sample_rows(30, 4, inputs.seed))
    assert set(inputs.labels["validation"][rows_read]) == {0, 1}
    assert fits == [(25, 2), (5, 1), (5, 1)]
    # a feature detector reads every validation row; its held-out fits are capped
    monkeypatch.setattr(sources, "HELD_OUT_MAX_FIT", 7)
    features = dataclasses.replace(spec, features="h", max_fit=None, max_eval=None)
    assert search_rows(features, inputs) == slice(None)
    fits.clear()
    sources.held_out_metrics(features, inputs, {}, class_splits(inputs.labels["fit"], 0))
    assert fits == [(7, 1), (7, 1)]
    assert any("cannot fit" in m for m in messages)
    assert rows[1].params == {"fail": False} and rows[1].detector is rows[0].detector
    assert all(len(scores) == 20 for scores in rows[1].scores.values())
    with pytest.raises(ValueError, match="cannot fit"):
        search(spec, ParameterGrid({"fail": [True]}), inputs, lambda message: None,
               class_splits(inputs.labels["fit"], inputs.seed))


def test_a_failing_row_costs_no_other_row():
    inputs = _inputs()

    class Fragile(_Recorder):
        def __init__(self, *, random_state=None, contamination=0.05, fail=False):
            super().__init__(random_state=random_state, contamination=contamination)
            self.fail = fail

        def _fit(self, X, y):
            if self.fail:
                raise ValueError("cannot fit\n  at all")
            super()._fit(X, y)

    specs_ = [DetectorSpec("bad", "Bad", lambda net: Fragile(fail=True)),
              DetectorSpec("good", "Good", lambda net: _Recorder()),
              DetectorSpec("untunable", "Untunable", lambda net: Fragile(),
                           grid=lambda n: {"fail": [True]})]
    evaluations, failed = evaluate_all(specs_, inputs, log=lambda message: None)
    assert [e.name for e in evaluations] == ["Good", "Untunable"]
    assert failed == {"Bad": "ValueError: cannot fit at all"}
    rows, info = add_tuned_rows(evaluations, inputs, log=lambda message: None)
    assert [r.name for r in rows[:2]] == ["Good", "Untunable"]  # no tuned row
    assert info["failed"] == {"Untunable" + result.TUNED_SUFFIX: "ValueError: cannot fit at all"}
    assert list(info["pseudo"]) == ["Good", "Untunable"]
    assert rows[2].name.startswith(result.CHOSEN_NAME) and len(rows) == 3


def test_preconditions_skip_a_detector_the_model_cannot_serve():
    import torch

    from sklearn_ood import MCDropout
    from sklearn_ood.benchmark.preconditions import skip_reason
    from sklearn_ood.models import SmallCNN

    net = SmallCNN(3, in_channels=1, width=4)
    spec = DetectorSpec("mc_dropout", "MCDropout", lambda net: MCDropout(net),
                        features="images")
    assert "SmallCNN has no dropout module" in skip_reason(spec, {"plain": net})
    net.dropout = torch.nn.Dropout(0.5)  # MCDropout needs one, used or not
    assert skip_reason(spec, {"plain": net}) is None
    (l2,) = specs.select_detectors(["gaussian_density-l2"])
    assert "needs a second model" in skip_reason(l2, {"plain": net})
    assert skip_reason(l2, {"plain": net, "l2": net}) is None


def test_tuned_rows_follow_their_default_row_and_the_choice_comes_last():
    inputs = _inputs()
    knn = DetectorSpec("knn", "KNN", lambda net: KNN(n_neighbors=30),
                       grid=lambda n: {"n_neighbors": [1, 3, 10, 30, 40]})
    mahalanobis = DetectorSpec("mahalanobis", "Mahalanobis", lambda net: Mahalanobis(),
                               labels=True)
    defaults = [evaluate(spec, inputs) for spec in (knn, mahalanobis)]
    rows, info = add_tuned_rows(defaults, inputs, log=lambda message: None)
    # n_neighbors=40 cannot fit the 40 rows of one class: its held-out source is NaN
    assert info["tuned"]["KNN" + result.TUNED_SUFFIX] != {"n_neighbors": 40}
    tuned_name = "KNN" + result.TUNED_SUFFIX
    assert [r.name for r in rows[:3]] == ["KNN", tuned_name, "Mahalanobis"]
    assert list(info["pseudo"]) == ["KNN", "Mahalanobis", tuned_name]
    (k,) = info["tuned"][tuned_name].values()
    # the tuned row is a default row of KNN(n_neighbors=k)
    fit = inputs.features["plain"]["fit"]["h"]
    tuned_knn = KNN(n_neighbors=k).fit(fit)
    np.testing.assert_array_equal(
        rows[1].scores["far"], tuned_knn.score_samples(inputs.features["plain"]["far"]["h"]))
    by_hand = _sources_by_hand(lambda: KNN(n_neighbors=k), inputs)
    for source in SOURCES:
        assert info["pseudo"][tuned_name][source] == pytest.approx(by_hand[source])
    maha = _sources_by_hand(Mahalanobis, inputs, labels=True)
    for source in SOURCES:
        assert info["pseudo"]["Mahalanobis"][source] == pytest.approx(maha[source])
    # the knobs: the best mean rank of the candidates
    candidates = [_sources_by_hand(lambda: KNN(n_neighbors=n), inputs) for n in (1, 3, 10, 30)]
    assert (1, 3, 10, 30)[_winner_by_hand(candidates, worst=False)] == k
    # the last row repeats the best worst rank of the three rows
    names = [r.name for r in rows[:3]]
    winner = names[_winner_by_hand([info["pseudo"][n] for n in names], worst=True)]
    assert info["chosen"] == winner and len(rows) == 4
    assert rows[3].name.startswith(f"{result.CHOSEN_NAME}: {winner}")
    assert rows[3].scores is rows[names.index(winner)].scores
    assert info["sources"] == list(SOURCES)
    assert (info["rule"], info["tune_rule"]) == ("worst_rank", "mean_rank")


def test_selection_table_ranks_each_choice_among_the_rows(tmp_path):
    import json

    from sklearn_ood.benchmark import selection_table

    def m(fpr, auroc):
        return {"fpr95": fpr, "auroc": auroc}

    # three rows; jigsaw alone picks B (lowest jigsaw FPR95), the rule picked C
    rows = {"A": {"pseudo": {"held_out": m(0.1, 0.9), "jigsaw": m(0.5, 0.7)}, "rule": 2.0},
            "B": {"pseudo": {"held_out": m(0.3, 0.8), "jigsaw": m(0.2, 0.9)}, "rule": 2.5},
            "C": {"pseudo": {"held_out": m(0.2, 0.8), "jigsaw": m(0.3, 0.8)}, "rule": 1.5}}
    for r in rows.values():
        r["params"] = {}
    (tmp_path / "selection.json").write_text(json.dumps(dict(
        id_set="x", ood_sets=["o"], ood_groups={}, validation="v",
        sources=["held_out", "jigsaw"], rule="worst_rank", held_out=[[0]], chosen="C",
        rows=rows)))
    real = {"A": (0.40, 0.90), "B": (0.60, 0.80), "C": (0.50, 0.85),
            result.CHOSEN_NAME + ": C": (0.5, 0.85)}  # the repeated row is left out
    with open(tmp_path / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["detector", "ood_set", "auroc", "fpr95"])
        for name, (fpr, auroc) in real.items():
            writer.writerow([name, "average", auroc, fpr])
    selection, loaded = selection_table.load_run(tmp_path)
    by = {e["source"]: e for e in selection_table.choices(selection, loaded)}
    assert by["held_out"]["chosen"] == "A" and by["jigsaw"]["chosen"] == "B"
    assert by["rule"]["chosen"] == "C" and by["rule"]["n_rows"] == 3
    assert by["rule"]["average", "fpr95"] == (2, pytest.approx(10.0))  # 2nd, +10 points
    assert by["jigsaw"]["average", "auroc"] == (3, pytest.approx(10.0))
    # Spearman of the jigsaw FPR95 (0.5, 0.2, 0.3) with the real (0.4, 0.6, 0.5): -1
    assert by["jigsaw"]["spearman"] == pytest.approx(-1.0)
    assert "rule: worst_rank | C | 50.0 / 85.0 (#2, +10.0 / #2, -5.0)" in \
        selection_table.markdown([tmp_path])
    assert "   * - jigsaw alone" in selection_table.rst([tmp_path])
    # why: the best real row (A) and the chosen one (C), with their ranks per source
    head, rows = selection_table.why(selection, loaded, 1)
    assert head[-3:] == ["held_out FPR95 (rank)", "jigsaw FPR95 (rank)", "worst rank"]
    assert rows == [["A (#1)", "40.0", "10.0 (#1)", "50.0 (#3)", "3"],
                    ["C (#2) **chosen**", "50.0", "20.0 (#2)", "30.0 (#2)", "2"]]


def test_selection_table_averages_the_sets_outside_the_groups(tmp_path):
    import json

    from sklearn_ood.benchmark import selection_table

    rows = {n: {"pseudo": {"jigsaw": {"fpr95": f, "auroc": 0.5}}, "rule": f, "params": {}}
            for n, f in (("A", 0.1), ("B", 0.2))}
    (tmp_path / "selection.json").write_text(json.dumps(dict(
        id_set="x", ood_sets=["near1", "far1", "new1", "new2"],
        ood_groups={"near": ["near1"], "far": ["far1"]}, validation="v", sources=["jigsaw"],
        rule="worst_rank", held_out=[[0]], chosen="A", rows=rows)))
    # per set FPR95: A is better on the groups' sets, worse on the two added ones
    fpr = {"A": {"near1": 0.2, "far1": 0.2, "new1": 0.6, "new2": 0.8},
           "B": {"near1": 0.4, "far1": 0.4, "new1": 0.3, "new2": 0.1}}
    with open(tmp_path / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["detector", "ood_set", "auroc", "fpr95"])
        for name, sets in fpr.items():
            for s, v in {**sets, "near average": sets["near1"], "far average": sets["far1"],
                         "average": sum(sets.values()) / 4}.items():
                writer.writerow([name, s, 1 - v, v])
    selection, loaded = selection_table.load_run(tmp_path)
    assert loaded["A"]["other sets average"]["fpr95"] == pytest.approx(0.7)
    rule = selection_table.choices(selection, loaded)[-1]
    assert rule["chosen"] == "A" and rule["near average", "fpr95"][0] == 1
    assert rule["other sets average", "fpr95"] == (2, pytest.approx(50.0))  # 70 vs B's 20
    assert "other sets FPR95 / AUROC (rank, gap)" in selection_table.markdown([tmp_path])


def test_results_json_replaces_machine_paths_only(tmp_path):
    from sklearn_ood.benchmark.report import write_json

    rows = result.metric_rows("Energy", {"ID test": [3.0, 2.0], "a": [1.0]}, 0.1, 0.2)
    run = result.BenchmarkResult(
        rows=rows, scores={}, ood_sets=["a"],
        config={"id_set": "digits", "data_dir": "data", "models_dir": str(tmp_path / "m")},
        info={"notes": [f"models from {tmp_path / 'm'}; data read"]})
    write_json(run, tmp_path / "results.json")
    doc = json.loads((tmp_path / "results.json").read_text())
    # a bare folder name is no machine path: keys and words that contain it stay as they are
    assert doc["config"] == {"id_set": "digits", "data_dir": "DATA", "models_dir": "MODELS"}
    assert doc["info"]["notes"] == ["models from MODELS; data read"]
