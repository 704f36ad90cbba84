"""Write the API reference pages (``docs/api/*.rst``) from the package's ``__all__``.

Sphinx loads this extension from ``conf.py``. On ``builder-inited``, before
autosummary generates its stub pages, it imports :mod:`sklearn_ood` and every
module listed in :data:`MODULES`, and writes one page per module with an
``autosummary`` table of its public names. A module's public names are its
``__all__`` when it has one, otherwise every name it defines itself without a
leading underscore. An object appears once, under the first module that lists
it (the classes exported by ``sklearn_ood`` are documented there), so a new
detector added to ``__all__`` shows up without editing the docs.
"""

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

#: (module, title, include its submodules) in the order of the reference.
MODULES = [
    ("sklearn_ood", "Estimators and functions (``sklearn_ood``)", False),
    ("sklearn_ood.detectors", "Feature detectors: score functions (``sklearn_ood.detectors``)", True),
    ("sklearn_ood.model_detectors", "Model detectors (``sklearn_ood.model_detectors``)", True),
    ("sklearn_ood.extraction", "Feature extraction (``sklearn_ood.extraction``)", False),
    ("sklearn_ood.streaming", "Input batches and labels (``sklearn_ood.streaming``)", False),
    ("sklearn_ood.metrics", "Metrics and scorers (``sklearn_ood.metrics``)", False),
    ("sklearn_ood.tuning", "Tuning (``sklearn_ood.tuning``)", False),
    ("sklearn_ood.selection", "Choosing without OOD data: sources and rules "
     "(``sklearn_ood.selection``)", False),
    ("sklearn_ood.held_out_classes", "Held-out classes as pseudo-OOD "
     "(``sklearn_ood.held_out_classes``)", False),
    ("sklearn_ood.discovery", "Registry of detectors (``sklearn_ood.discovery``)", False),
    ("sklearn_ood.conformal", "Conformal calibration (``sklearn_ood.conformal``)", False),
    ("sklearn_ood.pseudo_ood", "Pseudo-OOD data (``sklearn_ood.pseudo_ood``)", False),
    ("sklearn_ood.display", "Plots (``sklearn_ood.display``)", False),
    ("sklearn_ood.models", "Models and training (``sklearn_ood.models``)", False),
    ("sklearn_ood.datasets", "Data sets (``sklearn_ood.datasets``)", False),
    ("sklearn_ood.diagnostics", "Diagnostics (``sklearn_ood.diagnostics``)", False),
    ("sklearn_ood.benchmark", "Benchmark (``sklearn_ood.benchmark``)", False),
    ("sklearn_ood.exceptions", "Warnings (``sklearn_ood.exceptions``)", False),
]


def public_names(module):
    """The public names of ``module``: ``__all__``, else what it defines itself.

    Without ``__all__``: the classes and functions whose ``__module__`` is the
    module, plus the names assigned at its top level (constants, scorers).
    """
    if hasattr(module, "__all__"):
        return list(module.__all__)
    tree = ast.parse(inspect.getsource(module))
    assigned = {target.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                if isinstance(target, ast.Name)}
    names = []
    for name, obj in vars(module).items():
        if name.startswith("_") or inspect.ismodule(obj):
            continue
        if getattr(obj, "__module__", None) == module.__name__ or name in assigned:
            names.append(name)
    return sorted(names, key=lambda n: (not inspect.isclass(getattr(module, n)), n.lower()))


def _submodules(package):
    return [importlib.import_module(f"{package.__name__}.{info.name}")
            for info in pkgutil.iter_modules(package.__path__) if not info.name.startswith("_")]


def _kind(obj):
    if inspect.isclass(obj):
        return "class"
    if inspect.isroutine(obj):
        return "function"
    return "data"


