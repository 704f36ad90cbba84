"""A model detector's input: any input the extractor takes, read in batches of ``batch_size``."""

import contextlib
import itertools

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler, SubsetRandomSampler, WeightedRandomSampler

from .._base import OFFSET_SAMPLE_SIZE, offset_sample
from .._validation import check_labels, split_id_rows
from ..streaming import _input_kind, add_note, is_one_shot, iter_input_batches, n_samples

_RANDOM_SAMPLERS = (RandomSampler, SubsetRandomSampler, WeightedRandomSampler)


class ModelInput:
    """Images (and the labels of ``fit``) of any input kind, re-read pass by pass.

    ``X`` is read through :func:`~sklearn_ood.streaming.iter_input_batches`
    (arrays and lazily sliced array-likes, ``Dataset``, ``DataLoader``,
    iterables of batches) and regrouped into batches of exactly ``batch_size``
    images (the last one smaller): the batches, hence every score, do not
    depend on how the input is batched. At most one regrouped batch is held
    besides the batch being read.

    With ``fit=True`` the passes yield only the in-distribution rows: the
    labels are ``y`` or, when ``y`` is None, those the data yields (both:
    they must agree), under the convention of
    :func:`~sklearn_ood._validation.check_labels`. After a complete pass,
    :attr:`y` holds the labels of the ID rows (``None`` without classes).

    Used as a context manager around the passes, it closes the readers left
    open and names, in the note of any error raised while a regrouped batch
    was being processed, that batch and its samples.
    """

    def __init__(self, X, y=None, *, batch_size, detector, channels=None, fit=False):
        _reject_shuffled(X, type(detector).__name__)
        self.X, self.batch_size, self.fit = X, batch_size, fit
        self.name = type(detector).__name__
        self.n = n_samples(X)  # None when unknown before reading
        self.one_shot = is_one_shot(X)
        self.array = _input_kind(X) == "array"
        self.channels = channels  # expected channels; None: taken from the first batch
        self._shape = None
        self._head = None  # the first batch of a one-shot input, once peeked
        self._passes = 0
        self._open = []
        self._where = None
        self._y = self._labels = self._n_id = None
        self._seen = False  # whether y and n_id are known
        if y is not None and fit:
            y = np.asarray(y)
            n = self.n if self.n is not None else len(y) if y.ndim == 1 else -1
            check_labels(y, n)  # a length unknown yet is checked in the first pass
            self._labels = y
            self._finish_labels(y)

    # -------------------------------------------------------------- what is known
    @property
    def y(self):
        """Labels of the ID rows (``None``: no classes); known after a pass or from ``y``."""
        assert self._seen, "read the input once first"
        return self._y

    def offset_rows(self):
        """Rows (among the ID rows) that set ``offset_``, or ``None``: every ID row.

        ``None`` when the rows are all of them (at most 10,000 samples) or
        cannot be known before the one pass a one-shot input allows (the
        caller then samples the scores of every ID row). Otherwise a pass that
        reads the input without the model counts the ID rows if nothing did.
        """
        if not self._seen and not self.array:
            if self.one_shot or (self.n is not None and self.n <= OFFSET_SAMPLE_SIZE):
                return None
            for _ in self.batches(rows=np.empty(0, np.intp)):  # reads, keeps no image
                pass
        return offset_sample(self.n if self.array and not self._seen else self._n_id)

    @property
    def n_channels(self):
        """Channels of the images; the first batch is read if no pass did."""
        if self.channels is None:
            if self.array:
                self.channels = self.X.shape[1]
            else:
                batches = iter_input_batches(self.X, batch_size=1)
                with contextlib.closing(batches):
                    self._head = next(batches)
                self._check(self._head[0], 0, 0)
                if not self.one_shot:
                    self._head = None
        return self.channels

    # -------------------------------------------------------------------- passes
    def batches(self, rows=None):
        """Return a generator of CPU image tensors of ``batch_size`` rows: one pass.

        ``rows``: sorted positions among the ID rows (``fit``) or among all
        rows to keep; ``None`` keeps every one.
        """
        batches = self._batches(rows)
        self._open.append(batches)
        return batches

    def _batches(self, rows):
        if self.one_shot and self._passes:
            raise TypeError(
                f"{self.name} needs to read X twice, but X is a one-shot iterator (a "
                "generator) that is already read; pass an array, a Dataset or a DataLoader."
            )
        self._passes += 1
        reader = self._read()
        pieces, size, first, last = [], 0, None, None
        pos = kept = 0  # samples read; ID rows passed (fit) or rows passed (score)
        all_labels = []
        try:
            for index in itertools.count():
                images, labels = next(reader, (None, None))
                if images is None:
                    break
                n = len(images)
                self._check(images, index, pos)
                take = np.arange(n)
                if self.fit:
                    labels = self._batch_labels(labels, index, pos, n, all_labels)
                    if labels is not None:
                        take = np.flatnonzero(check_labels(labels, n)[1])
                if rows is not None:
                    lo, hi = np.searchsorted(rows, [kept, kept + len(take)])
                    selected = take[rows[lo:hi] - kept]
                else:
                    selected = take
                kept += len(take)
                if len(selected) < n:
                    images = images[torch.from_numpy(selected)]
                positions = pos + selected
                pos += n
                del labels, take
                while len(images):
                    room = self.batch_size - size
                    pieces.append(images[:room])
                    if first is None:
                        first = positions[0]
                    last = positions[min(room, len(images)) - 1]
                    images, positions = images[room:], positions[room:]
                    size += len(pieces[-1])
                    if size == self.batch_size:
                        yield self._batch(pieces, first, last)
                        pieces, size, first = [], 0, None
                del images
            if pieces:
                yield self._batch(pieces, first, last)
            self._complete(pos, all_labels)
        finally:
            self._where = None
            reader.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None and self._where is not None:
            add_note(exc, f"sklearn_ood: raised while {self.name} processed {self._where}.")
        while self._open:
            self._open.pop().close()

    # ------------------------------------------------------------------- helpers
    def _read(self):
        batches = iter_input_batches(self.X, batch_size=self.batch_size)
        if self._head is not None:
            head, self._head = self._head, None
            return _chain(head, batches)
        return batches

    def _batch(self, pieces, first, last):
        batch = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
        pieces.clear()
        self._where = (f"a batch of {len(batch)} images (samples {first} to {last} of X, "
                       f"pass {self._passes})")
        return batch

    def _check(self, images, index, start):
        where = f"batch {index} (samples {start} to {start + len(images) - 1}) of X"
        if images.ndim != 4:
            raise ValueError(
                f"{self.name} expects images of shape (n_samples, channels, height, width); "
                f"got shape {tuple(images.shape)} in {where}. Add the channel axis for grey "
                "images, e.g. X[:, None]."
            )
        if self.channels is None:
            self.channels = images.shape[1]
        elif images.shape[1] != self.channels and not self.array:
            before = "its first images have" if self.fit else f"{self.name} was fitted on"
            raise ValueError(
                f"X has {images.shape[1]} channels in {where}, but {before} "
                f"{self.channels} channels."
            )
        if self._shape is None:
            self._shape = tuple(images.shape[1:])
        elif tuple(images.shape[1:]) != self._shape:
            raise ValueError(
                f"X has images of shape {tuple(images.shape[1:])} in {where}, but "
                f"{self._shape} before; every image of X must have the same shape."
            )

    def _batch_labels(self, labels, index, start, n, all_labels):
        where = f"batch {index} (samples {start} to {start + n - 1}) of X"
        if self._labels is not None:  # y
            given = self._labels[start : start + n]
            if len(given) != n:
                raise ValueError(
                    f"y has {len(self._labels)} labels, but X has more samples ({where})."
                )
            if labels is not None and not _same(given, labels):
                raise ValueError(
                    f"y and the labels X yields disagree in {where}: y gives "
                    f"{given.tolist()}, X {np.asarray(labels).tolist()}. Pass y=None to use "
                    "the labels of X, or y that matches them."
                )
            return given
        if all_labels and (all_labels[0] is None) != (labels is None):
            raise ValueError(
                f"Some batches of X have labels and others not (see {where}); yield labels "
                "with every batch or none."
            )
        all_labels.append(labels)
        return labels

    def _complete(self, n_read, all_labels):
        if self._labels is not None and n_read != len(self._labels):
            raise ValueError(f"y has {len(self._labels)} labels, but X has {n_read} samples.")
        if self._seen:
            return
        self.n = n_read
        if self.fit and all_labels and all_labels[0] is not None:
            self._finish_labels(np.concatenate(all_labels))
        else:
            self._n_id, self._seen = n_read, True

    def _finish_labels(self, y):
        rows, self._y = split_id_rows(np.arange(len(y))[:, None], y)
        self._n_id, self._seen = len(rows), True


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    try:
        return bool(np.array_equal(a, b, equal_nan=True))
    except TypeError:  # labels that are not numbers
        return bool(np.array_equal(a, b))


def _chain(head, rest):
    yield head
    del head
    yield from rest


def _reject_shuffled(X, name):
    if not isinstance(X, DataLoader):
        return
    sampler = getattr(X.batch_sampler, "sampler", X.sampler)
    if isinstance(sampler, _RANDOM_SAMPLERS) or getattr(sampler, "shuffle", False) is True:
        raise ValueError(
            f"X is a DataLoader that shuffles (sampler {type(sampler).__name__}): it gives "
            f"the images in a new order at every pass, so {name}'s scores could not be "
            "matched to the images, and fit, which may read X more than once, would not "
            "see the same rows in each pass. Pass a DataLoader with shuffle=False (the "
            "order changes nothing in what fit learns)."
        )
