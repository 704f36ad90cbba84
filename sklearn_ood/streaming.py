"""Any model input as a stream of checked ``(images, labels)`` batches.

One batching path for every input the extractor accepts: arrays and tensors,
array-likes that slice lazily (``np.memmap``, h5py datasets, zarr arrays),
``torch.utils.data.Dataset``, ``DataLoader`` and any iterable of batches. At
most one batch of images is in memory at a time (besides a ``DataLoader``'s
own prefetching); values and shapes are checked batch by batch.
"""

import itertools
import warnings
from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, default_collate


def iter_input_batches(X, *, batch_size=128):
    """Return a generator of checked ``(images, labels)`` batches of ``X``.

    Parameters
    ----------
    X : array-like, torch.Tensor, Dataset, DataLoader or iterable of batches
        Model input, first dimension = samples:

        - an array or tensor, or an array-like that slices lazily
          (``np.memmap``, an h5py dataset, a zarr array: anything with
          ``shape`` and slicing), read ``batch_size`` samples at a time;
        - a map-style ``torch.utils.data.Dataset`` (with ``__len__``) or an
          ``IterableDataset``, whose items are an image, or a tuple ``(image,
          label, ...)``; items are collated ``batch_size`` at a time by
          ``torch.utils.data.default_collate``, as a ``DataLoader`` would;
        - a ``DataLoader``: its batches are used as it yields them, so its
          own batch size, transforms, workers and pinned memory apply and
          ``batch_size`` is ignored;
        - any other iterable of batches (a generator, ``iter(list)``), each
          a tensor (or array) of images or a tuple ``(images, labels, ...)``;
          ``batch_size`` is ignored. A list is read as an array, not as a list
          of batches: pass ``iter(batches)`` for that.
    batch_size : int, default=128
        Samples per batch for arrays and datasets.

    Returns
    -------
    batches : generator of (torch.Tensor, ndarray or None)
        Images of shape ``(n, ...)`` as given (dtype and device unchanged) and
        their ``n`` labels, or ``None`` when the input has none. Every batch is
        checked before it is yielded: a real numeric dtype, at least 2
        dimensions, at least one sample, finite values, one label per image.

    Raises
    ------
    ValueError
        For an empty input, or a batch that fails a check; the message names
        the batch and its samples. An error raised while reading the input
        (say, by a ``Dataset`` item) keeps its type and gets a note naming the
        batch (and the item, for a ``Dataset``) on Python >= 3.11.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> data = TensorDataset(torch.zeros(5, 1, 4, 4), torch.tensor([0, 1, 1, 0, 2]))
    >>> [(tuple(x.shape), y.tolist()) for x, y in iter_input_batches(data, batch_size=2)]
    [((2, 1, 4, 4), [0, 1]), ((2, 1, 4, 4), [1, 0]), ((1, 1, 4, 4), [2])]
    """
    kind = _input_kind(X)
    if kind == "loader":
        batches = _loader_batches(X, batch_size)
    elif kind == "dataset":
        batches = _collate(_dataset_items(X), batch_size)
    elif kind == "array":
        batches = _array_batches(_as_sliceable(X), batch_size)
    else:
        return _checked_batches(iter(X), owned=False)
    return _checked_batches(batches, owned=True)


def n_samples(X):
    """Number of samples ``X`` yields, or ``None`` if unknown without reading it.

    Known for arrays and tensors, map-style datasets, and ``DataLoader``\\ s over
    a map-style dataset with a batch size (``len(sampler)``, less the
    incomplete last batch with ``drop_last=True``).

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> data = TensorDataset(torch.zeros(10, 3))
    >>> n_samples(data), n_samples(DataLoader(data, batch_size=4, drop_last=True))
    (10, 8)
    >>> n_samples(iter([torch.zeros(4, 3)])) is None
    True
    """
    kind = _input_kind(X)
    if kind == "array":
        return _as_sliceable(X).shape[0]
    if kind == "dataset":
        return None if isinstance(X, IterableDataset) else _len(X)
    if kind == "loader" and not isinstance(X.dataset, IterableDataset):
        if X.batch_sampler is None:  # automatic batching off: one sample at a time
            return len(X.sampler)
        if X.batch_size is not None:
            n = len(X.sampler)
            return n - n % X.batch_size if X.drop_last else n
    return None


def is_one_shot(X):
    """Whether ``X`` can be read only once (a generator or another iterator)."""
    return isinstance(X, Iterator) and _input_kind(X) == "batches"


def add_note(exc, note):
    """Attach ``note`` to ``exc`` (shown under its traceback) on Python >= 3.11."""
    if hasattr(exc, "add_note"):
        exc.add_note(note)


def _input_kind(X):
    if isinstance(X, torch.Tensor):
        return "array"
    if isinstance(X, DataLoader):
        return "loader"
    if isinstance(X, Dataset):
        return "dataset"
    if (
        isinstance(X, (np.ndarray, list, tuple))
        or sp.issparse(X)
        or hasattr(X, "__array__")
        or (hasattr(X, "shape") and hasattr(X, "__getitem__"))
    ):
        return "array"
    if isinstance(X, Iterable) and not isinstance(X, (str, bytes, Mapping)):
        return "batches"
    return "array"  # a scalar or None: the array checks reject it


def _as_sliceable(X):
    """``X`` itself if slicing it reads only the slice, else an in-memory array."""
    if isinstance(X, torch.Tensor) or (
        hasattr(X, "shape") and hasattr(X, "__getitem__") and not hasattr(X, "columns")
        and not sp.issparse(X)
    ):
        return X
    return np.asarray(X)


def _array_batches(X, batch_size):
    if len(X.shape) < 2:
        raise ValueError(
            f"X must have a sample dimension and at least one feature dimension, e.g. "
            f"images (n_samples, channels, height, width); got shape {tuple(X.shape)}."
        )
    n = X.shape[0]
    if n == 0:
        raise ValueError(f"X is empty: shape {tuple(X.shape)}; need at least 1 sample.")
    return (X[start : start + batch_size] for start in range(0, n, batch_size))


def _loader_batches(loader, batch_size):
    if loader.batch_sampler is None:  # automatic batching off: it yields samples
        return _collate(iter(loader), batch_size)
    return iter(loader)


def _dataset_items(dataset):
    if isinstance(dataset, IterableDataset):
        yield from dataset
        return
    n = _len(dataset)
    if n is None:
        raise TypeError(
            f"A map-style Dataset needs __len__; {type(dataset).__name__} has none. "
            "Define __len__, or pass an IterableDataset or a DataLoader."
        )
    for i in range(n):
        try:
            item = dataset[i]
        except BaseException as exc:
            add_note(exc, f"sklearn_ood: raised by item {i} of the Dataset.")
            raise
        yield item


def _len(obj):
    try:
        return len(obj)
    except TypeError:
        return None


def _collate(items, batch_size):
    # The items list is a temporary: only the collated copy outlives the call.
    items = iter(items)
    for first in items:
        yield default_collate([first, *itertools.islice(items, batch_size - 1)])


def _checked_batches(batches, *, owned):
    start = 0
    try:
        for index in itertools.count():
            try:
                batch = next(batches)
            except StopIteration:
                break
            except BaseException as exc:
                add_note(exc, f"sklearn_ood: raised while reading batch {index} "
                              f"(samples from {start}) of the input.")
                raise
            images, labels = _check_batch(batch, index, start)
            start += len(images)
            del batch  # hold no batch while the next one is read
            yield images, labels
            del images, labels
    finally:
        if owned and hasattr(batches, "close"):  # release our own reader now;
            batches.close()  # never close the caller's iterator
    if start == 0:
        raise ValueError("X is empty: it yielded no batch; need at least 1 sample.")


def _check_batch(batch, index, start):
    labels = None
    if isinstance(batch, (tuple, list)) and batch and _is_batch_of_arrays(batch[0]):
        images = batch[0]
        labels = batch[1] if len(batch) > 1 else None
    elif isinstance(batch, Mapping):
        raise TypeError(
            f"Batch {index} is a {type(batch).__name__}; expected images, or a tuple "
            "(images, labels, ...). Wrap the data so that it yields, e.g., "
            "(batch['pixel_values'], batch['label'])."
        )
    else:
        images = batch
    images = _as_image_tensor(images, index)
    if images.ndim < 2:
        raise ValueError(
            f"X must have a sample dimension and at least one feature dimension, e.g. "
            f"images (n_samples, channels, height, width); got shape "
            f"{tuple(images.shape)} in batch {index}."
        )
    if len(images) == 0:
        raise ValueError(f"Batch {index} of X is empty: shape {tuple(images.shape)}.")
    where = f"batch {index} (samples {start} to {start + len(images) - 1})"
    if images.is_floating_point() and not torch.isfinite(images).all():
        raise ValueError(f"Input X contains NaN or infinity in {where}.")
    if labels is not None:
        labels = (labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor)
                  else np.asarray(labels))
        if labels.ndim == 0 or len(labels) != len(images):
            raise ValueError(
                f"The labels of {where} have shape {labels.shape}; expected one label "
                f"per image ({len(images)})."
            )
    return images, labels


def _is_batch_of_arrays(first):
    return isinstance(first, (torch.Tensor, np.ndarray)) or hasattr(first, "__array__")


def _as_image_tensor(images, index):
    if isinstance(images, torch.Tensor):
        if images.is_complex():
            raise TypeError(f"X must be real-valued; got a complex tensor in batch {index}.")
        return images
    array = np.asarray(images)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == bool
    ) or np.issubdtype(array.dtype, np.complexfloating):
        raise TypeError(
            f"X must be a real numeric array or tensor; got dtype {array.dtype} in "
            f"batch {index}."
        )
    with warnings.catch_warnings():
        # Read-only arrays (memmaps) are fine: the input is never written to.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array))
