"""The registry of detectors: every detector class of the library, with what it declares.

As :func:`sklearn.utils.discovery.all_estimators` lists scikit-learn's
estimators, :func:`all_detectors` lists ours by walking the modules of
:mod:`sklearn_ood.detectors` and :mod:`sklearn_ood.model_detectors`; a class
is a detector when it declares its own :class:`~sklearn_ood._tags.DetectorTags`
(class attribute ``_detector_tags``). The benchmark's rows, the tests' and the
perf scripts' tables and the documentation's detector list are derived from
it, so a new detector module is picked up everywhere.
"""

import importlib
import inspect
import pkgutil

from ._tags import DetectorTags, get_detector_tags, tuning_grid

__all__ = ["DetectorTags", "all_detectors", "describe_detectors", "detector_table",
           "get_detector_tags", "tuning_grid"]

_PACKAGES = ("sklearn_ood.detectors", "sklearn_ood.model_detectors")


def all_detectors(input=None):
    """Every detector class of the library, sorted by name.

    Parameters
    ----------
    input : str or list of str, default=None
        Keep the detectors whose declared input is one of these
        (``"features"``, ``"maps"``, ``"max_avg"``, ``"blocks"``,
        ``"images"``; see :class:`~sklearn_ood._tags.DetectorTags`).

    Returns
    -------
    detectors : list of (str, type)
        ``(class name, class)`` pairs.

    Examples
    --------
    >>> from sklearn_ood.discovery import all_detectors
    >>> [name for name, _ in all_detectors(input="images")]
    ['AdaSCALE', 'BlockSelection', 'InputPreprocessedMahalanobis', 'MCDropout', 'ODIN']
    """
    wanted = [input] if isinstance(input, str) else input
    found = {}
    for package_name in _PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{package_name}.{info.name}")
            for name, cls in inspect.getmembers(module, inspect.isclass):
                if (cls.__module__ == module.__name__ and not name.startswith("_")
                        and "_detector_tags" in vars(cls)):
                    found[name] = cls
    detectors = sorted(found.items(), key=lambda item: item[0].lower())
    if wanted is not None:
        detectors = [(n, c) for n, c in detectors if get_detector_tags(c).input in wanted]
    return detectors


def _summary(cls):
    """The first sentence of the class docstring, without its class-name prefix."""
    first = inspect.getdoc(cls).split("\n\n")[0].replace("\n", " ").strip()
    return first.split(": ", 1)[1] if first.startswith(f"{cls.__name__}: ") else first


def describe_detectors():
    """One record per detector: what its class declares, for tables and docs.

    Returns
    -------
    records : list of dict
        Keys ``name``, ``module`` (where it is defined), ``input``, ``ndim``,
        ``head``, ``labels``, ``calibrated``, ``partial_fit`` (whether the class
        has ``partial_fit``), ``tuned`` (the knobs of its default tuning grid,
        for a grid that does not depend on the data), ``paper`` and
        ``summary`` (the first sentence of its docstring).

    Examples
    --------
    >>> from sklearn_ood.discovery import describe_detectors
    >>> knn = next(r for r in describe_detectors() if r["name"] == "KNN")
    >>> knn["input"], knn["partial_fit"], knn["paper"]
    ('features', True, 'Sun et al., ICML 2022')
    """
    records = []
    for name, cls in all_detectors():
        tags = get_detector_tags(cls)
        grid = tags.grid(10**9) if callable(tags.grid) else tags.grid
        records.append(dict(
            name=name, module=cls.__module__, input=tags.input, ndim=tags.ndim, head=tags.head,
            labels=tags.labels, calibrated=tags.calibrated,
            partial_fit=hasattr(cls, "partial_fit"),
            tuned=sorted(grid) if grid else [], paper=tags.paper, summary=_summary(cls)))
    return records


_INPUT_WORDS = {"features": "penultimate features", "maps": "a block's maps",
                "max_avg": "per-channel max and mean of a block's maps",
                "blocks": "pooled outputs of several blocks", "images": "images (runs the model)"}


def _needs(record):
    needs = []
    if record["head"] == "required":
        needs.append("head")
    elif record["head"] == "or_logits":
        needs.append("head (or logits)")
    elif record["head"] == "optional":
        needs.append("head (optional)")
    if record["labels"] is not None:
        needs.append("labels" if record["labels"] == "required" else "labels (optional)")
    if record["calibrated"]:
        needs.append("held-out calibration rows (X_cal)")
    return ", ".join(needs) or "-"


def detector_table():
    """The detector list as a Markdown table (README and documentation).

    Returns
    -------
    table : str
        One row per detector of :func:`describe_detectors`: name, input,
        needs, whether it tunes / takes ``partial_fit``, what it scores and
        its paper.

    Examples
    --------
    >>> from sklearn_ood.discovery import detector_table
    >>> print(detector_table().splitlines()[0])
    | detector | input | needs | tuned knobs | partial_fit | what it scores | paper |
    """
    lines = ["| detector | input | needs | tuned knobs | partial_fit | what it scores | paper |",
             "|---|---|---|---|---|---|---|"]
    for r in describe_detectors():
        tuned = ", ".join(f"`{k}`" for k in r["tuned"]) or "-"
        lines.append(f"| `{r['name']}` | {_INPUT_WORDS[r['input']]} | {_needs(r)} | {tuned} | "
                     f"{'yes' if r['partial_fit'] else '-'} | {r['summary'].rstrip('.')} | "
                     f"{r['paper']} |")
    return "\n".join(lines) + "\n"