def _table(module, names, seen):
    """autosummary lines for the names of ``module`` not documented yet."""
    by_kind = {"class": [], "function": [], "data": []}
    for name in names:
        obj = getattr(module, name)
        key = id(obj) if _kind(obj) != "data" else (module.__name__, name)
        if key in seen:
            continue
        seen.add(key)
        by_kind[_kind(obj)].append(name)
    lines = []
    for kind, template in (("class", "class.rst"), ("function", "function.rst"),
                           ("data", "data.rst")):
        if not by_kind[kind]:
            continue
        lines += ["", f".. currentmodule:: {module.__name__}", "",
                  ".. autosummary::", "   :toctree: generated/", f"   :template: {template}",
                  "   :nosignatures:", ""]
        lines += [f"   {name}" for name in by_kind[kind]]
    return lines


def api_pages():
    """``{page name: rst text}`` of the API reference, the index page included."""
    seen, pages = set(), {}
    for modname, title, recurse in MODULES:
        module = importlib.import_module(modname)
        page = modname.replace("sklearn_ood.", "").replace("sklearn_ood", "sklearn_ood")
        lines = [title, "=" * len(title), "", f".. automodule:: {modname}", "   :no-members:",
                 "   :no-index:"]
        lines += _table(module, public_names(module), seen)
        if recurse:
            for sub in _submodules(module):
                body = _table(sub, public_names(sub), seen)
                if not body:
                    continue
                head = f"``{sub.__name__}``"
                lines += ["", head, "-" * len(head), "", f".. automodule:: {sub.__name__}",
                          "   :no-members:", "   :no-index:"]
                lines += body
        pages[page] = "\n".join(lines) + "\n"
    toc = ["API reference", "=============", "",
           "Generated from each module's ``__all__`` (or, for modules without one, the public",
           "names they define), so every exported estimator and function is listed here.", "",
           ".. toctree::", "   :maxdepth: 2", ""]
    toc += [f"   {page}" for page in pages]
    pages["index"] = "\n".join(toc) + "\n"
    return pages


def write_api_pages(srcdir):
    """Write the pages into ``srcdir/api``; rewrite a file only when it changed."""
    folder = Path(srcdir) / "api"
    folder.mkdir(exist_ok=True)
    for page, text in api_pages().items():
        path = folder / f"{page}.rst"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def _skip_foreign_member(app, what, name, obj, skip, options):
    """Hide members inherited from scikit-learn or torch (their docs live there)."""
    if what == "class":
        module = getattr(obj, "__module__", None) or ""
        if callable(obj) and not module.startswith("sklearn_ood"):
            return True
    return None


# "name : ndarray of shape (n_features_in_,)": in reStructuredText a word that ends
# in "_" is a link; quote such words in the type of a parameter/attribute line.
_FIELD = re.compile(r"^(\s*\w+ : )(.*)$")
_TRAILING_UNDERSCORE = re.compile(r"(?<![`\w])([A-Za-z]\w*_)(?=[,)\s]|$)")


def _quote_fitted_names_in_types(app, what, name, obj, options, lines):
    """Quote ``n_features_in_``-like words in numpydoc type specifications.

    scikit-learn quotes them by hand in its docstrings; here the docstrings
    stay as they are and the quoting happens at build time.
    """
    if what in ("data", "attribute") and lines and not inspect.isroutine(obj):
        type_doc = inspect.getdoc(type(obj)) or ""
        if "\n".join(lines).strip() == type_doc.strip():  # no doc of its own: say what it is
            module = name.rpartition(".")[0]
            lines[:] = [f"A ``{type(obj).__name__}``; see :mod:`{module}`.", ""]
            return
    for i, line in enumerate(lines):
        match = _FIELD.match(line)
        if match:
            head, spec = match.groups()
            lines[i] = head + _TRAILING_UNDERSCORE.sub(r"``\1``", spec)


def setup(app):
    # config-inited comes before Sphinx lists the source files and autosummary runs.
    app.connect("config-inited", lambda app, config: write_api_pages(app.srcdir))
    app.connect("autodoc-skip-member", _skip_foreign_member)
    # before numpydoc (priority 500) turns the sections into field lists
    app.connect("autodoc-process-docstring", _quote_fitted_names_in_types, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
