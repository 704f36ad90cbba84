"""The contract of detectors that hold a model and take images."""

from numbers import Integral

import numpy as np
import torch
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from .._base import BaseDetector, offset_sample, restore_on_error
from .._tags import DetectorTags
from ..streaming import InputStream
from ._input import ModelInput


class ModelDetector(BaseDetector):
    """Base class of detectors that run a PyTorch model on images.

    The same contract as :class:`~sklearn_ood._base.BaseDetector` (the
    threshold ``offset_``, atomic ``fit``, the label convention), with images
    ``(n_samples, channels, height, width)`` as input, of any kind the
    extractor takes (see :class:`~sklearn_ood.BlockFeatureExtractor`): an
    array or tensor, an array-like that slices lazily (``np.memmap``, h5py,
    zarr), a ``torch.utils.data.Dataset`` whose items are an image or a tuple
    ``(image, label, ...)``, a ``DataLoader`` (its transforms, workers and
    pinned memory apply) or an iterable of batches. Everything goes through
    :class:`~sklearn_ood.streaming.InputStream`, and the images are
    regrouped into batches of exactly ``batch_size``, so the scores do not
    depend on how the input is batched and at most one batch of images (plus
    the one being read) is in memory. A ``DataLoader`` that shuffles is
    rejected: scores must come in the order of the images, and ``fit`` may
    read its input twice.

    ``fit`` takes the labels from ``y`` or, when ``y`` is None, from the data
    (a ``Dataset`` of ``(image, label)`` items, a ``DataLoader``); when both
    are given they must agree. A negative label marks an OOD row, which
    ``fit`` ignores. The offset sample (all in-distribution rows up to
    10,000, else a seeded sample, :func:`~sklearn_ood._base.offset_sample`)
    is the same rows whatever the kind of input, so an array and a
    ``Dataset`` holding the same images in the same order give the same
    ``offset_`` and scores.

    Passes over the input in ``fit``: one for ODIN, MCDropout, AdaSCALE and
    BlockSelection (the training scores reuse the features of that pass, or
    are the pass); two for InputPreprocessedMahalanobis (class statistics,
    then the training scores that depend on them), which thus rejects a
    one-shot iterator. ODIN and MCDropout score only the offset sample;
    when it cannot be drawn before reading -- more than 10,000 samples (or an
    unknown number) and no ``y``, so the data's labels say which rows are
    in-distribution -- a first pass reads the data without running the
    model. A one-shot iterator allows no such pass: every in-distribution
    row is then scored and the sample taken from the scores (the same rows;
    MC dropout's masks, drawn per batch, then differ from an array's).

    A subclass stores ``model``, ``batch_size`` and ``device`` as parameters
    and follows the fit contract of :class:`~sklearn_ood._base.BaseDetector`
    with hooks named for what they take:

    - ``_fit_images(data)``: the fitting hook. ``data`` is a
      :class:`~sklearn_ood.model_detectors._input.ModelInput`;
      ``data.batches()`` is one pass over the in-distribution images, after
      which ``data.y`` holds their labels (``None`` without classes). It sets
      the fitted attributes and returns the training scores when its pass
      gave them (those of the rows ``data.offset_rows()``, known once a pass
      was made), else ``None``;
    - ``_score_batches(batches)``: the scores of an iterable of image batches;
    - optionally ``_training_scores(data, rows)``: the scores of the ID rows
      ``rows`` (``None``: all), by default
      ``_score_batches(data.batches(rows))``;
    - optionally ``_check_model()``: raise ``ValueError`` when the model lacks
      what the method needs (e.g. a dropout layer). ``fit`` calls it first,
      and the benchmark skips the detector with that reason;
    - optionally, for a parameter ``_scoring_param`` that the fitted
      attributes do not depend on (only ``offset_`` and the scores do),
      ``_score_each(batches, values)``: the scores for each value of it, one
      column per value, in one pass that computes what the values share once
      (ODIN's and InputPreprocessedMahalanobis' input gradient for every
      ``magnitude``, AdaSCALE's features for every ``percentiles``).
      ``_score_batches`` is its column for the parameter's own value, so the
      columns equal the scores of detectors fitted with each value. A search
      reads it through :meth:`_score_samples_each`.

    The model runs inside :func:`~sklearn_ood._torch.model_run` (directly, or
    through :func:`~sklearn_ood.extraction.iter_block_batches` for forward
    passes), which leaves the model as it was: hooks removed, train/eval
    flags, ``requires_grad`` and ``.grad`` restored, also when a forward or
    backward pass or the reading of the data raises (an error while a batch
    runs gets a note naming the batch and its samples).

    Attributes
    ----------
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    n_features_in_ : int
        Channels of the images seen in ``fit``.
    """

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "model": [torch.nn.Module],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
    }
    _detector_tags = DetectorTags(input="images")
    #: Passes ``fit`` makes over its input (a one-shot iterator allows one).
    _fit_passes = 1
    _non_finite_advice = "images: check the model and the images' scale"

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the detector on in-distribution images.

        Parameters
        ----------
        X : array-like, torch.Tensor, Dataset, DataLoader or iterable of batches
            Training images ``(n_samples, channels, height, width)``, of any
            kind the class description lists.
        y : array-like of shape (n_samples,), default=None
            Class labels; rows with a negative label are OOD and are ignored.
            ``None``: the labels the data yields, if any.

        Returns
        -------
        self : object
            The fitted detector.
        """
        with restore_on_error(self):
            X = self._validate_input(X, reset=True)
            self._check_model()
            data = self._input(X, y, fit=True)
            if self._fit_passes > 1 and data.one_shot:
                raise TypeError(
                    f"{type(self).__name__}.fit reads its input {self._fit_passes} times, "
                    "but X is a one-shot iterator (a generator); pass an array, a Dataset "
                    "or a DataLoader."
                )
            with data:
                self._set_offset(self._fit_images(data),
                                 lambda: self._offset_sample_scores(data))
            if not data.array:  # an array's channels are set by _validate_input
                self.n_features_in_ = data.n_channels
        return self

    def score_samples(self, X):
        """Score images: the higher, the more in-distribution.

        Parameters
        ----------
        X : array-like, torch.Tensor, Dataset, DataLoader or iterable of batches
            Images ``(n_samples, channels, height, width)``, of any kind the
            class description lists; labels the data yields are ignored.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            In the order of the images.
        """
        check_is_fitted(self)
        data = self._input(self._validate_input(X, reset=False))
        with data:
            return np.asarray(self._score_batches(data.batches()), dtype=np.float64)

    #: The parameter ``_score_each`` scores several values of (``None``: none).
    _scoring_param = None

    def _score_samples_each(self, X, values):
        """Scores of ``X`` for each value of ``_scoring_param``, in one pass (internal).

        Column ``j`` equals ``score_samples(X)`` of this detector fitted with
        ``_scoring_param`` set to ``values[j]``: for searches over that
        parameter (the benchmark's pseudo-OOD search). Each value is validated
        as ``fit`` would.

        Returns
        -------
        scores : ndarray of shape (n_samples, len(values))
        """
        check_is_fitted(self)
        if self._scoring_param is None:
            raise TypeError(f"{type(self).__name__} scores one parameter value per fit "
                            "(it has no _scoring_param); call score_samples.")
        params = self.get_params(deep=False)
        for value in values:
            type(self)(**{**params, self._scoring_param: value})._check_scoring_value()
        data = self._input(self._validate_input(X, reset=False))
        with data:
            return np.asarray(self._score_each(data.batches(), list(values)), dtype=np.float64)

    def _check_scoring_value(self):
        """Validate the parameters (``_score_samples_each`` checks each value so)."""
        self._validate_params()

    def _input(self, X, y=None, *, fit=False):
        return ModelInput(X, y, batch_size=self.batch_size, detector=self, fit=fit)

    def _validate_input(self, X, *, reset):
        """``X`` as a stream of images; an array's shape and channels are checked at once."""
        data = InputStream(X, owner=type(self).__name__, images=True, same_shape=True,
                           channels=None if reset else self.n_features_in_)
        if reset and data.kind == "array":
            self.n_features_in_ = data.channels
        return data

    def _training_scores(self, X, rows):
        return self._score_batches(X.batches(rows))

    def _offset_sample_scores(self, data):
        """The scores of the offset sample (the threshold step, after the fitting pass)."""
        rows = data.offset_rows()
        scores = np.asarray(self._training_scores(data, rows), dtype=np.float64)
        return scores if rows is not None else scores[offset_sample(len(scores))]

    def _fit_images(self, data):  # pragma: no cover - overridden
        """Learn from the ID images; return the offset sample's scores, or ``None``."""
        raise NotImplementedError

    def _score_batches(self, batches):  # pragma: no cover - overridden
        raise NotImplementedError

    def _check_model(self):
        """Raise ``ValueError`` if the model lacks what the method needs (none here)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags
