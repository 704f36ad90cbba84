"""Pseudo-OOD images made from in-distribution images.

:func:`jigsaw` shuffles the tiles of each image, the pseudo-OOD of the
block-selection method (Yu et al., CVPR 2023, as in their official code);
:class:`Jigsaw` is the same as a scikit-learn transformer.
:func:`make_pseudo_ood` appends corrupted copies of ID images (jigsaw,
noise, blur, pixel permutation or your own corruption) labelled ``-1``, the
data of :func:`sklearn_ood.tuning.tune_on_pseudo_ood`.
"""

from numbers import Integral, Real

import numpy as np
from scipy import ndimage
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval

from ._validation import check_id_labels
from .streaming import check_images

__all__ = ["Jigsaw", "jigsaw", "make_pseudo_ood"]


def _check_grid(grid, shape):
    """``grid`` is an integer >= 2 that images of ``shape`` (N, C, H, W) can be cut by."""
    if not isinstance(grid, Integral) or isinstance(grid, bool) or grid < 2:
        raise ValueError(f"grid must be an integer >= 2; got {grid!r}.")
    height, width = shape[2:]
    if height < grid or width < grid:
        raise ValueError(
            f"A {grid}x{grid} jigsaw needs images of at least {grid}x{grid} pixels (tile "
            f"side floor(size / grid) >= 1); got images of {height}x{width}. Use a "
            f"smaller grid."
        )


def jigsaw(X, grid=3, random_state=None):
    """Jigsaw puzzle of each image: its ``grid x grid`` tiles in random order.

    Tiles have ``s_h = floor(H / grid)`` rows and ``s_w = floor(W / grid)``
    columns; every image gets its own uniformly random permutation of the
    ``grid**2`` tiles (the identity included, as in the reference code). The
    output starts as zeros, so the last ``H - grid*s_h`` rows and
    ``W - grid*s_w`` columns stay 0 (zero-filled, not cropped). Vectorised
    over samples.

    Parameters
    ----------
    X : array-like of shape (n_samples, channels, height, width)
        Images, with the model's usual preprocessing applied.
    grid : int, default=3
        Tiles per side, at least 2.
    random_state : int, RandomState instance or None, default=None
        Seeds the permutations (through ``sklearn.utils.check_random_state``).

    Returns
    -------
    puzzles : ndarray of the shape and dtype of ``X``

    References
    ----------
    Yu, Shin, Lee, Jun & Lee, "Block Selection Method for Using Feature Norm
    in Out-of-distribution Detection", CVPR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(25.0).reshape(1, 1, 5, 5)
    >>> jigsaw(X, grid=2, random_state=0)[0, 0]
    array([[12., 13.,  0.,  1.,  0.],
           [17., 18.,  5.,  6.,  0.],
           [10., 11.,  2.,  3.,  0.],
           [15., 16.,  7.,  8.,  0.],
           [ 0.,  0.,  0.,  0.,  0.]])
    """
    X = check_images(X, owner="jigsaw")
    _check_grid(grid, X.shape)
    return _jigsaw(X, grid, check_random_state(random_state))


def _jigsaw(X, grid, rng):
    """:func:`jigsaw` of checked images and grid, with a ``RandomState``."""
    n, channels, height, width = X.shape
    s_h, s_w = height // grid, width // grid
    tiles = (
        X[:, :, : grid * s_h, : grid * s_w]
        .reshape(n, channels, grid, s_h, grid, s_w)
        .transpose(0, 2, 4, 1, 3, 5)  # (n, row, col, C, s_h, s_w)
        .reshape(n, grid * grid, channels, s_h, s_w)
    )
    # Position k of image i receives tile order[i, k]: one permutation per image.
    order = np.argsort(rng.random_sample((n, grid * grid)), axis=1)
    shuffled = tiles[np.arange(n)[:, None], order]
    out = np.zeros_like(X)
    out[:, :, : grid * s_h, : grid * s_w] = (
        shuffled.reshape(n, grid, grid, channels, s_h, s_w)
        .transpose(0, 3, 1, 4, 2, 5)
        .reshape(n, channels, grid * s_h, grid * s_w)
    )
    return out


