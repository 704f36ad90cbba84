"""The benchmark's preset with trained models (``--id cifar10-resnet18 --models-dir``).

Tiny random stand-ins for the shared files: no test needs ``../shared``.
"""

import csv

import numpy as np
import pytest
import torch

from sklearn_ood.benchmark import BenchmarkError, models, run_benchmark
from sklearn_ood.benchmark.cli import main
from sklearn_ood.benchmark.data import split_test
from sklearn_ood.benchmark.report import summary_table
from sklearn_ood.benchmark.settings import ID_SETS, resolve_settings
from sklearn_ood.benchmark.specs import DETECTORS as ALL_SPECS
from sklearn_ood.models import ResNet

PRESET = "cifar10-resnet18"
FILES = ID_SETS[PRESET]["pretrained"]
DETECTORS = ["energy", "gaussian_density-l2", "knn"]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A data folder and a models folder with the preset's file names, tiny contents."""
    root = tmp_path_factory.mktemp("shared")
    data, saved = root / "data", root / "models"
    data.mkdir()
    saved.mkdir()
    rng = np.random.default_rng(0)

    def save(name, n, shape):
        x = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        np.savez(data / name, x=x, y=np.arange(n) % 10)

    save("cifar10_train20k_jpeg.npz", 240, (32, 32, 3))
    save("cifar10_test_jpeg.npz", 60, (32, 32, 3))
    save("tin_val_32.npz", 30, (32, 32, 3))
    save("dtd10_32.npz", 20, (32, 32, 3))
    save("mnist_test.npz", 25, (28, 28))
    nets = {}
    for kind, l2 in (("plain", False), ("l2", True)):
        torch.manual_seed(len(kind))
        nets[kind] = ResNet(10, in_channels=3, width=16, l2_normalize=l2).eval()
        torch.save(nets[kind].state_dict(), saved / FILES[kind])
    return data, saved, nets


def _logits(net, X):
    with torch.no_grad():
        return net(torch.from_numpy(X)).numpy()


def test_a_fresh_resnet_state_dict_loads_into_the_benchmark_model(tmp_path):
    torch.manual_seed(0)
    fresh = ResNet(10, in_channels=3, width=16).eval()
    path = str(tmp_path / "fresh.pt")
    torch.save(fresh.state_dict(), path)
    loaded = models.load_state_dict_model(path, "resnet18", num_classes=10, in_channels=3,
                                          width=16)
    assert not loaded.training
    assert loaded.state_dict().keys() == fresh.state_dict().keys()
    for key, value in fresh.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    X = np.random.default_rng(1).random((4, 3, 32, 32), dtype=np.float32)
    np.testing.assert_allclose(_logits(loaded, X), _logits(fresh, X), rtol=1e-5, atol=1e-6)


def test_a_state_dict_of_another_width_is_refused_naming_the_file(tmp_path):
    path = str(tmp_path / "narrow.pt")
    torch.save(ResNet(10, in_channels=3, width=8).state_dict(), path)
    with pytest.raises(BenchmarkError, match="narrow.pt.*is not a state dict of resnet18"):
        models.load_state_dict_model(path, "resnet18", num_classes=10, in_channels=3, width=16)


def test_the_preset_loads_the_models_and_groups_the_ood_sets(shared, monkeypatch):
    data, saved, nets = shared

    def no_training(*args, **kwargs):
        raise AssertionError("the preset must not train")

    monkeypatch.setattr(models, "train_model", no_training)
    result = run_benchmark(PRESET, data_dir=str(data), models_dir=str(saved),
                           detectors=DETECTORS, tune=False)
    assert result.ood_sets == ["tin", "dtd", "mnist"]
    assert result.config["ood_groups"] == {"near": ["tin"], "far": ["dtd", "mnist"]}
    # The models saw all 240 training images: they all fit the detectors, and the
    # validation images are 50 of the 60 test images (5 per class), the ID test the rest.
    assert result.info["n_images"] == {"fit": 240, "validation": 50, "ID test": 10,
                                       "tin": 30, "dtd": 20, "mnist": 25}
    assert "50 images of the ID test set" in result.info["validation"]
    # the loaded weights are the saved ones: accuracy recomputed from the saved models on
    # the 10 test images left, one per class
    X_test = np.load(data / "cifar10_test_jpeg.npz")["x"].transpose(0, 3, 1, 2) / 255.0
    X_test, y_test, _, y_val = split_test(X_test.astype(np.float32), np.arange(60) % 10,
                                          seed=0)
    assert np.bincount(y_val).tolist() == [5] * 10 and sorted(y_test) == list(range(10))
    for kind, key in (("plain", "accuracy"), ("l2", "accuracy_l2")):
        logits = _logits(nets[kind], X_test)
        assert result.info[key] == pytest.approx(np.mean(logits.argmax(1) == y_test))
    assert set(result.info["nc1"]) == {"plain", "l2"}
    # per detector: the sets, near and far averages (means of their sets), overall average
    for name in ("Energy", "GaussianDensity (L2 model)", "KNN"):
        rows = {r["ood_set"]: r for r in result.rows if r["detector"] == name}
        assert list(rows) == ["tin", "dtd", "mnist", "near average", "far average", "average"]
        for metric in ("auroc", "fpr95", "aupr_in", "aupr_out"):
            assert rows["near average"][metric] == rows["tin"][metric]
            assert rows["far average"][metric] == pytest.approx(
                (rows["dtd"][metric] + rows["mnist"][metric]) / 2)
            assert rows["average"][metric] == pytest.approx(
                np.mean([rows[s][metric] for s in ("tin", "dtd", "mnist")]))
    head = summary_table(result).splitlines()[0]
    assert "near avg AUROC↑/FPR95↓" in head and "far avg AUROC↑/FPR95↓" in head


