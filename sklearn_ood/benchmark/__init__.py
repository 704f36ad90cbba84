"""The library's main job: train (or load) a small model and compare every detector.

Run it from the command line::

    sklearn-ood benchmark                      # embedded digits, < 2 minutes
    sklearn-ood benchmark --id mnist --data-dir DATA_DIR
    sklearn-ood benchmark --id my_data.npz --ood my_ood_images/ \
        --model my_package.nets:build --weights my_model.pt \
        --blocks layer4 avgpool --head fc          # your data, your model

or from Python with :func:`run_benchmark` and :func:`write_report`.
"""

import importlib

from .exceptions import BenchmarkError

__all__ = [
    "DETECTORS", "ID_SETS", "BenchmarkError", "BenchmarkResult", "run_benchmark",
    "write_report",
]

#: Public name -> the module defining it, imported on first access (PEP 562): the
#: command line builds its parser without importing PyTorch or scikit-learn.
_EXPORTS = {"DETECTORS": "specs", "ID_SETS": "settings", "BenchmarkResult": "result",
            "run_benchmark": "runner", "write_report": "report"}


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_EXPORTS})
