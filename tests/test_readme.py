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
def test_detector_table_is_the_generated_one():
    """The README's detector list is ``detector_table()``, so it lists every registered
    detector with what its class declares; regenerate it when a detector changes."""
    from sklearn_ood.discovery import all_detectors, detector_table

    text = README.read_text()
    block = re.search(r"<!-- detector-table: [^\n]*-->\n(.*?)<!-- end of detector-table -->",
                      text, flags=re.S)
    assert block, "README.md lacks the generated detector table"
    assert block.group(1) == detector_table(), (
        "README.md's detector table is stale: replace it with the output of "
        "python -c 'from sklearn_ood.discovery import detector_table; print(detector_table())'")
    assert len(block.group(1).splitlines()) == 2 + len(all_detectors())
