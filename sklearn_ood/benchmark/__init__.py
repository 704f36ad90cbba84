"""The library's main job: train (or load) a small model and compare every detector.

Run it from the command line::

    sklearn-ood benchmark                      # embedded digits, < 2 minutes
    sklearn-ood benchmark --id mnist --data-dir DATA_DIR
    sklearn-ood benchmark --id my_data.npz --ood my_ood_images/ \
        --model my_package.nets:build --weights my_model.pt \
        --blocks layer4 avgpool --head fc          # your data, your model

or from Python with :func:`run_benchmark` and :func:`write_report`.
"""

from .exceptions import BenchmarkError
from .report import write_report
from .result import BenchmarkResult
from .runner import run_benchmark
from .settings import ID_SETS
from .specs import DETECTORS

__all__ = [
    "DETECTORS", "ID_SETS", "BenchmarkError", "BenchmarkResult", "run_benchmark",
    "write_report",
]
