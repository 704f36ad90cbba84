"""Build the benchmark's ``.npz`` files from the public files they are made from.

The ``mnist`` and ``cifar10-resnet18`` presets of ``sklearn-ood benchmark`` read
``.npz`` files (keys ``x``: uint8 images ``(N, H, W)`` or ``(N, H, W, 3)``, ``y``:
int64 labels) from ``--data-dir``. This script makes them from the public
sources below, which you download yourself (nothing here downloads; it is not
run by the tests). Each sub-command reads one source and writes one or two
files into ``--out``:

=================  =====================================  ==========================================
sub-command        reads (your download)                  writes
=================  =====================================  ==========================================
``mnist``          the four MNIST IDX ``.gz`` files        ``mnist_train.npz``, ``mnist_test.npz``
``fashion-mnist``  Fashion-MNIST ``t10k-*-ubyte.gz``       ``fashion_mnist_test.npz``
``usps``           ``usps.h5`` (train + test, 16x16)       ``usps.npz`` (28x28, ``split`` 0/1)
``cifar10-jpeg``   a folder ``train/<class>/*.jpg`` and    ``cifar10_train20k_jpeg.npz`` (2,000 per
                   ``test/<class>/*.jpg`` (the JPEG copy   class, seeded), ``cifar10_test_jpeg.npz``
                   of CIFAR-10 the shared models were
                   trained on)
``tin``            ``tiny-imagenet-200`` (``wnids.txt``,   ``tin_val_32.npz`` (32x32; the 27 classes
                   ``val/images``,                         overlapping CIFAR-10 removed)
                   ``val/val_annotations.txt``)
``dtd``            DTD's ``images/<class>/*.jpg``          ``dtd10_32.npz`` (its first 10 classes)
``textures``       scikit-image's bundled photos           ``skimage_texture_patches.npz``
=================  =====================================  ==========================================

Which preset needs which: ``--id mnist`` reads mnist, fashion-mnist, usps and
textures; ``--id cifar10-resnet18`` reads cifar10-jpeg, tin, dtd and mnist (as
far-OOD), plus the two trained models of ``--models-dir``.

Usage::

    python tools/prepare_data.py mnist DOWNLOADS/mnist --out DATA
    python tools/prepare_data.py cifar10-jpeg DOWNLOADS/CIFAR-10-images --out DATA
    python tools/prepare_data.py textures --out DATA
    sklearn-ood benchmark --id mnist --data-dir DATA

Needs Pillow (installed with matplotlib); ``usps`` needs ``h5py``.
"""

import argparse
import gzip
import os
import sys

import numpy as np

#: Tiny ImageNet classes that overlap CIFAR-10's (cats, dogs, frogs, birds, cars,
#: trucks, vans, buses, boats), left out of the near-OOD set.
TIN_OVERLAP = (
    "n02124075", "n01641577", "n02106662", "n04146614", "n02058221", "n02099712",
    "n02056570", "n03796401", "n02123045", "n01855672", "n04465501", "n02099601",
    "n03977966", "n03670208", "n02002724", "n04285008", "n02123394", "n02094433",
    "n02814533", "n04487081", "n03100240", "n03444034", "n02085620", "n01644900",
    "n03447447", "n02113799", "n03662601")
DTD_CLASSES = ("banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed",
               "cracked", "crosshatched", "crystalline")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")


def read_idx(path):
    """An IDX file (gzipped or not) as an array: MNIST's format."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(folder, prefix):
    names = [n for n in sorted(os.listdir(folder)) if n.startswith(prefix)]
    if not names:
        sys.exit(f"prepare_data: no file starting with {prefix!r} in {folder}")
    return os.path.join(folder, names[0])


def _save(out, name, **arrays):
    path = os.path.join(out, name)
    np.savez_compressed(path, **arrays)
    print(f"wrote {path}: " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))


def _image(path):
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _square32(path):
    """Shorter side to 32 (bilinear), then the centre 32x32 crop."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = 32 / min(image.size)
        size = (max(32, round(image.width * scale)), max(32, round(image.height * scale)))
        image = image.resize(size, Image.BILINEAR)
        left, top = (image.width - 32) // 2, (image.height - 32) // 2
        return np.asarray(image.crop((left, top, left + 32, top + 32)))


def mnist(src, out):
    for split, prefix in (("train", "train"), ("test", "t10k")):
        _save(out, f"mnist_{split}.npz", x=read_idx(_find(src, f"{prefix}-images")),
              y=read_idx(_find(src, f"{prefix}-labels")).astype(np.int64))


def fashion_mnist(src, out):
    _save(out, "fashion_mnist_test.npz", x=read_idx(_find(src, "t10k-images")),
          y=read_idx(_find(src, "t10k-labels")).astype(np.int64),
          classes=np.array(FASHION_CLASSES))


