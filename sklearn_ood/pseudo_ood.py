"""Pseudo-OOD images made from in-distribution images (a leaf module).

:func:`jigsaw` shuffles the tiles of each image, the pseudo-OOD of the
block-selection method (Yu et al., CVPR 2023, METHODS.md §2.2);
:class:`Jigsaw` is the same as a scikit-learn transformer.
"""

from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_array

__all__ = ["Jigsaw", "jigsaw"]


def _check_images(X, grid, name="X"):
    if not isinstance(grid, Integral) or isinstance(grid, bool) or grid < 2:
        raise ValueError(f"grid must be an integer >= 2; got {grid!r}.")
    if sp.issparse(X):
        raise TypeError(
            f"{name} must be a dense array of images (n_samples, channels, height, "
            f"width); sparse input is not supported."
        )
    X = np.asarray(X)
    if X.ndim != 4:
        raise ValueError(
            f"{name} must be images of shape (n_samples, channels, height, width); got "
            f"an array of shape {X.shape}. Add the channel axis for grey images, e.g. "
            f"X[:, None]."
        )
    X = check_array(X, allow_nd=True, dtype=None, input_name=name)
    if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise TypeError(f"{name} must be a numeric array; got dtype {X.dtype}.")
    height, width = X.shape[2:]
    if height < grid or width < grid:
        raise ValueError(
            f"A {grid}x{grid} jigsaw needs images of at least {grid}x{grid} pixels (tile "
            f"side floor(size / grid) >= 1); got images of {height}x{width}. Use a "
            f"smaller grid."
        )
    return X


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
    X = _check_images(X, grid)
    rng = check_random_state(random_state)
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
        self._validate_params()
        X = _check_images(X, self.grid)
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
        X = _check_images(X, self.grid)
        if hasattr(self, "n_features_in_") and X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} channels, but Jigsaw was fitted on images with "
                f"{self.n_features_in_} channels."
            )
        return jigsaw(X, self.grid, self.random_state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.allow_nan = False
        return tags
