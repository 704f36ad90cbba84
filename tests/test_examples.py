"""Smoke tests of the example scripts: they run end to end on the embedded data.

Each example is loaded from its file (``examples/`` is not a package) and its
``main(argv)`` is called with tiny settings; the printed metrics are parsed and
checked to be finite and in range.
"""

import importlib.util
import math
import re
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf)"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(text, label):
    """The numbers printed after ``label`` at the start of a line, as floats."""
    match = re.search(rf"^{re.escape(label)}\s+(.*)$", text, flags=re.MULTILINE)
    assert match, f"no line starting with {label!r} in the output:\n{text}"
    return [float(v) for v in re.findall(NUMBER, match.group(1))]


def _section(text, title):
    start = text.index(title)
    end = text.find("\n\n", start)
    return text[start:] if end < 0 else text[start:end]


def test_l2_example_runs_and_prints_finite_metrics(tmp_path, capsys):
    module = _load("l2_normalized_resnet")
    out = tmp_path / "l2.png"
    argv = ["--epochs", "2", "--width", "4", "--max-train", "300", "--max-eval", "200",
            "--seed", "1", "--threads", "1", "--quiet", "--out", str(out)]
    threads = torch.get_num_threads()
    assert module.main(argv) == 0
    assert torch.get_num_threads() == threads  # --threads is undone on return
    text = capsys.readouterr().out

    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Figure written to" in text
    assert not re.search(r"\b(nan|inf)\b", text, flags=re.IGNORECASE), text
    assert "300 train / 200 test" in text

    accuracy = _row(text, "test accuracy")
    assert len(accuracy) == 2 and all(0.0 <= a <= 1.0 for a in accuracy)

    per_epoch = _section(text, "Per epoch")
    for epoch in (1, 2):
        values = _row(per_epoch, str(epoch))
        assert len(values) == 4  # acc plain, acc L2, NC1 plain, NC1 L2
        assert all(0.0 <= v <= 1.0 for v in values[:2])
        assert all(math.isfinite(v) and v >= 0.0 for v in values[2:])
    assert not re.search(r"^3\s", per_epoch, flags=re.MULTILINE)

    collapse = _section(text, "Final neural-collapse")
    for key in module.NC_KEYS:
        values = _row(collapse, key)
        assert len(values) == 2 and all(math.isfinite(v) and v >= 0.0 for v in values)
    assert all(0.0 <= v <= 1.0 for v in _row(collapse, "ncc_mismatch"))

    n_variants = len(module.VARIANTS)
    for title in ("AUROC [%]", "FPR@95%TPR [%]"):
        table = _section(text, title)
        for ood_name in ("digits_8_9", "photo_patches", "mean"):
            values = _row(table, ood_name)
            assert len(values) == n_variants
            assert all(0.0 <= v <= 100.0 for v in values)
    # the mean row is the mean of the per-set rows (printed with one decimal)
    auroc_table = _section(text, "AUROC [%]")
    near, far, mean = (_row(auroc_table, n) for n in ("digits_8_9", "photo_patches", "mean"))
    for a, b, m in zip(near, far, mean):
        assert abs((a + b) / 2 - m) <= 0.1 + 1e-9


def test_l2_example_missing_data_dir_is_a_clear_error(tmp_path, capsys):
    module = _load("l2_normalized_resnet")
    assert module.main(["--data-dir", str(tmp_path), "--quiet", "--out", ""]) == 2
    err = capsys.readouterr().err
    assert "mnist" in err and str(tmp_path) in err


def test_l2_example_rejects_bad_arguments(capsys):
    module = _load("l2_normalized_resnet")
    with pytest.raises(SystemExit) as exc:
        module.main(["--epochs", "0"])
    assert exc.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_quickstart_runs_and_prints_finite_metrics(capsys):
    module = _load("quickstart")
    assert module.main(["--epochs", "1"]) == 0
    text = capsys.readouterr().out
    assert not re.search(r"\b(nan|inf)\b", text, flags=re.IGNORECASE), text

    accuracy = float(re.search(rf"test accuracy: ({NUMBER})", text).group(1))
    assert 0.0 <= accuracy <= 1.0
    for name in ("digits_8_9", "photo_patches"):
        match = re.search(rf"{name}: AUROC ({NUMBER})\s+FPR@95%TPR ({NUMBER})", text)
        assert match, text
        assert all(0.0 <= float(v) <= 1.0 for v in match.groups())
    match = re.search(rf"best \{{'energy__temperature': ({NUMBER})\}}, CV AUROC ({NUMBER})",
                      text)
    assert match, text
    assert float(match.group(1)) in (0.5, 1.0, 2.0) and 0.0 <= float(match.group(2)) <= 1.0


def test_vision_transformer_runs_and_prints_finite_metrics(capsys):
    module = _load("vision_transformer")
    threads = torch.get_num_threads()
    assert module.main(["--epochs", "2", "--patch", "4"]) == 0
    assert torch.get_num_threads() == threads  # --threads is undone on return
    text = capsys.readouterr().out
    assert not re.search(r"\b(nan|inf)\b", text, flags=re.IGNORECASE), text
    assert "4x4 patches, 5 tokens" in text
    accuracy = float(re.search(rf"test accuracy ({NUMBER})", text).group(1))
    assert 0.0 <= accuracy <= 1.0
    assert "digits_8_9 AUROC" in text and "photo_patches AUROC" in text
    for label in ("Energy (cls, head)", "KNN (cls)", "Mahalanobis (cls)", "KNN (token mean)",
                  "Mahalanobis (token mean)", "NegativeAwareNorm (MLP tokens)"):
        values = _row(text, label)
        assert len(values) == 4 and all(0.0 <= v <= 100.0 for v in values), (label, values)
    assert re.search(rf"wall time {NUMBER} s", text)
