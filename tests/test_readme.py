"""The README's Python examples run as written (on the embedded digits data)."""

import pathlib
import re

import pytest
import torch

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.skipif(not README.exists(), reason="README.md is not installed with the package")
def test_readme_examples_run(capsys):
    blocks = _python_blocks()
    assert len(blocks) >= 3
    torch.manual_seed(0)
    namespace = {}
    for block in blocks:  # later blocks continue the first one
        exec(compile(block, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    aurocs = [float(v) for v in re.findall(r"AUROC (\d\.\d+)", out)]
    assert len(aurocs) == 2 and min(aurocs) > 0.8, out
    assert namespace["detector"].predict(namespace["X_ood"][:3]).shape == (3,)


@pytest.mark.skipif(not README.exists(), reason="README.md is not installed with the package")
def test_detector_tables_list_every_detector_with_a_paper():
    from sklearn_ood import detectors, model_detectors

    rows = {}
    for line in README.read_text().splitlines():
        match = re.match(r"\| `(\w+)[(`]", line)
        if match:
            rows[match.group(1)] = line
    names = [*detectors.__all__, *model_detectors.__all__]
    names = [n for n in names if n[0].isupper() and n != "ModelDetector"]
    missing = [n for n in names if n not in rows]
    assert not missing, f"README detector tables lack {missing}"
    for name in names:
        assert rows[name].rstrip().endswith("|") and rows[name].count("|") >= 6, rows[name]
