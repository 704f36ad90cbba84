"""The input boundary: any model input, classified once, as checked ``(images, labels)`` batches.

Every input the extractor and the model detectors accept -- arrays and
tensors, array-likes that slice lazily (``np.memmap``, h5py datasets, zarr
arrays), ``torch.utils.data.Dataset``, ``DataLoader`` and any iterable of
batches -- goes through :class:`InputStream`: its kind is found once per call,
and each pass yields batches checked here, and only here (dtype, shape,
channels, finite values, one label per image, labels that agree with ``y``).
At most one batch of images is in memory at a time (besides a
``DataLoader``'s own prefetching). Functions that need every image at once
(:func:`~sklearn_ood.pseudo_ood.jigsaw`) take an array checked by
:func:`check_images`, the same checks.
"""

import itertools
import warnings
from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import (
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
    default_collate,
)

__all__ = ["iter_input_batches", "labels_of", "n_samples"]

_RANDOM_SAMPLERS = (RandomSampler, SubsetRandomSampler, WeightedRandomSampler)


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

    See Also
    --------
    labels_of : the labels alone, e.g. for the ``y`` of a ``Pipeline``.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> data = TensorDataset(torch.zeros(5, 1, 4, 4), torch.tensor([0, 1, 1, 0, 2]))
    >>> [(tuple(x.shape), y.tolist()) for x, y in iter_input_batches(data, batch_size=2)]
    [((2, 1, 4, 4), [0, 1]), ((2, 1, 4, 4), [1, 0]), ((1, 1, 4, 4), [2])]
    """
    return InputStream(X).batches(batch_size=batch_size)


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
    return _length(_as_sliceable(X) if kind == "array" else X, kind)


def labels_of(X, *, batch_size=128):
    """The labels ``X`` yields, in the order it yields its samples; no model runs.

    The ``y`` to pass with data that carries its labels (a ``Dataset`` of
    ``(image, label)`` items, a ``DataLoader``) where a ``Pipeline`` needs
    them, since a ``Pipeline`` hands its final step only the ``y`` it is
    given: ``pipe.fit(loader, labels_of(loader))``. ``X`` is read once, each
    item loaded as a pass of the model would load it (transforms included)
    but without the model; for a large data set whose labels you hold
    (``dataset.targets`` of a torchvision data set without a
    ``target_transform``), pass those instead.

    Parameters
    ----------
    X : Dataset, DataLoader or iterable of batches
        Any input of :func:`iter_input_batches` that yields labels.
    batch_size : int, default=128
        Samples per batch for datasets.

    Returns
    -------
    labels : ndarray of shape (n_samples,)

    Raises
    ------
    TypeError
        For a one-shot iterator (a generator): reading its labels would use
        it up.
    ValueError
        For a ``DataLoader`` that shuffles (its order changes at every pass)
        or an input that yields no labels.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> loader = DataLoader(TensorDataset(torch.zeros(5, 1, 4, 4), torch.arange(5) % 2),
    ...                     batch_size=2)
    >>> labels_of(loader)
    array([0, 1, 0, 1, 0])
    """
    data = InputStream(X, owner="labels_of")
    if data.one_shot:
        raise TypeError(
            "labels_of reads X once, and X is a one-shot iterator (a generator) that "
            "would then be used up; pass a Dataset or a DataLoader, or collect the "
            "labels in the pass that uses the data (BlockFeatureExtractor."
            "transform_with_labels)."
        )
    if data.shuffles:
        raise ValueError(
            "X is a DataLoader that shuffles: its samples come in a new order at every "
            "pass, so labels read now would not match the next pass. Pass a DataLoader "
            "with shuffle=False, or collect the labels in the pass that uses the data "
            "(BlockFeatureExtractor.transform_with_labels)."
        )
    for _ in data.batches(batch_size=batch_size, labels=True):
        pass
    if data.labels is None:
        raise ValueError(
            f"X ({type(X).__name__}) yields no labels: its items or batches are images, "
            "not (images, labels) tuples."
        )
    return data.labels


def check_images(X, *, owner, name="X", channels=None):
    """Return ``X`` as an in-memory array of images ``(N, C, H, W)``, checked.

    Dense, real numeric, at least one image, finite values; with
    ``channels``, the channels an estimator was fitted on. For functions
    that need every image at once; streams are checked batch by batch by
    :class:`InputStream`, with the same checks and messages.
    """
    return InputStream(X, owner=owner, name=name, images=True, channels=channels).array()


def add_note(exc, note):
    """Attach ``note`` to ``exc`` (shown under its traceback) on Python >= 3.11."""
    if hasattr(exc, "add_note"):
        exc.add_note(note)


class InputStream:
    """``X`` classified once, read in passes of checked ``(images, labels)`` batches.

    The kind of ``X`` (see :func:`iter_input_batches`) and, when it is known
    without reading, its length are found on construction; an array's shape
    is checked at once. Each pass (:meth:`batches`) checks every batch as it
    is read: a real numeric dtype, the shape (``(N, C, H, W)`` images with
    ``images=True``, at least 2 dimensions otherwise), the channels and the
    sample shape an estimator expects, at least one sample, finite values and
    one label per image. Errors name the batch and its samples.

    Parameters
    ----------
    X : array-like, torch.Tensor, Dataset, DataLoader or iterable of batches
    y : array-like of shape (n_samples,) or None, default=None
        Labels that replace those the data yields (which must then agree
        with them); may also be set as the attribute ``y`` before a pass.
    owner : str, default="X"
        Who reads the input (an estimator or function name), for messages.
    name : str, default="X"
        The input's name in messages.
    images : bool, default=False
        Require images ``(n_samples, channels, height, width)``.
    channels : int or None, default=None
        The channels the owner was fitted on; ``None``: learned from the
        first batch (with ``images=True``), which later batches must match.
    sample_shape : tuple or None, default=None
        The shape of one sample the owner was fitted on.
    same_shape : bool, default=False
        Every sample must have the shape of the first one read.
    tabular : callable or None, default=None
        Applied to an array input of at most 2 dimensions (a list, a
        DataFrame) before anything else, e.g. scikit-learn's ``validate_data``;
        its result replaces ``X``.

    Attributes
    ----------
    kind : {"array", "dataset", "loader", "batches"}
    n : int or None
        Samples, when known without reading (see :func:`n_samples`); after a
        complete pass, the samples it read.
    one_shot : bool
        Whether ``X`` can be read only once (a generator or another iterator).
    shuffles : bool
        Whether ``X`` is a ``DataLoader`` whose order changes at every pass.
    channels : int or None
        Channels of the images, once known.
    has_labels : bool or None
        Whether the data yields labels, once a batch is read.
    labels : ndarray or None
        After a complete pass with ``labels=True``: ``y``, or the labels the
        data yielded (``None`` without any).
    """

    def __init__(self, X, y=None, *, owner="X", name="X", images=False, channels=None,
                 sample_shape=None, same_shape=False, tabular=None):
        kind = _input_kind(X)
        if kind == "array" and tabular is not None and not isinstance(X, torch.Tensor) and (
            len(X.shape) if hasattr(X, "shape") else np.asarray(X).ndim
        ) <= 2:
            X = tabular(X)
        self.owner, self.name, self.images = owner, name, images
        self.channels, self._fitted_channels = channels, channels is not None
        self.sample_shape = None if sample_shape is None else tuple(sample_shape)
        self._fitted_shape, self.same_shape = sample_shape is not None, same_shape
        self.y = None if y is None else np.asarray(y)
        self.kind = kind
        self.one_shot = isinstance(X, Iterator) and kind == "batches"
        sampler = getattr(X.batch_sampler, "sampler", X.sampler) if kind == "loader" else None
        self.shuffles = isinstance(sampler, _RANDOM_SAMPLERS) or (
            getattr(sampler, "shuffle", False) is True)
        self.has_labels = self.labels = None
        self._head = None  # the first batch of a one-shot input, once peeked
        self._read = False
        if kind == "array":
            if sp.issparse(X):
                raise TypeError(
                    f"{name} must be a dense array (n_samples, channels, height, width); "
                    "sparse input is not supported."
                )
            X = _as_sliceable(X)
            shape = tuple(X.shape)
            self._check_shape(shape, "")
            if shape[0] == 0:
                raise ValueError(f"{name} is empty: shape {shape}; need at least 1 sample.")
        self.X = X
        self.n = _length(X, kind)

    # ------------------------------------------------------------------ reading
    def batches(self, *, batch_size=128, labels=False):
        """Return a generator of checked ``(images, labels)`` batches: one pass.

        ``batch_size`` applies to arrays and datasets. With ``labels=True``
        every batch must have labels or none, and :attr:`labels` holds them
        after the pass. With ``y`` the batches' labels are ``y``'s.
        """
        if self.one_shot and self._read:
            raise TypeError(
                f"{self.owner} needs to read {self.name} twice, but {self.name} is a "
                "one-shot iterator (a generator) that is already read; pass an array, a "
                "Dataset or a DataLoader."
            )
        self._read = True
        return self._pass(batch_size, labels)

    def first(self):
        """The first batch (one sample for arrays and datasets), checked.

        A one-shot input's first batch is kept: the next pass yields it first.
        """
        if self._head is not None:
            return self._head
        reader, owned = self._reader(1)
        try:
            batch = next(reader)
        except StopIteration:
            raise ValueError(
                f"{self.name} is empty: it yielded no batch; need at least 1 sample."
            ) from None
        except BaseException as exc:
            add_note(exc, "sklearn_ood: raised while reading batch 0 (samples from 0) of "
                          "the input.")
            raise
        finally:
            if owned and hasattr(reader, "close"):
                reader.close()
        images, labels = head = self._check(batch, 0, 0)
        self._labels(labels, 0, 0, len(images), mixed_ok=True)
        if self.one_shot:
            self._head = head
        return head

    def array(self):
        """The whole input as one checked in-memory NumPy array (arrays only)."""
        if self.kind != "array":
            raise TypeError(
                f"{self.owner} takes an array of images (n_samples, channels, height, "
                f"width) as {self.name}; got a {type(self.X).__name__}."
            )
        X = np.asarray(self.X)
        self._check_dtype(X.dtype, "")
        if X.size == 0:
            raise ValueError(f"{self.name} is empty: shape {X.shape}; it holds no values.")
        if not np.all(np.isfinite(X)):
            raise ValueError(f"{self.name} contains NaN or infinity.")
        return X

    def _reader(self, batch_size):
        """Raw batches of one pass, and whether the reader is ours to close."""
        if self.kind == "loader":
            if self.X.batch_sampler is None:  # automatic batching off: it yields samples
                return _collate(iter(self.X), batch_size), True
            return iter(self.X), True
        if self.kind == "dataset":
            return _collate(_dataset_items(self.X), batch_size), True
        if self.kind == "array":
            X = self.X
            return (X[start : start + batch_size] for start in range(0, len(X), batch_size)), True
        return iter(self.X), False  # never close the caller's iterator

    def _pass(self, batch_size, with_labels):
        head, self._head = self._head, None
        reader, owned = self._reader(batch_size)
        start, parts = 0, []
        try:
            # No enumerate(): it keeps the last item, i.e. a second batch of images.
            for index in itertools.count():
                if head is not None:
                    (images, labels), head = head, None
                else:
                    try:
                        batch = next(reader)
                    except StopIteration:
                        break
                    except BaseException as exc:
                        add_note(exc, f"sklearn_ood: raised while reading batch {index} "
                                      f"(samples from {start}) of the input.")
                        raise
                    images, labels = self._check(batch, index, start)
                    del batch  # hold no batch while the next one is read
                labels = self._labels(labels, index, start, len(images),
                                      mixed_ok=not with_labels)
                if with_labels and labels is not None:
                    parts.append(labels)
                start += len(images)
                yield images, labels
                del images, labels
        finally:
            if owned and hasattr(reader, "close"):  # release our own reader now
                reader.close()
        if start == 0:
            raise ValueError(f"{self.name} is empty: it yielded no batch; need at least 1 "
                             "sample.")
        if self.y is not None and start != len(self.y):
            raise ValueError(f"y has {len(self.y)} labels, but {self.name} has {start} samples.")
        self.n = start
        if with_labels:
            self.labels = self.y if self.y is not None else (
                np.concatenate(parts) if parts else None)

    # ------------------------------------------------------------------- checks
    def _check(self, batch, index, start):
        """``(images, labels)`` of a raw batch, checked."""
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
        images = self._as_tensor(images, f" in batch {index}")
        where = f" in batch {index}"
        if images.ndim and len(images):
            where += f" (samples {start} to {start + len(images) - 1})"
        self._check_shape(tuple(images.shape), where)
        if len(images) == 0:
            raise ValueError(f"Batch {index} of {self.name} is empty: shape "
                             f"{tuple(images.shape)}.")
        if images.is_floating_point() and not torch.isfinite(images).all():
            raise ValueError(f"Input {self.name} contains NaN or infinity{where}.")
        if labels is not None:
            labels = (labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor)
                      else np.asarray(labels))
            if labels.ndim == 0 or len(labels) != len(images):
                raise ValueError(
                    f"The labels{where} have shape {labels.shape}; expected one label "
                    f"per image ({len(images)})."
                )
        return images, labels

    def _check_shape(self, shape, where):
        """The one check of image and sample shapes: for arrays at once, else per batch."""
        if self.images and len(shape) != 4:
            raise ValueError(
                f"{self.owner} expects images of shape (n_samples, channels, height, width); "
                f"got {self.name} of shape {shape}{where}. Add the channel axis for grey "
                f"images, e.g. {self.name}[:, None]."
            )
        if len(shape) < 2:
            raise ValueError(
                f"{self.name} must have a sample dimension and at least one feature "
                "dimension, e.g. images (n_samples, channels, height, width); got shape "
                f"{shape}{where}."
            )
        sample = shape[1:]
        if self.images:
            if self.channels is None:
                self.channels = sample[0]
            elif sample[0] != self.channels:
                before = (f"{self.owner} was fitted on images with" if self._fitted_channels
                          else "its first images have")
                raise ValueError(f"{self.name} has {sample[0]} channels{where}, but {before} "
                                 f"{self.channels} channels.")
        if self.sample_shape is None:
            if self.same_shape:
                self.sample_shape = sample
        elif sample != self.sample_shape:
            if not self._fitted_shape:
                raise ValueError(
                    f"{self.name} has samples of shape {sample}{where}, but its first "
                    f"samples have shape {self.sample_shape}; every sample of {self.name} "
                    "must have the same shape."
                )
            if len(sample) == 1 == len(self.sample_shape):
                raise ValueError(
                    f"{self.name} has {sample[0]} features{where}, but {self.owner} is "
                    f"expecting {self.sample_shape[0]} features as input."
                )
            raise ValueError(
                f"{self.name} has samples of shape {sample}{where}, but {self.owner} was "
                f"fitted on samples of shape {self.sample_shape}."
            )

    def _check_dtype(self, dtype, where):
        if dtype == object or not (
            np.issubdtype(dtype, np.number) or dtype == bool
        ) or np.issubdtype(dtype, np.complexfloating):
            raise TypeError(
                f"{self.name} must be a real numeric array or tensor; got dtype {dtype}{where}."
            )

    def _as_tensor(self, images, where):
        if isinstance(images, torch.Tensor):
            if images.is_complex():
                self._check_dtype(np.complex64, where)
            return images
        array = np.asarray(images)
        self._check_dtype(array.dtype, where)
        with warnings.catch_warnings():
            # Read-only arrays (memmaps) are fine: the input is never written to.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.from_numpy(np.ascontiguousarray(array))

    def _labels(self, labels, index, start, n, *, mixed_ok):
        """The labels of a batch: ``y``'s (checked against the data's), else the data's."""
        where = f"batch {index} (samples {start} to {start + n - 1}) of {self.name}"
        if self.has_labels is None:
            self.has_labels = labels is not None
        elif not mixed_ok and self.y is None and self.has_labels != (labels is not None):
            raise ValueError(
                f"Some batches of {self.name} have labels and others not (see {where}); "
                "yield labels with every batch or none."
            )
        if self.y is None:
            return labels
        given = self.y[start : start + n]
        if len(given) != n:
            raise ValueError(
                f"y has {len(self.y)} labels, but {self.name} has more samples ({where})."
            )
        if labels is not None and not _same(given, labels):
            raise ValueError(
                f"y and the labels {self.name} yields disagree in {where}: y gives "
                f"{given.tolist()}, {self.name} {np.asarray(labels).tolist()}. Pass y=None "
                f"to use the labels of {self.name}, or y that matches them."
            )
        return given


def _input_kind(X):
    """The one classifier of inputs: "array", "loader", "dataset" or "batches"."""
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


def _length(X, kind):
    if kind == "array":
        return X.shape[0] if len(X.shape) else None
    if kind == "dataset":
        return None if isinstance(X, IterableDataset) else _len(X)
    if kind == "loader" and not isinstance(X.dataset, IterableDataset):
        if X.batch_sampler is None:  # automatic batching off: one sample at a time
            return len(X.sampler)
        if X.batch_size is not None:
            n = len(X.sampler)
            return n - n % X.batch_size if X.drop_last else n
    return None


def _as_sliceable(X):
    """``X`` itself if slicing it reads only the slice, else an in-memory array."""
    if isinstance(X, torch.Tensor) or (
        hasattr(X, "shape") and hasattr(X, "__getitem__") and not hasattr(X, "columns")
        and not sp.issparse(X)
    ):
        return X
    return np.asarray(X)


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


def _is_batch_of_arrays(first):
    return isinstance(first, (torch.Tensor, np.ndarray)) or hasattr(first, "__array__")


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    try:
        return bool(np.array_equal(a, b, equal_nan=True))
    except TypeError:  # labels that are not numbers
        return bool(np.array_equal(a, b))
