"""The documentation: every public name has an API page, and the site builds without warnings.

The methods page is checked without a build (one entry with a formula per
registered detector). The build runs ``sphinx-build -W --keep-going`` in a
subprocess into ``tmp_path`` (the examples of the gallery are executed unless
sphinx-gallery finds them unchanged since the last build in ``docs/auto_examples``).
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import sklearn_ood
from sklearn_ood.discovery import all_detectors

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _api_extension():
    spec = importlib.util.spec_from_file_location(
        "_sklearn_ood_api", DOCS / "_ext" / "sklearn_ood_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entries(rst):
    """The names listed in the autosummary tables of one generated page."""
    return {line.strip() for line in rst.splitlines()
            if line.startswith("   ") and not line.strip().startswith(":")}


def test_api_pages_list_every_public_name():
    pages = _api_extension().api_pages()
    top = _entries(pages["sklearn_ood"])
    assert set(sklearn_ood.__all__) <= top, set(sklearn_ood.__all__) - top
    # every module of the reference has a page, linked from the index
    for page in pages:
        if page != "index":
            assert f"   {page}" in pages["index"]


def test_api_pages_list_module_functions():
    pages = _api_extension().api_pages()
    detectors = pages["detectors"]
    for name in ("ash", "energy", "kth_neighbor_sqdist", "nap_score"):
        assert f"   {name}" in detectors.splitlines(), name
    assert "   auroc_scorer" in pages["metrics"].splitlines()
    assert "   load_digits_ood" in pages["datasets"].splitlines()


def test_methods_page_has_one_entry_with_a_formula_per_detector():
    page = (DOCS / "user_guide" / "methods.rst").read_text()
    # an entry is a definition-list term ":class:`~sklearn_ood.Name`" alone on its line,
    # its body the indented lines up to the next term or section
    parts = re.split(r"^:class:`~sklearn_ood\.(\w+)`\n", page, flags=re.M)
    names, bodies = parts[1::2], parts[2::2]
    assert sorted(names) == sorted(name for name, _ in all_detectors())
    for name, body in zip(names, bodies):
        body = re.split(r"\n\n(?=\S)", body, maxsplit=1)[0]
        assert ".. math::" in body, f"the entry of {name} has no formula"


def test_docs_build_without_warnings(tmp_path):
    out = tmp_path / "html"
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr[-5000:]
    for name in sklearn_ood.__all__:
        assert (out / "api" / "generated" / f"sklearn_ood.{name}.html").is_file(), name
    for example in ("quickstart", "l2_normalized_resnet"):
        page = (out / "auto_examples" / f"{example}.html").read_text()
        assert f"sphx_glr_{example}_001.png" in page, f"no figure in the {example} page"
