"""The embedded default benchmark: scikit-learn's digits and sample photos.

scikit-learn is imported by the functions that use it, so that importing
:mod:`sklearn_ood.datasets` (as the command line's ``--help`` does) stays fast.
"""

import numbers

import numpy as np

from ._arrays import LUMA


def _photo_patches(n_patches, rng, window=32, pool=4, min_contrast=0.1):
    """Gray patches of scikit-learn's sample photos, pooled to digit size."""
    from sklearn.datasets import load_sample_images

    grays = [img.astype(np.float32) @ LUMA / 255 for img in load_sample_images().images]
    counts = [n_patches // len(grays) + (i < n_patches % len(grays)) for i in range(len(grays))]
    offsets = np.arange(window)
    side = window // pool
    patches = []
    for gray, count in zip(grays, counts):
        n_cols = gray.shape[1] - window + 1
        order = rng.permutation((gray.shape[0] - window + 1) * n_cols)  # no window twice
        step = min(2 * count + 16, 4096)  # about half the windows pass the contrast test
        kept, n_kept = [np.empty((0, side, side), np.float32)], 0
        for start in range(0, len(order), step):
            if n_kept >= count:
                break
            r, c = np.divmod(order[start : start + step], n_cols)
            crops = gray[r[:, None, None] + offsets[:, None], c[:, None, None] + offsets]
            pooled = crops.reshape(len(r), side, pool, side, pool).mean(axis=(2, 4))
            lo, hi = pooled.min(axis=(1, 2)), pooled.max(axis=(1, 2))
            keep = hi - lo >= min_contrast  # skip flat sky / blurred background
            kept.append((pooled[keep] - lo[keep, None, None]) / (hi - lo)[keep, None, None])
            n_kept += int(keep.sum())
        if n_kept < count:
            raise ValueError(
                f"n_far={n_patches} asks for more textured patches than the sample "
                f"photos hold ({n_kept} in one photo)."
            )
        patches.append(np.concatenate(kept)[:count])
    patches = np.concatenate(patches)[:, None].astype(np.float32)
    return patches[rng.permutation(len(patches))]


def load_digits_ood(
    *, id_classes=(0, 1, 2, 3, 4, 5, 6, 7), test_size=0.3, random_state=0, n_far=500
):
    """Load a small OOD benchmark built only from data scikit-learn ships.

    In-distribution (ID) data are scikit-learn's 8x8 digits of ``id_classes``,
    split into a stratified train and test set. Near-OOD data are the digits of
    the held-out classes; far-OOD data are 8x8 patches of scikit-learn's two
    sample photos (``china.jpg``, ``flower.jpg``): random 32x32 gray windows,
    average-pooled 4x4 to 8x8, with flat (low-contrast) windows skipped and each
    patch min-max rescaled to [0, 1] so that its contrast matches the digits'.

    Parameters
    ----------
    id_classes : sequence of int, default=(0, 1, 2, 3, 4, 5, 6, 7)
        Digits (0..9) that are in-distribution; between 1 and 9 distinct values.
        The remaining digits form the near-OOD set.
    test_size : float or int, default=0.3
        Fraction (or number) of ID samples in the test split, as in
        :func:`~sklearn.model_selection.train_test_split`.
    random_state : int, RandomState instance or None, default=0
        Seeds the train/test split and the choice of photo patches.
    n_far : int, default=500
        Number of far-OOD photo patches (half from each photo, no window twice).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        X_train, X_test : ndarray of shape (n, 1, 8, 8), float32 in [0, 1]
            ID images (digit values 0..16 divided by 16).
        y_train, y_test : ndarray of shape (n,), int64
            Labels ``0..len(classes) - 1``; ``classes[y]`` is the digit.
        ood : dict of str -> ndarray of shape (m, 1, 8, 8), float32 in [0, 1]
            ``"digits_<held-out digits>"`` (near-OOD, e.g. ``"digits_8_9"``)
            and ``"photo_patches"`` (far-OOD).
        classes : ndarray of shape (n_classes,), int64
            The ID digits, sorted.
        description : str
            What the data are and how they were made.

    Raises
    ------
    ValueError
        If ``id_classes`` or ``n_far`` is invalid.
    ImportError
        If Pillow, which scikit-learn needs to decode the sample photos, is missing.

    See Also
    --------
    load_benchmark : Load real benchmark sets (MNIST, CIFAR-10, ...) from disk.

    Examples
    --------
    >>> from sklearn_ood.datasets import load_digits_ood
    >>> data = load_digits_ood()
    >>> data.X_train.shape, data.X_test.shape, data.X_train.dtype
    ((1010, 1, 8, 8), (433, 1, 8, 8), dtype('float32'))
    >>> {name: images.shape for name, images in data.ood.items()}
    {'digits_8_9': (354, 1, 8, 8), 'photo_patches': (500, 1, 8, 8)}
    >>> data.classes
    array([0, 1, 2, 3, 4, 5, 6, 7])
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.utils import Bunch, check_random_state

    try:
        classes = np.asarray(id_classes)
        valid = classes.ndim == 1 and np.issubdtype(classes.dtype, np.integer)
    except (TypeError, ValueError):
        valid = False
    if not valid or len(np.unique(classes)) != len(classes) or not 1 <= len(classes) <= 9 or (
        classes.min() < 0 or classes.max() > 9
    ):
        raise ValueError(
            "id_classes must hold 1 to 9 distinct digits in 0..9 (the rest are "
            f"near-OOD), got {id_classes!r}."
        )
    if not isinstance(n_far, numbers.Integral) or isinstance(n_far, bool) or n_far < 1:
        raise ValueError(f"n_far must be a positive int, got {n_far!r}.")
    classes = np.sort(classes).astype(np.int64)
    rng = check_random_state(random_state)

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    target = digits.target.astype(np.int64)
    is_id = np.isin(target, classes)
    y_id = np.searchsorted(classes, target[is_id]).astype(np.int64)
    X_train, X_test, y_train, y_test = train_test_split(
        images[is_id], y_id, test_size=test_size, stratify=y_id, random_state=rng
    )
    held_out = np.setdiff1d(np.arange(10), classes)
    near_name = "digits_" + "_".join(str(d) for d in held_out)
    ood = {near_name: images[~is_id], "photo_patches": _photo_patches(int(n_far), rng)}
    description = (
        f"ID: scikit-learn digits {classes.tolist()} (8x8, values/16), "
        f"{len(X_train)} train / {len(X_test)} test, stratified; labels index `classes`. "
        f"Near-OOD '{near_name}': all {len(ood[near_name])} digits {held_out.tolist()}. "
        f"Far-OOD 'photo_patches': {n_far} distinct random 32x32 gray windows of scikit-learn's "
        "china.jpg and flower.jpg, average-pooled to 8x8, low-contrast windows "
        "skipped, each min-max rescaled to [0, 1]."
    )
    return Bunch(
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        ood=ood,
        classes=classes,
        description=description,
    )
