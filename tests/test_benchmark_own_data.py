"""``sklearn-ood benchmark`` on the user's own data (``--id``/``--ood`` paths) and model
(``--model module:factory --weights --blocks --head``)."""

import csv
import sys

import numpy as np
import pytest
import torch

from sklearn_ood.benchmark import BenchmarkError
from sklearn_ood.benchmark.cli import main
from sklearn_ood.benchmark.settings import resolve_settings

MODULE = "own_tiny_model"
SOURCE = '''
from torch import nn


class Tiny(nn.Module):
    def __init__(self, channels=1, classes=3):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU())
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(4, classes)

    def forward(self, x):
        return self.classifier(self.pool(self.conv(x)))


class Hidden(Tiny):
    """A hidden layer before the head: the last map has 4 channels, the head 8 inputs."""

    def __init__(self):
        super().__init__(classes=8)
        self.hidden = nn.Sequential(self.classifier, nn.ReLU())
        self.classifier = nn.Linear(8, 3)

    def forward(self, x):
        return self.classifier(self.hidden(self.pool(self.conv(x))))


def make():
    return Tiny()


def make_hidden():
    return Hidden()


def make_chance():
    """A head of zeros: every image is given class 0, chance accuracy."""
    model = Tiny()
    nn.init.zeros_(model.classifier.weight)
    nn.init.zeros_(model.classifier.bias)
    return model


def make_rgb():
    return Tiny(channels=3)


def not_a_module():
    return "a model"
'''
N_PER_CLASS, SIZE = 50, 8


