"""CONTRIBUTING.md's worked example is the library's LTS module, line for line."""

import inspect
import pathlib
import re

import pytest

from sklearn_ood.detectors import lts

GUIDE = pathlib.Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"


@pytest.mark.skipif(not GUIDE.exists(), reason="CONTRIBUTING.md is not installed with the package")
def test_worked_example_is_the_lts_module():
    (example,) = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    source = inspect.getsource(lts)
    lines = [line.strip() for line in example.splitlines()
             if line.strip() and not line.strip().startswith('"""')]
    missing = [line for line in lines if line not in source]
    assert not missing, f"CONTRIBUTING.md's example differs from lts.py: {missing}"