def test_the_command_line_runs_the_preset(shared, tmp_path, capsys):
    data, saved, _ = shared
    out = tmp_path / "out"
    assert main(["benchmark", "--id", PRESET, "--data-dir", str(data), "--models-dir",
                 str(saved), "--out", str(out), "--no-plots", "--quiet", "--ood", "tin", "dtd",
                 "--detectors", "energy", "react"]) == 0
    printed = capsys.readouterr().out
    assert "near avg" in printed and "far avg" in printed and "(no training)" in printed
    with open(out / "results.csv", newline="") as f:
        sets = [r["ood_set"] for r in csv.DictReader(f) if r["detector"] == "Energy"]
    assert sets == ["tin", "dtd", "near average", "far average", "average"]


def test_the_preset_says_which_model_file_is_missing(shared, tmp_path, capsys):
    data, _, _ = shared
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["benchmark", "--id", PRESET, "--data-dir", str(data), "--quiet", "--no-plots",
            "--out", str(tmp_path / "out")]
    assert main([*args, "--models-dir", str(empty)]) == 2
    err = capsys.readouterr().err
    assert str(empty / FILES["plain"]) in err and str(empty / FILES["l2"]) in err
    # only the files of the models the chosen detectors read are needed
    assert main([*args, "--models-dir", str(empty), "--detectors", "energy"]) == 2
    err = capsys.readouterr().err
    assert FILES["plain"] in err and str(empty / FILES["l2"]) not in err
    assert main(args) == 2
    assert "--models-dir is required for --id cifar10-resnet18" in capsys.readouterr().err
    assert main([*args, "--models-dir", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("options, message", [
    (dict(id_set="digits", models_dir="."), "--models-dir applies only to"),
    (dict(id_set=PRESET, weights="w.pt"), "drop --weights"),
    (dict(id_set=PRESET, width=8), "--width 8 cannot apply"),
    (dict(id_set=PRESET, model="smallcnn"), "--model smallcnn cannot apply"),
])
def test_options_that_cannot_apply_to_the_preset_are_refused(shared, options, message):
    data, saved, _ = shared
    options = dict(options)
    if options["id_set"] == PRESET:
        options["models_dir"] = str(saved)
    with pytest.raises(BenchmarkError, match=message):
        resolve_settings(data_dir=str(data), **options)


def test_the_training_presets_are_unchanged():
    settings = resolve_settings("digits")
    assert settings.model_files == {} and settings.ood_groups == {}
    assert settings.id_data == "digits"


def test_the_preset_caps_the_gradient_detectors_and_says_so_in_their_names(shared):
    data, saved, _ = shared
    default = resolve_settings(id_set=PRESET, data_dir=str(data), models_dir=str(saved))
    by_key = {spec.key: spec for spec in default.detectors}
    assert list(by_key) == [spec.key for spec in ALL_SPECS]  # every detector runs
    capped = ("odin", "input_preprocessed_mahalanobis", "adascale")
    for spec in ALL_SPECS:
        run = by_key[spec.key]
        if spec.key in capped:
            assert (run.max_fit, run.max_eval) == (1000, 1000)
            assert run.name == spec.name + " (1,000 images per set)"
        else:
            assert run == spec
    named = resolve_settings(id_set=PRESET, data_dir=str(data), models_dir=str(saved),
                             detectors=["odin", "energy"])
    assert [spec.name for spec in named.detectors] == ["Energy", "ODIN (1,000 images per set)"]
    other = resolve_settings(id_set="digits")
    assert {s.key: s for s in other.detectors}["odin"].max_eval is None