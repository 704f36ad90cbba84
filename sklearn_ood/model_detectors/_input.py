"""A model detector's input: any input the extractor takes, read in batches of ``batch_size``."""

import itertools

import numpy as np
import torch

from .._base import OFFSET_SAMPLE_SIZE, offset_sample
from .._validation import check_labels, split_id_rows
from ..streaming import InputStream, add_note


class ModelInput:
    """Images (and the labels of ``fit``) of any input kind, re-read pass by pass.

    ``X`` is an :class:`~sklearn_ood.streaming.InputStream` of images (or any
    input, which is then wrapped in one): the stream classifies and checks it
    (arrays and lazily sliced array-likes, ``Dataset``, ``DataLoader``,
    iterables of batches), and its batches are regrouped here into batches of
    exactly ``batch_size`` images (the last one smaller): the batches, hence
    every score, do not depend on how the input is batched. At most one
    regrouped batch is held besides the batch being read.

    With ``fit=True`` the passes yield only the in-distribution rows: the
    labels are ``y`` or, when ``y`` is None, those the data yields (both:
    they must agree), under the convention of
    :func:`~sklearn_ood._validation.check_labels`. After a complete pass,
    :attr:`y` holds the labels of the ID rows (``None`` without classes).

    Used as a context manager around the passes, it closes the readers left
    open and names, in the note of any error raised while a regrouped batch
    was being processed, that batch and its samples.
    """

    def __init__(self, X, y=None, *, batch_size, detector, fit=False):
        self.name = type(detector).__name__
        data = X if isinstance(X, InputStream) else InputStream(
            X, owner=self.name, images=True, same_shape=True)
        if data.shuffles:
            sampler = getattr(data.X.batch_sampler, "sampler", data.X.sampler)
            raise ValueError(
                f"X is a DataLoader that shuffles (sampler {type(sampler).__name__}): it "
                f"gives the images in a new order at every pass, so {self.name}'s scores "
                "could not be matched to the images, and fit, which may read X more than "
                "once, would not see the same rows in each pass. Pass a DataLoader with "
                "shuffle=False (the order changes nothing in what fit learns)."
            )
        self.data, self.batch_size, self.fit = data, batch_size, fit
        self.n = data.n  # None when unknown before reading
        self.one_shot = data.one_shot
        self.array = data.kind == "array"
        self._passes = 0
        self._open = []
        self._where = None
        self._y = self._n_id = None
        self._seen = False  # whether y and n_id are known
        if y is not None and fit:
            y = np.asarray(y)
            n = self.n if self.n is not None else len(y) if y.ndim == 1 else -1
            check_labels(y, n)  # a length unknown yet is checked in the first pass
            data.y = y
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
        if self.data.channels is None:
            self.data.first()  # a one-shot input keeps it for the pass
        return self.data.channels

    # -------------------------------------------------------------------- passes
    def batches(self, rows=None):
        """Return a generator of CPU image tensors of ``batch_size`` rows: one pass.

        ``rows``: sorted positions among the ID rows (``fit``) or among all
        rows to keep; ``None`` keeps every one.
        """
        batches = self._batches(self.data.batches(batch_size=self.batch_size,
                                                  labels=self.fit), rows)
        self._open.append(batches)
        return batches

    def _batches(self, reader, rows):
        self._passes += 1
        pieces, size, first, last = [], 0, None, None
        pos = kept = 0  # samples read; ID rows passed (fit) or rows passed (score)
        try:
            for _ in itertools.count():
                images, labels = next(reader, (None, None))
                if images is None:
                    break
                n = len(images)
                take = np.arange(n)
                if self.fit and labels is not None:
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
            self._complete(pos)
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
    def _batch(self, pieces, first, last):
        batch = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
        pieces.clear()
        self._where = (f"a batch of {len(batch)} images (samples {first} to {last} of X, "
                       f"pass {self._passes})")
        return batch

    def _complete(self, n_read):
        if self._seen:
            return
        self.n = n_read
        if self.fit and self.data.labels is not None:
            self._finish_labels(self.data.labels)
        else:
            self._n_id, self._seen = n_read, True

    def _finish_labels(self, y):
        rows, self._y = split_id_rows(np.arange(len(y))[:, None], y)
        self._n_id, self._seen = len(rows), True
