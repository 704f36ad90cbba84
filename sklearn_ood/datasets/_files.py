"""Loaders for real image data on disk: .npz archives, IDX files, image folders."""

import gzip
import math
import os
import struct

import numpy as np

from ._arrays import adapt, as_images, as_labels, check_channels, check_file, check_size, read_npz


def load_npz(path, *, size=None, channels=None):
    """Load images and labels from a NumPy ``.npz`` archive.

    The archive must hold ``x``, images of shape ``(N, H, W)``,
    ``(N, H, W, C)`` or PyTorch's channels-first ``(N, C, H, W)`` with ``C``
    in {1, 3} (an array whose last axis is 1 or 3 is read as channels-last;
    channels-first needs a width above 4, which no channel axis has), either
    ``uint8`` (0..255) or float (0..1), and ``y``, a 1-D integer array of
    length ``N``. Other arrays are ignored. The file is opened with
    ``allow_pickle=False``.

    Pixels are returned in [0, 1]: ``uint8`` values are divided by 255, float
    values are kept (and must lie in [0, 1]). No normalisation is applied --
    no mean subtraction or division by a standard deviation: apply the one
    your model was trained with (in the model, or to ``X``) before scoring.
    Float archives that are already normalised (values outside [0, 1]) are
    rejected.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file.
    size : int or (int, int), default=None
        Resize images to ``(H, W)`` with a bilinear (triangle) filter that is
        antialiased when shrinking, like Pillow's ``BILINEAR`` and
        ``torch.nn.functional.interpolate(..., antialias=True)``. ``None`` keeps
        the stored size.
    channels : {1, 3}, default=None
        Convert to gray (luma ``0.299 R + 0.587 G + 0.114 B``) or to RGB
        (gray repeated). ``None`` keeps the stored channels.

    Returns
    -------
    X : ndarray of shape (N, C, H, W), float32 in [0, 1]
        Not normalised.
    y : ndarray of shape (N,), int64

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not an ``.npz`` archive, lacks ``x`` or ``y``, holds
        object arrays, or the arrays have the wrong shape, dtype or length.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from sklearn_ood.datasets import load_npz
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.npz")
    >>> x = np.zeros((5, 4, 4, 3), dtype=np.uint8)
    >>> np.savez(path, x=x, y=np.arange(5))
    >>> X, y = load_npz(path, size=(8, 8), channels=1)
    >>> X.shape, X.dtype, y.dtype
    ((5, 1, 8, 8), dtype('float32'), dtype('int64'))

    Saved from PyTorch tensors, channels first:

    >>> np.savez(path, x=np.zeros((5, 3, 32, 32), dtype=np.uint8), y=np.arange(5))
    >>> load_npz(path)[0].shape
    (5, 3, 32, 32)
    """
    size, channels = check_size(size), check_channels(channels)
    arrays = read_npz(path, ("x", "y"))
    source = os.fspath(path)
    X = as_images(arrays["x"], source)
    y = as_labels(arrays["y"], len(X), source)
    return adapt(X, size, channels), y


_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_idx(path):
    path = check_file(path, "IDX")
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: corrupt gzip data ({exc}).") from exc
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()}; expected 0x0000TTDD with "
            "type byte TT in {08, 09, 0B, 0C, 0D, 0E} and DD >= 1 the number of "
            "dimensions (0x00000803 for MNIST images, 0x00000801 for labels)."
        )
    ndim, header = raw[3], 4 + 4 * raw[3]
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes for {ndim} dims).")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: header declares shape {dims} of {dtype.name} ({expected} data "
            f"bytes) but the file holds {len(raw) - header} data bytes."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def load_idx(images_path, labels_path=None, *, size=None, channels=None):
    """Load images (and labels) from MNIST-style IDX files.

    The IDX header (``0x0000``, a type byte, the number of dimensions, then
    each dimension as a big-endian uint32) is parsed and checked against the
    data length. Gzip-compressed files (``.gz``) are detected by content.

    Parameters
    ----------
    images_path : str or path-like
        IDX file of images, shape ``(N, H, W)``, ``(N, H, W, C)`` or
        ``(N, C, H, W)`` with ``C`` in {1, 3}, read as :func:`load_npz` reads
        ``x``; ``uint8`` (0..255) or float (0..1), returned in [0, 1], not
        normalised.
    labels_path : str or path-like, default=None
        IDX file of ``N`` integer labels, shape ``(N,)``.
    size : int or (int, int), default=None
        Resize to ``(H, W)``; see :func:`load_npz`.
    channels : {1, 3}, default=None
        Convert channels; see :func:`load_npz`.

    Returns
    -------
    X : ndarray of shape (N, C, H, W), float32 in [0, 1]
        Returned alone when ``labels_path`` is None.
    y : ndarray of shape (N,), int64
        Only when ``labels_path`` is given.

    Raises
    ------
    FileNotFoundError
        If a file does not exist.
    ValueError
        On a bad magic number, a header that disagrees with the data length,
        wrong shapes or dtypes, or different image and label counts.

    Examples
    --------
    >>> import os, struct, tempfile
    >>> from sklearn_ood.datasets import load_idx
    >>> folder = tempfile.mkdtemp()
    >>> images = os.path.join(folder, "images-idx3-ubyte")
    >>> labels = os.path.join(folder, "labels-idx1-ubyte")
    >>> with open(images, "wb") as f:
    ...     _ = f.write(struct.pack(">I3I", 0x0803, 2, 3, 3) + bytes(range(18)))
    >>> with open(labels, "wb") as f:
    ...     _ = f.write(struct.pack(">II", 0x0801, 2) + bytes([4, 7]))
    >>> X, y = load_idx(images, labels)
    >>> X.shape, y.tolist()
    ((2, 1, 3, 3), [4, 7])
    """
    size, channels = check_size(size), check_channels(channels)
    X = adapt(as_images(_read_idx(images_path), os.fspath(images_path)), size, channels)
    if labels_path is None:
        return X
    source = f"{os.fspath(labels_path)} (for images {os.fspath(images_path)})"
    return X, as_labels(_read_idx(labels_path), len(X), source)