class Jigsaw(TransformerMixin, BaseEstimator):
    """Replace each image by a jigsaw puzzle of its tiles (pseudo-OOD images).

    Stateless: ``fit`` only checks the parameters and the input; ``transform``
    applies :func:`jigsaw`. With an integer ``random_state`` every call to
    ``transform`` uses the same seed (the same input gives the same output).

    Parameters
    ----------
    grid : int, default=3
        Tiles per side, at least 2 (3 in the block-selection paper).
    random_state : int, RandomState instance or None, default=None
        Seeds the tile permutations.

    Attributes
    ----------
    n_features_in_ : int
        Channels of the images seen in ``fit``.

    See Also
    --------
    jigsaw : the function.
    sklearn_ood.block_selection.BlockSelection : uses jigsaw images to choose
        the block of FeatureNorm.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.pseudo_ood import Jigsaw
    >>> X = np.arange(2 * 36.0).reshape(2, 1, 6, 6)
    >>> puzzles = Jigsaw(random_state=0).fit_transform(X)
    >>> puzzles.shape
    (2, 1, 6, 6)
    >>> bool(np.array_equal(np.sort(puzzles, axis=None), np.sort(X, axis=None)))
    True
    """

    _parameter_constraints: dict = {
        "grid": [Interval(Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, grid=3, random_state=None):
        self.grid = grid
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Check the parameters and the images.

        Parameters
        ----------
        X : array-like of shape (n_samples, channels, height, width)
        y : ignored

        Returns
        -------
        self : object
        """
        X = check_images(X, owner=type(self).__name__)
        _check_grid(self.grid, X.shape)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        """Jigsaw puzzles of the images.

        Parameters
        ----------
        X : array-like of shape (n_samples, channels, height, width)

        Returns
        -------
        puzzles : ndarray of the shape and dtype of ``X``
        """
        self._validate_params()
        X = check_images(X, owner=type(self).__name__,
                         channels=getattr(self, "n_features_in_", None))
        _check_grid(self.grid, X.shape)
        return _jigsaw(X, self.grid, check_random_state(self.random_state))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.allow_nan = False
        return tags


# ---------------------------------------------------------- pseudo-OOD data sets
_METHODS = ("jigsaw", "noise", "blur", "permute")
#: Noise standard deviation, as a fraction of the standard deviation of all pixels.
NOISE_SCALE = 0.5


def _source_indices(n, n_ood, rng):
    """Which ID image each pseudo-OOD row is made from (cycling when n_ood > n)."""
    reps, rest = divmod(n_ood, n)
    parts = [np.tile(np.arange(n), reps)]
    if rest:
        parts.append(np.sort(rng.choice(n, rest, replace=False)))
    return np.concatenate(parts)


def _noise(X, lo, hi, sigma, rng):
    return np.clip(X + rng.normal(0.0, sigma, size=X.shape), lo, hi)


def _blur_sigma(height, width):
    return max(1.0, min(height, width) / 16.0)


def _blur(X):
    sigma = _blur_sigma(*X.shape[2:])
    return ndimage.gaussian_filter(X, sigma=(0, 0, sigma, sigma), mode="reflect")


def _permute(X, rng):
    n, channels = X.shape[:2]
    flat = X.reshape(n, channels, -1)
    # One permutation of the pixel positions per image, shared by its channels.
    order = np.argsort(rng.random_sample((n, flat.shape[2])), axis=1)
    return np.take_along_axis(flat, order[:, None, :], axis=2).reshape(X.shape)


def make_pseudo_ood(X, y=None, *, method="jigsaw", ratio=1.0, random_state=None):
    """Append pseudo-OOD images, made by corrupting ID images, labelled ``-1``.

    Parameters
    ----------
    X : array-like of shape (n_samples, channels, height, width)
        In-distribution images, with the model's usual preprocessing. Finite,
        at least one image.
    y : array-like of shape (n_samples,), default=None
        Their numeric class labels (``>= 0``); ``None`` labels every ID image
        ``NaN``: in-distribution, class unknown (so detectors are fitted
        without class labels).
    method : {"jigsaw", "noise", "blur", "permute"} or callable, default="jigsaw"
        How a pseudo-OOD image is made from an ID image:

        - ``"jigsaw"``: its 3x3 jigsaw puzzle
          (:func:`sklearn_ood.pseudo_ood.jigsaw`: tiles of ``floor(H / 3)``
          pixels in random order, zero-filled remainder);
        - ``"noise"``: additive Gaussian noise of standard deviation
          ``sigma = 0.5 * X.std()`` (over all pixels of ``X``), clipped to
          ``[X.min(), X.max()]``;
        - ``"blur"``: a Gaussian blur over height and width of standard
          deviation ``max(1, min(H, W) / 16)`` pixels (reflected borders);
          deterministic;
        - ``"permute"``: the image's pixels in a random order (one
          permutation of the ``H * W`` positions per image, shared by its
          channels);
        - a callable, called as ``method(X_src, random_state=rng)`` with the
          source images ``X_src`` and a ``numpy.random.RandomState``; it must
          return finite images of the shape of ``X_src``.
    ratio : float > 0, default=1.0
        ``round(ratio * n_samples)`` pseudo-OOD images are made (at least 1).
        Below 1 they come from a random subset of the ID images; above 1 every
        ID image is used ``floor(ratio)`` times, plus a random subset for the
        rest (each copy gets its own random corruption).
    random_state : int, RandomState instance or None, default=None
        Seeds the subset and the corruptions.

    Returns
    -------
    X_aug : ndarray of shape (n_samples + n_pseudo, channels, height, width)
        ``X`` followed by the pseudo-OOD images. Floating dtype of ``X``
        (``float64`` for integer images).
    y_aug : ndarray of shape (n_samples + n_pseudo,)
        ``y`` (or ``NaN``) followed by ``-1`` for the pseudo-OOD rows.

    See Also
    --------
    tune_on_pseudo_ood : tune a detector's parameters on these images.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ood.pseudo_ood import make_pseudo_ood
    >>> X = np.random.default_rng(0).random((4, 1, 6, 6))
    >>> X_aug, y_aug = make_pseudo_ood(X, [0, 1, 1, 0], ratio=0.5, random_state=0)
    >>> X_aug.shape, y_aug
    ((6, 1, 6, 6), array([ 0,  1,  1,  0, -1, -1]))
    """
    X = check_images(X, owner="make_pseudo_ood")
    n = len(X)
    y = check_id_labels(y, n)
    if not callable(method) and method not in _METHODS:
        raise ValueError(
            f"method must be one of {list(_METHODS)} or a callable "
            f"method(X, random_state) -> X_ood; got {method!r}."
        )
    if isinstance(ratio, bool) or not isinstance(ratio, Real) or not 0 < ratio < np.inf:
        raise ValueError(f"ratio must be a positive finite number; got {ratio!r}.")
    n_ood = int(round(ratio * n))
    if n_ood < 1:
        raise ValueError(
            f"ratio={ratio} gives round({ratio} * {n}) = 0 pseudo-OOD images; use a "
            f"ratio of at least {0.5 / n:.3g}."
        )
    rng = check_random_state(random_state)
    dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.float64
    X = X.astype(dtype, copy=False)
    source = X[_source_indices(n, n_ood, rng)]
    if callable(method):
        X_ood = np.asarray(method(source, random_state=rng))
        if X_ood.shape != source.shape:
            raise ValueError(
                f"The pseudo-OOD callable must return images of the shape of its input "
                f"{source.shape}; got {X_ood.shape}."
            )
        if not np.issubdtype(X_ood.dtype, np.number) or not np.all(np.isfinite(X_ood)):
            raise ValueError(
                "The pseudo-OOD callable returned non-numeric, NaN or infinite values."
            )
    elif method == "jigsaw":
        _check_grid(3, X.shape)
        X_ood = _jigsaw(source, 3, rng)
    elif method == "noise":
        X_ood = _noise(source, X.min(), X.max(), NOISE_SCALE * X.std(), rng)
    elif method == "blur":
        X_ood = _blur(source)
    else:
        X_ood = _permute(source, rng)
    X_aug = np.concatenate([X, X_ood.astype(dtype, copy=False)])
    y_aug = np.concatenate([y, np.full(n_ood, -1, dtype=np.result_type(y.dtype, np.int8))])
    return X_aug, y_aug