@pytest.fixture
def own(tmp_path, monkeypatch):
    """An .npz ID set (3 classes of gray 8x8 images), a flat PNG folder of OOD images,
    the tiny model's module on sys.path and its saved state dict."""
    from PIL import Image

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), N_PER_CLASS)
    x = np.clip(rng.normal(60 + 60 * y[:, None, None], 20, (len(y), SIZE, SIZE)), 0, 255)
    np.savez(tmp_path / "id.npz", x=x.astype(np.uint8), y=y)
    ood = tmp_path / "ood_pngs"
    ood.mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8)).save(ood / f"{i}.png")
    (tmp_path / f"{MODULE}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    module = __import__(MODULE)
    torch.manual_seed(0)
    torch.save(module.make().state_dict(), tmp_path / "tiny.pt")
    return tmp_path


def args(root, *extra, model=f"{MODULE}:make", blocks=("conv", "pool"), head="classifier",
         detectors=("energy", "knn", "mahalanobis")):
    return ["benchmark", "--id", str(root / "id.npz"), "--ood", str(root / "ood_pngs"),
            "--model", model, "--weights", str(root / "tiny.pt"), "--blocks", *blocks,
            "--head", head, "--detectors", *detectors, "--no-plots", "--no-tune", "--quiet",
            "--out", str(root / "out"), *extra]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_own_data_and_model_end_to_end(own, monkeypatch):
    def no_training(*a, **kw):
        raise AssertionError("a model of the user's must not be trained")

    monkeypatch.setattr("sklearn_ood.benchmark.models.train_model", no_training)
    assert main(args(own)) == 0
    rows = read_csv(own / "out" / "results.csv")
    assert [(r["detector"], r["ood_set"]) for r in rows] == [
        (name, s) for name in ("Energy", "KNN", "Mahalanobis") for s in ("ood_pngs", "average")]
    for row in rows:
        assert 0.0 <= float(row["auroc"]) <= 1.0
    report = (own / "out" / "results.md").read_text()
    assert "split into a stratified 20% test split" in report
    assert f"Model {MODULE}:make loaded from" in report
    assert f"OOD paths: ood_pngs = {own / 'ood_pngs'}" in report
    assert "blocks conv, pool; head classifier" in report


def test_ood_paths_are_named_after_their_file_unless_names_clash(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        np.savez(tmp_path / folder / "same.npz", x=np.zeros((2, 4, 4)), y=np.zeros(2))
    np.savez(tmp_path / "id.npz", x=np.zeros((2, 4, 4)), y=np.zeros(2))
    one, two, other = (str(tmp_path / p) for p in ("a/same.npz", "b/same.npz", "a"))
    s = resolve_settings(str(tmp_path / "id.npz"), [one, other], detectors=["energy"])
    assert s.ood_sets == ("same", "a") and s.ood_paths == {"same": one, "a": other}
    s = resolve_settings(str(tmp_path / "id.npz"), [one, two], detectors=["energy"])
    assert s.ood_sets == (one, two)


def test_image_folder_id_set_is_read_at_32x32_rgb(own):
    from PIL import Image

    rng = np.random.default_rng(1)
    for label in ("cat", "dog"):
        (own / "id_folder" / label).mkdir(parents=True)
        for i in range(40):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(
                own / "id_folder" / label / f"{i}.png")
    argv = args(own, model=f"{MODULE}:make_rgb", detectors=("energy",))
    argv[2] = str(own / "id_folder")
    argv[argv.index("--weights"):argv.index("--weights") + 2] = []  # the factory's parameters
    assert main(argv) == 0
    report = (own / "out" / "results.md").read_text()
    assert "80 images in 2 classes" in report and "the factory's own parameters" in report
    assert "fit 14, validation 50, ID test 16, ood_pngs 6" in report


def test_negative_id_labels_are_refused(own, capsys):
    np.savez(own / "neg.npz", x=np.zeros((150, 8, 8)), y=np.repeat(np.arange(-1, 2), 50))
    argv = args(own)
    argv[2] = str(own / "neg.npz")
    assert "labels must be class indices >= 0" in _error(capsys, argv)


def without_weights(argv):
    """The arguments without ``--weights FILE``: the factory's own parameters."""
    i = argv.index("--weights")
    return argv[:i] + argv[i + 2:]


def test_skipped_detectors_are_noted(own, capsys):
    assert main(args(own, blocks=("pool",), detectors=(
        "energy", "gaussian_density-l2", "feature_norm"))) == 0
    rows = read_csv(own / "out" / "results.csv")
    assert {r["detector"] for r in rows} == {"Energy"}
    report = (own / "out" / "results.md").read_text()
    assert "| GaussianDensity (L2 model) | skipped | needs a second model" in report
    assert "| FeatureNorm | skipped | reads maps" in report
    err = capsys.readouterr().err
    assert "skipped FeatureNorm: reads maps" in err


def test_rows_a_model_cannot_serve_are_skipped_and_the_others_written(own, capsys):
    """A hidden layer before the head: the detectors that apply the head to the last
    map's channels are skipped with the reason, every other row is written, exit 0."""
    argv = without_weights(args(own, model=f"{MODULE}:make_hidden", blocks=("conv", "hidden"),
                                detectors=("energy", "rankfeat", "nap-e", "knn",
                                           "gaussian_density-l2")))
    assert main(argv) == 0
    rows = read_csv(own / "out" / "results.csv")
    assert [(r["detector"], r["ood_set"]) for r in rows] == [
        (name, s) for name in ("Energy", "KNN") for s in ("ood_pngs", "average")]
    report = (own / "out" / "results.md").read_text()
    err = capsys.readouterr().err
    reason = ("applies the head 'classifier' (8 inputs) to the 4 channels of 'conv', the "
              "last map block")
    for name in ("RankFeat", "NAP-E (w=0.4)"):
        assert f"| {name} | skipped | {reason}" in report
        assert f"skipped {name}: {reason}" in err
    assert "skipped GaussianDensity (L2 model): needs a second model" in err
    assert "FAILED" not in err and "| failed |" not in report
    # nothing runnable asked for: a usage error, nothing written
    assert main(argv[:argv.index("--detectors") + 1] + ["rankfeat", "--out",
                                                       str(own / "none")]) == 2
    assert "No detector asked for can run on this model: RankFeat: applies the head" in (
        capsys.readouterr().err)
    assert not (own / "none").exists()


def test_a_failing_row_is_reported_and_the_others_written(own, capsys, monkeypatch):
    from sklearn_ood.detectors import knn

    def broken_fit(self, X, y=None):
        raise RuntimeError("broken\nfit")

    monkeypatch.setattr(knn.KNN, "fit", broken_fit)
    assert main(args(own, detectors=("energy", "knn", "mahalanobis"))) == 1
    rows = read_csv(own / "out" / "results.csv")
    assert {r["detector"] for r in rows} == {"Energy", "Mahalanobis"}
    assert "| KNN | failed | RuntimeError: broken fit |" in (
        own / "out" / "results.md").read_text()
    err = capsys.readouterr().err
    assert "FAILED KNN: RuntimeError: broken fit" in err and "1 row(s) failed" in err


def test_accuracy_near_chance_is_warned_and_no_row_is_marked_best(own, capsys):
    argv = without_weights(args(own, model=f"{MODULE}:make_chance",
                                detectors=("energy", "knn")))
    assert main(argv) == 0
    report = (own / "out" / "results.md").read_text()
    table = report[report.index("| detector |"):report.index("## ", report.index("| detector |"))]
    assert "**" not in table
    assert "**Warning**: ID test accuracy near chance: plain model 33.3 %, chance 33.3 %" in report
    assert "warning: ID test accuracy near chance" in capsys.readouterr().err


def _error(capsys, argv):
    assert main(argv) == 2
    return capsys.readouterr().err


def test_missing_folder_and_missing_file_give_the_same_message(own, capsys):
    for option in ("--id", "--ood"):
        for missing in ("nowhere", "nowhere.npz", "nowhere/"):
            argv = args(own)
            argv[argv.index(option) + 1] = missing
            assert f"{option} {missing!r}: no such file or folder" in _error(capsys, argv)


def test_missing_path(own, capsys):
    err = _error(capsys, args(own)[:2] + [str(own / "nowhere.npz")] + args(own)[3:])
    assert "--id" in err and "nowhere.npz" in err and "no such file or folder" in err
    argv = args(own)
    argv[argv.index("--ood") + 1] = str(own / "missing_dir/")
    assert "missing_dir" in _error(capsys, argv)


def test_path_neither_npz_nor_folder(own, capsys):
    (own / "notes.txt").write_text("hello")
    argv = args(own)
    argv[2] = str(own / "notes.txt")
    assert "is neither an .npz file" in _error(capsys, argv)


def test_npz_without_the_keys(own, capsys):
    np.savez(own / "bad.npz", images=np.zeros((4, 8, 8)))
    argv = args(own)
    argv[2] = str(own / "bad.npz")
    err = _error(capsys, argv)
    assert "bad.npz" in err and "missing array(s) ['x', 'y']" in err


def test_module_that_cannot_be_imported(own, capsys):
    err = _error(capsys, args(own, model="no_such_module_xyz:make"))
    assert "module 'no_such_module_xyz' cannot be imported" in err
    assert "looked up in the current folder" in err
    err = _error(capsys, args(own, model=f"{MODULE}:no_such_factory"))
    assert f"module '{MODULE}' has no attribute 'no_such_factory'" in err


def test_factory_is_imported_from_the_current_folder(tmp_path, monkeypatch):
    """As ``python -m`` does: the console script does not put the folder on sys.path."""
    from sklearn_ood.benchmark.own_model import import_factory

    (tmp_path / "cwd_only_nets.py").write_text(SOURCE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "cwd_only_nets", raising=False)
    path = list(sys.path)
    try:
        assert isinstance(import_factory("cwd_only_nets:make")(), torch.nn.Module)
    finally:
        sys.modules.pop("cwd_only_nets", None)
    assert sys.path == path  # the folder was on the path for the import only


def test_factory_that_returns_no_module(own, capsys):
    err = _error(capsys, args(own, model=f"{MODULE}:not_a_module"))
    assert "returned a str, not a torch.nn.Module" in err


def test_weights_that_do_not_load(own, capsys):
    state = torch.load(own / "tiny.pt", weights_only=True)
    state["extra.weight"] = state.pop("classifier.weight")
    torch.save(state, own / "tiny.pt")
    err = _error(capsys, args(own))
    assert "missing keys ['classifier.weight']" in err
    assert "unexpected keys ['extra.weight']" in err


def test_unknown_blocks_list_the_available_ones(own, capsys):
    err = _error(capsys, args(own, blocks=("conv", "layer4")))
    assert "Unknown block name(s) ['layer4']" in err and "'pool'" in err


def test_head_that_is_not_linear(own, capsys):
    err = _error(capsys, args(own, head="pool"))
    assert "--head 'pool' is a Sequential, not an nn.Linear" in err
    assert "['classifier']" in err


def test_images_of_the_wrong_shape(own, capsys):
    x = np.zeros((3 * N_PER_CLASS, SIZE, SIZE, 3), np.uint8)
    np.savez(own / "rgb.npz", x=x, y=np.repeat(np.arange(3), N_PER_CLASS))
    argv = args(own)
    argv[2] = str(own / "rgb.npz")
    assert "input shape (3, 8, 8)" in _error(capsys, argv)


@pytest.mark.parametrize("options, message", [
    (dict(blocks=["conv"], head="fc"), "--blocks and --head apply only"),
    (dict(model="m:f", head="fc"), "--blocks is required with --model m:f"),
    (dict(model="m:f", blocks=["a"], head="fc", epochs=3), "--epochs cannot apply"),
    (dict(id_set="cifar11"), "--id 'cifar11': no such file or folder, nor a known ID set"),
])
def test_settings_refuse_own_model_misuse(options, message):
    with pytest.raises(BenchmarkError, match=message):
        resolve_settings(**options)


def test_help_names_no_machine_path():
    from sklearn_ood.benchmark.cli import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices["benchmark"]
    text = sub.format_help()
    assert "package.module:factory" in text and "/work/" not in text
    assert "imported from the current folder or the Python path" in " ".join(text.split())


def test_val_file_validates_and_every_training_image_fits(own):
    # --val: the validation images come from the file; the fit set is every training image
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 10)
    x = np.clip(rng.normal(60 + 60 * y[:, None, None], 20, (30, SIZE, SIZE)), 0, 255)
    np.savez(own / "val.npz", x=x.astype(np.uint8), y=y)
    argv = args(own, "--val", str(own / "val.npz"), detectors=("energy", "knn"))
    argv.remove("--no-tune")
    assert main(argv) == 0
    report = (own / "out" / "results.md").read_text()
    assert "fit 120, validation 30, ID test 30, ood_pngs 6" in report  # 150 = 120 + 30 test
    assert ("validation (pseudo-OOD tuning, calibrating statistics, conformal thresholds): "
            f"the 30 images of --val {own / 'val.npz'}") in report
    np.savez(own / "bad_val.npz", x=x.astype(np.uint8), y=y + 1)  # class 3 is no ID class
    assert main(args(own, "--val", str(own / "bad_val.npz"))) == 2
    assert main(args(own, "--val", str(own / "ood_pngs"))) == 2
