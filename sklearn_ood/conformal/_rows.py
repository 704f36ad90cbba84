"""Rows of any detector input, selected without reading the others.

Splitting the input into fit and calibration rows (or folds) needs an input
whose rows can be addressed: arrays and tensors, array-likes that slice
lazily (``np.memmap``, h5py, zarr), pandas DataFrames, map-style
``torch.utils.data.Dataset`` and a ``DataLoader`` that reads a map-style
dataset in order. A selection of an array-like is a lazy view (:class:`RowSubset`),
of a dataset a ``torch.utils.data.Subset``, of such a ``DataLoader`` the same
loader over the ``Subset``: images are read batch by batch when the detector
reads them, never all at once.
"""

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import _num_samples

from .._row_subset import RowSubset

_NOT_INDEXABLE = (
    "{what} cannot be split into fit and calibration rows (nor its OOD rows, negative in "
    "y, kept out of the calibration rows): its rows cannot be selected without reading "
    "it. Pass an array, an array-like that slices lazily (np.memmap, "
    "h5py), a map-style Dataset or a DataLoader reading one in order (shuffle=False, "
    "drop_last=False, no custom sampler); or fit the detector on other rows yourself "
    "and calibrate it on this input with ConformalDetector(FrozenEstimator(detector))."
)


def _torch_data():
    import torch.utils.data as data  # torch is a dependency; imported where needed

    return data


def n_rows(X):
    """Number of rows of an input whose rows can be selected; ``TypeError`` otherwise."""
    data = _torch_data()
    if isinstance(X, data.DataLoader):
        _check_loader(X)
        return len(X.dataset)
    if isinstance(X, data.IterableDataset) or (
            isinstance(X, Iterator) and not hasattr(X, "shape")):
        raise TypeError(_NOT_INDEXABLE.format(what=f"X ({type(X).__name__})"))
    if isinstance(X, data.Dataset):
        return len(X)
    return _num_samples(X)


def take_rows(X, rows):
    """Rows ``rows`` (sorted indices) of ``X``, selected lazily where ``X`` is not in memory."""
    data = _torch_data()
    rows = np.asarray(rows, dtype=np.intp)
    if isinstance(X, data.DataLoader):
        return _loader_over(X, data.Subset(X.dataset, rows.tolist()))
    if isinstance(X, data.Dataset):
        return data.Subset(X, rows.tolist())
    if sp.issparse(X):
        return _safe_indexing(X.tocsr(), rows)  # the detector then says if it takes sparse input
    if not hasattr(X, "__getitem__"):
        return np.asarray(X)[rows]
    if hasattr(X, "shape") and not hasattr(X, "iloc") and len(X.shape) >= 1:
        return RowSubset(X, rows)
    return _safe_indexing(X, rows)


def _check_loader(loader):
    data = _torch_data()
    if (isinstance(loader.dataset, data.IterableDataset)
            or not isinstance(loader.sampler, data.SequentialSampler) or loader.drop_last
            or (loader.batch_sampler is not None
                and type(loader.batch_sampler) is not data.BatchSampler)):
        raise TypeError(_NOT_INDEXABLE.format(
            what="X (a DataLoader that does not read a map-style dataset in order)"))


def _loader_over(loader, dataset):
    """A DataLoader like ``loader`` (batch size, workers, collate) over ``dataset``."""
    data = _torch_data()
    workers = loader.num_workers
    return data.DataLoader(
        dataset, batch_size=loader.batch_size, num_workers=workers,
        collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context if workers else None,
        prefetch_factor=loader.prefetch_factor if workers else None,
        persistent_workers=loader.persistent_workers if workers else False,
    )