def usps(src, out):
    import h5py
    from PIL import Image

    xs, ys, splits = [], [], []
    with h5py.File(src, "r") as f:
        for code, split in enumerate(("train", "test")):
            data = np.asarray(f[split]["data"], dtype=np.float64).reshape(-1, 16, 16)
            xs += [np.asarray(Image.fromarray(np.uint8(np.clip(255 * d, 0, 255)))
                              .resize((28, 28), Image.BILINEAR)) for d in data]
            ys.append(np.asarray(f[split]["target"], dtype=np.int64))
            splits.append(np.full(len(data), code, dtype=np.int64))
    _save(out, "usps.npz", x=np.stack(xs), y=np.concatenate(ys), split=np.concatenate(splits))


def cifar10_jpeg(src, out, per_class=2000, seed=0):
    """The test set whole; of the training set, ``per_class`` images per class: the
    first ``per_class`` of a seeded permutation of each class's files, in order."""
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        xs, ys, index, offset = [], [], [], 0  # index: position in the class-sorted list
        for label, name in enumerate(CIFAR10_CLASSES):
            files = sorted(os.listdir(os.path.join(src, split, name)))
            rows = np.arange(len(files))
            if split == "train":
                rows = np.sort(rng.permutation(len(files))[:per_class])
            xs += [_image(os.path.join(src, split, name, files[i])) for i in rows]
            ys += [label] * len(rows)
            index += (offset + rows).tolist()
            offset += len(files)
        extra = {"index": np.array(index, dtype=np.int64)} if split == "train" else {}
        name = "cifar10_train20k_jpeg.npz" if split == "train" else "cifar10_test_jpeg.npz"
        _save(out, name, x=np.stack(xs), y=np.array(ys, dtype=np.int64),
              classes=np.array(CIFAR10_CLASSES), **extra)


def tin(src, out):
    """Tiny ImageNet's validation images, 64x64 to 32x32 by 2x2 box averages."""
    with open(os.path.join(src, "wnids.txt")) as f:
        wnids = [line.strip() for line in f if line.strip()]
    with open(os.path.join(src, "val", "val_annotations.txt")) as f:
        labels = dict(line.split("\t")[:2] for line in f if line.strip())
    xs, ys = [], []
    for name in sorted(labels, key=lambda n: int(n.split("_")[1].split(".")[0])):
        if labels[name] in TIN_OVERLAP:
            continue
        image = _image(os.path.join(src, "val", "images", name)).astype(np.float64)
        small = image.reshape(32, 2, 32, 2, 3).mean(axis=(1, 3))
        xs.append(np.uint8(np.clip(np.round(small), 0, 255)))
        ys.append(wnids.index(labels[name]))
    _save(out, "tin_val_32.npz", x=np.stack(xs), y=np.array(ys, dtype=np.int64),
          wnids=np.array(wnids))


def dtd(src, out):
    xs, ys = [], []
    for label, name in enumerate(DTD_CLASSES):
        folder = os.path.join(src, name)
        files = sorted(f for f in os.listdir(folder) if f.lower().endswith(".jpg"))
        xs += [_square32(os.path.join(folder, f)) for f in files]
        ys += [label] * len(files)
    _save(out, "dtd10_32.npz", x=np.stack(xs), y=np.array(ys, dtype=np.int64),
          classes=np.array(DTD_CLASSES))


def textures(src, out):
    """32x32 gray crops on a 16-pixel grid of scikit-image's brick, grass and gravel."""
    from skimage import data

    names = ("brick", "grass", "gravel")
    xs, ys = [], []
    for label, name in enumerate(names):
        photo = getattr(data, name)()
        for top in range(0, photo.shape[0] - 31, 16):
            for left in range(0, photo.shape[1] - 31, 16):
                xs.append(photo[top:top + 32, left:left + 32])
                ys.append(label)
    _save(out, "skimage_texture_patches.npz", x=np.stack(xs).astype(np.uint8),
          y=np.array(ys, dtype=np.int64), classes=np.array(names))


COMMANDS = {"mnist": mnist, "fashion-mnist": fashion_mnist, "usps": usps,
            "cifar10-jpeg": cifar10_jpeg, "tin": tin, "dtd": dtd, "textures": textures}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", choices=sorted(COMMANDS))
    parser.add_argument("path", nargs="?", default=None,
                        help="the downloaded file or folder (not for textures)")
    parser.add_argument("--out", required=True, help="the data folder to write into")
    args = parser.parse_args(argv)
    if args.path is None and args.source != "textures":
        parser.error(f"{args.source} needs the path of its download")
    os.makedirs(args.out, exist_ok=True)
    COMMANDS[args.source](args.path, args.out)


if __name__ == "__main__":
    main()