_IMAGE_EXTENSIONS = (
    ".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp"
)


def load_image_folder(root, *, size=(32, 32), channels=3):
    """Load a folder of images with one subfolder per class.

    Class names are the subfolder names, sorted; label ``i`` is
    ``classes[i]``. Files with an image extension (``.png``, ``.jpg``, ...)
    are read with Pillow, converted to gray (``"L"``, luma weights as in
    :func:`load_npz`) or RGB (alpha dropped) and resized with Pillow's
    bilinear filter. Hidden files and folders are skipped.

    Parameters
    ----------
    root : str or path-like
        Folder holding ``<class>/<image>`` files.
    size : int or (int, int), default=(32, 32)
        Output ``(H, W)`` of every image.
    channels : {1, 3}, default=3
        1 for gray, 3 for RGB.

    Returns
    -------
    X : ndarray of shape (N, channels, H, W), float32 in [0, 1]
    y : ndarray of shape (N,), int64
    classes : ndarray of shape (n_classes,), str

    Raises
    ------
    ImportError
        If Pillow is not installed.
    FileNotFoundError
        If ``root`` is not a folder.
    ValueError
        If there are no class subfolders, a class folder holds no images, or
        a file cannot be decoded.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from sklearn_ood.datasets import load_image_folder
    >>> root = tempfile.mkdtemp()
    >>> for name in ["cat", "dog"]:
    ...     os.mkdir(os.path.join(root, name))
    ...     Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(
    ...         os.path.join(root, name, "0.png"))
    >>> X, y, classes = load_image_folder(root, size=(16, 16))
    >>> X.shape, y.tolist(), classes.tolist()
    ((2, 3, 16, 16), [0, 1], ['cat', 'dog'])
    """
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError(
            "load_image_folder reads image files with Pillow, which is not "
            "installed; install it with `pip install pillow`."
        ) from exc
    size = check_size(size)
    if size is None or check_channels(channels) is None:
        raise ValueError(
            f"size and channels are required, got size={size!r}, channels={channels!r}."
        )
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"No such image folder: '{root}'.")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise ValueError(f"{root}: no class subfolders; expected <root>/<class>/<image>.png.")
    mode = "L" if channels == 1 else "RGB"
    images, labels = [], []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        files = _image_files(folder)
        if not files:
            raise ValueError(
                f"{folder}: class folder '{name}' holds no image files "
                f"(looked for {', '.join(_IMAGE_EXTENSIONS)})."
            )
        images += _read_images(Image, folder, files, size, mode)
        labels += [label] * len(files)
    X = as_images(np.stack(images), root)
    return X, np.asarray(labels, dtype=np.int64), np.asarray(classes)


def _image_files(folder):
    """The image files of ``folder`` (not hidden, an image extension), sorted."""
    return sorted(
        e.name
        for e in os.scandir(folder)
        if e.is_file()
        and not e.name.startswith(".")
        and os.path.splitext(e.name)[1].lower() in _IMAGE_EXTENSIONS
    )


def _read_images(Image, folder, files, size, mode):
    """Decode, convert and resize ``files`` of ``folder``; a list of uint8 arrays."""
    bilinear = getattr(Image, "Resampling", Image).BILINEAR
    images = []
    for file in files:
        path = os.path.join(folder, file)
        try:
            with Image.open(path) as img:
                img = img.convert(mode).resize((size[1], size[0]), bilinear)
                images.append(np.asarray(img, dtype=np.uint8))
        except OSError as exc:  # includes PIL.UnidentifiedImageError
            raise ValueError(f"{path}: cannot be decoded as an image ({exc}).") from exc
    return images


def load_images(folder, *, size=(32, 32), channels=3):
    """Load the images of one folder, without labels (e.g. an OOD set).

    Image files directly in ``folder`` are read; when it holds none, the
    images of its subfolders (as :func:`load_image_folder` reads them) are,
    their class labels dropped. Decoding, conversion and resizing are those of
    :func:`load_image_folder`.

    Parameters
    ----------
    folder : str or path-like
    size : int or (int, int), default=(32, 32)
    channels : {1, 3}, default=3

    Returns
    -------
    X : ndarray of shape (N, channels, H, W), float32 in [0, 1]

    Raises
    ------
    ImportError
        If Pillow is not installed.
    FileNotFoundError
        If ``folder`` is not a folder.
    ValueError
        If it holds no image (directly or in subfolders), or a file cannot be decoded.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from sklearn_ood.datasets import load_images
    >>> folder = tempfile.mkdtemp()
    >>> Image.fromarray(np.zeros((10, 12), np.uint8)).save(os.path.join(folder, "a.png"))
    >>> load_images(folder, size=8, channels=1).shape
    (1, 1, 8, 8)
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"No such image folder: '{folder}'.")
    files = _image_files(folder)
    if not files:
        return load_image_folder(folder, size=size, channels=channels)[0]
    from PIL import Image

    if check_channels(channels) is None:
        raise ValueError(f"channels is required, got channels={channels!r}.")
    mode = "L" if channels == 1 else "RGB"
    return as_images(np.stack(_read_images(Image, folder, files, check_size(size), mode)), folder)
