"""Sphinx configuration of the sklearn-ood documentation.

Build from the repository root (no network needed)::

    sphinx-build -W --keep-going -b html docs docs/_build/html
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Document the checkout that holds this conf.py, whatever sklearn_ood is installed.
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE / "_ext"))

import torch  # noqa: E402

import sklearn_ood  # noqa: E402

# Examples train small networks: one torch thread is fastest on a shared 2-core
# machine; figures are drawn off-screen.
os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)


project = "sklearn-ood"
author = "sklearn-ood developers"
copyright = "2026, sklearn-ood developers"
release = sklearn_ood.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "sklearn_ood_api",  # writes api/*.rst from the package's __all__ (docs/_ext)
    "sklearn_ood_pages",  # writes generated/*.rst: detectors, results, performance (docs/_ext)
]

templates_path = ["_templates"]
# generated/selection.rst is included by user_guide/tuning.rst, not a page of its own.
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb", "**.py.md5",
                    "auto_examples/*.py", "auto_examples/*.zip", "generated/selection.rst"]
root_doc = "index"

# No intersphinx: the build must work offline.
autosummary_generate = True
autodoc_default_options = {"member-order": "groupwise"}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# Types such as "ndarray of shape (n_features_in_,)" are shown as text, not parsed as
# reStructuredText (where a trailing underscore would make a link).
numpydoc_xref_param_type = False

sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "examples"),
    "gallery_dirs": str(HERE / "auto_examples"),
    "filename_pattern": r"/.*\.py$",  # execute every example
    "doc_module": ("sklearn_ood",),
    "backreferences_dir": str(HERE / "api" / "generated" / "backreferences"),
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib", "gallery_config.png_scraper"),
    "within_subsection_order": "FileNameSortKey",
    "show_memory": False,
    "reset_argv": "gallery_config.reset_argv",  # docs/_ext/gallery_config.py
}

html_theme = "alabaster"
html_title = f"sklearn-ood {release}"
html_static_path = []
html_theme_options = {
    "description": "Out-of-distribution detection for PyTorch models, the scikit-learn way",
    "fixed_sidebar": True,
}
