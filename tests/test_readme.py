"""The README is a front page: its examples run as written (on the embedded digits
data), its commands are the ones CI runs, its detector list is generated, its links
resolve, and it carries no hand-written result table."""

import pathlib
import re

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
pytestmark = pytest.mark.skipif(not README.exists(),
                                reason="README.md is not installed with the package")

_TABLE = re.compile(r"<!-- detector-table: [^\n]*-->\n(.*?)<!-- end of detector-table -->", re.S)


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_examples_run(capsys):
    blocks = _python_blocks()
    assert len(blocks) >= 2
    torch.manual_seed(0)
    namespace = {}
    for block in blocks:  # later blocks continue the first one
        exec(compile(block, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    aurocs = [float(v) for v in re.findall(r"AUROC (\d\.\d+)", out)]
    assert len(aurocs) == 2 and min(aurocs) > 0.8, out
    assert namespace["detector"].predict(namespace["X_ood"][:3]).shape == (3,)


def test_two_commands_are_the_benchmark_and_the_ci_test_command():
    section = README.read_text().split("## Two commands", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)
    assert len(commands) == 2, commands
    assert commands[0].endswith("sklearn-ood benchmark")
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert commands[1] == ci, "README's test command differs from what .ci/run runs"


def test_detector_table_is_the_generated_one():
    """The README's detector list is ``detector_table()``, so it lists every registered
    detector with what its class declares; regenerate it when a detector changes."""
    from sklearn_ood.discovery import all_detectors, detector_table

    block = _TABLE.search(README.read_text())
    assert block, "README.md lacks the generated detector table"
    assert block.group(1) == detector_table(), (
        "README.md's detector table is stale: replace it with the output of "
        "python -c 'from sklearn_ood.discovery import detector_table; print(detector_table())'")
    assert len(block.group(1).splitlines()) == 2 + len(all_detectors())


def test_front_page_is_short_links_resolve_and_no_table_is_typed():
    text = README.read_text()
    assert len(text.splitlines()) <= 250, "README.md is a front page: move details to docs/"
    # results live in the generated documentation pages: outside the generated detector
    # table, the README has no Markdown table
    rest = _TABLE.sub("", text)
    assert not re.search(r"^\|.*\|\s*$", rest, flags=re.M), "a hand-written table in README.md"
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
        assert (ROOT / target).exists(), f"README.md links to a missing file: {target}"
