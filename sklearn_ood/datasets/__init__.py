"""Image data sets for OOD-detection experiments.

Every loader returns images as ``float32`` arrays of shape ``(N, C, H, W)``
(NCHW, the layout PyTorch expects) with values in ``[0, 1]`` (``uint8 / 255``)
and labels as ``int64`` arrays of shape ``(N,)``.

* :func:`load_digits_ood` builds a small, complete benchmark only from data
  that installed packages ship (scikit-learn's digits and sample photos), so
  examples and tests run without any download.
* :func:`load_npz`, :func:`load_idx`, :func:`load_image_folder` and
  :func:`load_images` read real
  data from disk and validate what they read.
* :func:`load_benchmark` loads the shared benchmark sets listed in
  :data:`BENCHMARKS` by name.

This package is a leaf: it imports NumPy and scikit-learn only (Pillow lazily,
when image files have to be decoded).
"""

from ._benchmarks import BENCHMARKS, list_benchmarks, load_benchmark
from ._digits import load_digits_ood
from ._files import load_idx, load_image_folder, load_images, load_npz

__all__ = [
    "BENCHMARKS",
    "list_benchmarks",
    "load_benchmark",
    "load_digits_ood",
    "load_idx",
    "load_image_folder",
    "load_images",
    "load_npz",
]
