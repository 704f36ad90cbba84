"""Tests for sklearn_ood.datasets: the embedded default and the disk loaders.

Fixtures are tiny files written to tmp_path; nothing here reads the shared data.
"""

import gzip
import struct
import sys

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits

from sklearn_ood.datasets import (
    BENCHMARKS,
    list_benchmarks,
    load_benchmark,
    load_digits_ood,
    load_idx,
    load_image_folder,
    load_npz,
)


def _assert_images(X, shape):
    assert X.shape == shape
    assert X.dtype == np.float32
    assert X.flags.c_contiguous
    assert X.min() >= 0.0 and X.max() <= 1.0


# --------------------------------------------------------------------------
# load_digits_ood


@pytest.fixture(scope="module")
def digits_ood():
    return load_digits_ood()


def test_digits_ood_shapes_and_ranges(digits_ood):
    data = digits_ood
    n_id = np.isin(load_digits().target, range(8)).sum()
    assert len(data.X_train) + len(data.X_test) == n_id
    assert abs(len(data.X_test) - 0.3 * n_id) <= 1
    _assert_images(data.X_train, (len(data.y_train), 1, 8, 8))
    _assert_images(data.X_test, (len(data.y_test), 1, 8, 8))
    assert data.y_train.dtype == np.int64 and data.y_test.dtype == np.int64
    assert_array_equal(data.classes, np.arange(8))
    assert sorted(data.ood) == ["digits_8_9", "photo_patches"]
    n_near = np.isin(load_digits().target, [8, 9]).sum()
    _assert_images(data.ood["digits_8_9"], (n_near, 1, 8, 8))
    _assert_images(data.ood["photo_patches"], (500, 1, 8, 8))
    assert isinstance(data.description, str) and "digits_8_9" in data.description


def test_digits_ood_split_is_stratified(digits_ood):
    train = np.bincount(digits_ood.y_train) / len(digits_ood.y_train)
    test = np.bincount(digits_ood.y_test) / len(digits_ood.y_test)
    assert_allclose(train, test, atol=0.01)


def test_digits_ood_id_and_near_ood_are_the_right_digits():
    # Match every returned image to its source row in load_digits: ID rows must
    # carry the digit classes[y], near-OOD rows only held-out digits.
    digits = load_digits()
    digit_of = {(img / 16.0).astype(np.float32).tobytes(): t
                for img, t in zip(digits.images, digits.target)}
    data = load_digits_ood(id_classes=(5, 1, 3), n_far=10)
    assert_array_equal(data.classes, [1, 3, 5])
    for X, y in [(data.X_train, data.y_train), (data.X_test, data.y_test)]:
        assert set(y.tolist()) == {0, 1, 2}
        digits_found = np.array([digit_of[x[0].tobytes()] for x in X])
        assert_array_equal(digits_found, data.classes[y])
    near = data.ood["digits_0_2_4_6_7_8_9"]
    near_digits = {digit_of[x[0].tobytes()] for x in near}
    assert near_digits == {0, 2, 4, 6, 7, 8, 9}
    assert len(near) == np.isin(digits.target, [0, 2, 4, 6, 7, 8, 9]).sum()


def test_digits_ood_is_deterministic_under_random_state():
    a = load_digits_ood(random_state=3, n_far=50)
    b = load_digits_ood(random_state=3, n_far=50)
    c = load_digits_ood(random_state=4, n_far=50)
    for key in ["X_train", "y_train", "X_test", "y_test"]:
        assert_array_equal(a[key], b[key])
    assert_array_equal(a.ood["photo_patches"], b.ood["photo_patches"])
    assert not np.array_equal(a.X_train, c.X_train)
    assert not np.array_equal(a.ood["photo_patches"], c.ood["photo_patches"])


def test_digits_ood_photo_patches_have_content(digits_ood):
    patches = digits_ood.ood["photo_patches"].reshape(500, -1)
    # each patch is min-max rescaled: spans exactly [0, 1], hence not constant
    assert_allclose(patches.min(axis=1), 0.0, atol=1e-6)
    assert_allclose(patches.max(axis=1), 1.0, atol=1e-6)
    assert (patches.std(axis=1) > 0.05).all()
    assert len(np.unique(patches, axis=0)) == 500


@pytest.mark.parametrize(
    "kwargs",
    [
        {"id_classes": tuple(range(10))},
        {"id_classes": ()},
        {"id_classes": (1, 1, 2)},
        {"id_classes": (0, 10)},
        {"id_classes": (0.5, 1)},
        {"n_far": 0},
    ],
)
def test_digits_ood_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError, match="id_classes|n_far"):
        load_digits_ood(**kwargs)


# --------------------------------------------------------------------------
# load_npz


def test_load_npz_round_trip_gray_and_rgb(tmp_path):
    rng = np.random.RandomState(0)
    gray = rng.randint(0, 256, size=(5, 4, 6), dtype=np.uint8)
    rgb = rng.randint(0, 256, size=(5, 4, 6, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 1, 0], dtype=np.int32)
    np.savez(tmp_path / "gray.npz", x=gray, y=labels)
    np.savez_compressed(tmp_path / "rgb.npz", x=rgb, y=labels, classes=np.array(["a", "b", "c"]))

    X, y = load_npz(tmp_path / "gray.npz")
    _assert_images(X, (5, 1, 4, 6))
    assert_allclose(X[:, 0] * 255, gray, atol=1e-4)
    assert y.dtype == np.int64
    assert_array_equal(y, labels)

    X, y = load_npz(str(tmp_path / "rgb.npz"))
    _assert_images(X, (5, 3, 4, 6))
    assert_allclose(X * 255, rgb.transpose(0, 3, 1, 2), atol=1e-4)


def test_load_npz_accepts_float_and_single_channel_last(tmp_path):
    x = np.linspace(0, 1, 2 * 3 * 3).reshape(2, 3, 3, 1)
    np.savez(tmp_path / "f.npz", x=x, y=np.array([3, 4]))
    X, _ = load_npz(tmp_path / "f.npz")
    _assert_images(X, (2, 1, 3, 3))
    assert_allclose(X[:, 0], x[..., 0], rtol=1e-6)


def test_load_npz_reads_pytorch_channels_first_layout(tmp_path):
    rng = np.random.RandomState(0)
    nchw = rng.randint(0, 256, size=(4, 3, 8, 6), dtype=np.uint8)  # as saved from a tensor
    gray = rng.randint(0, 256, size=(4, 1, 8, 6), dtype=np.uint8)
    np.savez(tmp_path / "rgb.npz", x=nchw, y=np.arange(4))
    np.savez(tmp_path / "gray.npz", x=gray, y=np.arange(4))
    X, _ = load_npz(tmp_path / "rgb.npz")
    _assert_images(X, (4, 3, 8, 6))
    assert_array_equal(X, nchw.astype(np.float32) / 255)  # no normalisation, no transposition
    X, _ = load_npz(tmp_path / "gray.npz", channels=3)
    _assert_images(X, (4, 3, 8, 6))
    assert_array_equal(X[:, 2], gray[:, 0].astype(np.float32) / 255)


def test_load_npz_resize_by_hand(tmp_path):
    # Columns 0 and 255: bilinear 2 -> 4 (pixel centres, edges clamped) gives
    # weights [1, 0], [.75, .25], [.25, .75], [0, 1] -> 0, .25, .75, 1.
    x = np.array([[[0, 255], [0, 255]]], dtype=np.uint8)
    np.savez(tmp_path / "up.npz", x=x, y=[0])
    X, _ = load_npz(tmp_path / "up.npz", size=(4, 4))
    assert_allclose(X[0, 0], np.tile([0.0, 0.25, 0.75, 1.0], (4, 1)), atol=1e-6)

    # Shrinking 4 -> 2 is antialiased: a triangle of half-width 2 input pixels
    # centred between pixels 0 and 1 gives them .75, .75, .25, 0, normalised to
    # 3/7, 3/7, 1/7, 0, so output 0 is 1/7 and output 1 is 6/7.
    x = np.array([[[0, 0, 255, 255]] * 4], dtype=np.uint8)
    np.savez(tmp_path / "down.npz", x=x, y=[0])
    X, _ = load_npz(tmp_path / "down.npz", size=(2, 2))
    assert_allclose(X[0, 0], [[1 / 7, 6 / 7], [1 / 7, 6 / 7]], atol=1e-6)


def test_load_npz_resize_keeps_constant_images_and_int_size(tmp_path):
    x = np.full((3, 7, 5), 51, dtype=np.uint8)
    np.savez(tmp_path / "c.npz", x=x, y=[0, 1, 2])
    X, _ = load_npz(tmp_path / "c.npz", size=3)
    _assert_images(X, (3, 1, 3, 3))
    assert_allclose(X, 0.2, atol=1e-6)


def test_load_npz_resize_matches_torch_antialiased_bilinear(tmp_path):
    x = np.random.RandomState(0).randint(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "r.npz", x=x, y=np.arange(4))
    for size in [(28, 28), (8, 12), (40, 33)]:
        X, _ = load_npz(tmp_path / "r.npz", size=size)
        ref = torch.nn.functional.interpolate(
            torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255,
            size=size, mode="bilinear", align_corners=False, antialias=True,
        )
        assert_allclose(X, ref.numpy(), atol=1e-5)


def test_load_npz_channel_conversion_by_hand(tmp_path):
    x = np.zeros((1, 1, 3, 3), dtype=np.uint8)
    x[0, 0, 0, 0] = x[0, 0, 1, 1] = x[0, 0, 2, 2] = 255  # pure red, green, blue pixels
    np.savez(tmp_path / "rgb.npz", x=x, y=[0])
    X, _ = load_npz(tmp_path / "rgb.npz", channels=1)
    _assert_images(X, (1, 1, 1, 3))
    assert_allclose(X[0, 0, 0], [0.299, 0.587, 0.114], atol=1e-6)

    gray = np.array([[[0, 128], [255, 64]]], dtype=np.uint8)
    np.savez(tmp_path / "gray.npz", x=gray, y=[0])
    X, _ = load_npz(tmp_path / "gray.npz", channels=3, size=(2, 2))
    _assert_images(X, (1, 3, 2, 2))
    for c in range(3):
        assert_allclose(X[0, c] * 255, gray[0], atol=1e-4)


def test_load_npz_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_npz(path)


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"x": np.zeros((2, 3, 3), np.uint8)}, r"missing array\(s\) \['y'\]"),
        ({"images": np.zeros((2, 3, 3), np.uint8), "y": [0, 1]}, r"\['x'\].*found"),
        ({"x": np.zeros((2, 9), np.uint8), "y": [0, 1]}, r"\(N, H, W\).*got shape \(2, 9\)"),
        ({"x": np.zeros((2, 3, 3, 2), np.uint8), "y": [0, 1]}, r"got shape \(2, 3, 3, 2\)"),
        ({"x": np.zeros((2, 3, 3), np.uint8), "y": [0, 1, 2]}, "2 images but 3 labels"),
        ({"x": np.zeros((2, 3, 3), np.uint8), "y": np.zeros((2, 1), int)}, "1-D integer"),
        ({"x": np.zeros((2, 3, 3), np.uint8), "y": [0.0, 1.0]}, "1-D integer"),
        ({"x": np.full((2, 3, 3), 2.0), "y": [0, 1]}, r"\[0, 1\].*uint8"),
        ({"x": np.zeros((2, 3, 3), np.int32), "y": [0, 1]}, "uint8.*int32"),
        ({"x": np.zeros((0, 3, 3), np.uint8), "y": np.zeros(0, int)}, "no images"),
    ],
)
def test_load_npz_errors_name_file_and_problem(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match) as info:
        load_npz(path)
    assert str(path) in str(info.value)


def test_load_npz_refuses_object_arrays_clearly(tmp_path):
    path = tmp_path / "objects.npz"
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.zeros((3, 3)), np.zeros((4, 4))
    np.savez(path, x=ragged, y=[0, 1])
    with pytest.raises(ValueError, match=r"'x' has dtype=object.*allow_pickle=False") as info:
        load_npz(path)
    assert str(path) in str(info.value)


def test_load_npz_rejects_files_that_are_not_npz(tmp_path):
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="text.npz.*npz archive"):
        load_npz(tmp_path / "text.npz")
    np.save(tmp_path / "single.npy", np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="single.npy.*single .npy array"):
        load_npz(tmp_path / "single.npy")


@pytest.mark.parametrize("kwargs", [{"size": (0, 4)}, {"size": (2, 2, 2)}, {"channels": 2}])
def test_load_npz_rejects_bad_size_and_channels(tmp_path, kwargs):
    np.savez(tmp_path / "ok.npz", x=np.zeros((1, 2, 2), np.uint8), y=[0])
    with pytest.raises(ValueError, match="size|channels"):
        load_npz(tmp_path / "ok.npz", **kwargs)


# --------------------------------------------------------------------------
# load_idx


def _idx_bytes(array, type_code=0x08):
    array = np.asarray(array)
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def test_load_idx_reads_plain_and_gzip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 10
    labels = np.array([7, 2], dtype=np.uint8)
    (tmp_path / "img-idx3-ubyte").write_bytes(_idx_bytes(images))
    (tmp_path / "lab-idx1-ubyte").write_bytes(_idx_bytes(labels))
    with gzip.open(tmp_path / "img-idx3-ubyte.gz", "wb") as f:
        f.write(_idx_bytes(images))
    with gzip.open(tmp_path / "lab-idx1-ubyte.gz", "wb") as f:
        f.write(_idx_bytes(labels))

    for suffix in ["", ".gz"]:
        X, y = load_idx(tmp_path / f"img-idx3-ubyte{suffix}", tmp_path / f"lab-idx1-ubyte{suffix}")
        _assert_images(X, (2, 1, 3, 4))
        assert_allclose(X[:, 0] * 255, images, atol=1e-4)
        assert y.dtype == np.int64
        assert_array_equal(y, [7, 2])

    X = load_idx(tmp_path / "img-idx3-ubyte", size=(6, 8), channels=3)
    _assert_images(X, (2, 3, 6, 8))


def test_load_idx_reads_big_endian_wider_types(tmp_path):
    labels = np.array([1, 300, 70000], dtype=np.int32)
    (tmp_path / "lab").write_bytes(_idx_bytes(labels, type_code=0x0C))
    images = np.linspace(0, 1, 3 * 2 * 2).reshape(3, 2, 2).astype(np.float32)
    (tmp_path / "img").write_bytes(_idx_bytes(images, type_code=0x0D))
    X, y = load_idx(tmp_path / "img", tmp_path / "lab")
    assert_allclose(X[:, 0], images)
    assert_array_equal(y, labels)


def test_load_idx_errors(tmp_path):
    good = _idx_bytes(np.zeros((2, 3, 3), np.uint8))
    (tmp_path / "magic").write_bytes(b"\x01\x02" + good[2:])
    with pytest.raises(ValueError, match="magic: bad IDX magic number 0x01020803"):
        load_idx(tmp_path / "magic")
    (tmp_path / "type").write_bytes(b"\x00\x00\x07\x03" + good[4:])
    with pytest.raises(ValueError, match="bad IDX magic number 0x00000703"):
        load_idx(tmp_path / "type")
    (tmp_path / "short").write_bytes(good[:-1])
    with pytest.raises(ValueError, match=r"short.*\(2, 3, 3\).*18 data bytes.*17 data bytes"):
        load_idx(tmp_path / "short")
    (tmp_path / "header").write_bytes(good[:9])
    with pytest.raises(ValueError, match="truncated IDX header"):
        load_idx(tmp_path / "header")
    (tmp_path / "good").write_bytes(good)
    (tmp_path / "three-labels").write_bytes(_idx_bytes(np.array([0, 1, 2], np.uint8)))
    with pytest.raises(ValueError, match="three-labels.*2 images but 3 labels"):
        load_idx(tmp_path / "good", tmp_path / "three-labels")
    (tmp_path / "labels-2d").write_bytes(_idx_bytes(np.zeros((2, 1), np.uint8)))
    with pytest.raises(ValueError, match="1-D integer"):
        load_idx(tmp_path / "good", tmp_path / "labels-2d")
    with pytest.raises(FileNotFoundError, match="absent"):
        load_idx(tmp_path / "absent")


# --------------------------------------------------------------------------
# load_image_folder


def test_load_image_folder_reads_classes_in_sorted_order(tmp_path):
    from PIL import Image

    colours = {"zebra": (255, 0, 0), "ant": (0, 0, 255)}
    for name, colour in colours.items():
        (tmp_path / name).mkdir()
        for i, shape in enumerate([(5, 7), (9, 4)]):
            Image.new("RGB", shape, colour).save(tmp_path / name / f"{i}.png")
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden").mkdir()

    X, y, classes = load_image_folder(tmp_path, size=(6, 8))
    _assert_images(X, (4, 3, 6, 8))
    assert_array_equal(classes, ["ant", "zebra"])
    assert y.dtype == np.int64
    assert_array_equal(y, [0, 0, 1, 1])
    assert_allclose(X[y == 0], np.broadcast_to(np.array([0, 0, 1.0])[:, None, None], (2, 3, 6, 8)))
    assert_allclose(X[y == 1], np.broadcast_to(np.array([1.0, 0, 0])[:, None, None], (2, 3, 6, 8)))

    X, _, _ = load_image_folder(tmp_path, size=4, channels=1)
    _assert_images(X, (4, 1, 4, 4))
    assert_allclose(X[2:], 0.299, atol=1 / 255)  # red under Pillow's "L" luma


def test_load_image_folder_errors(tmp_path):
    from PIL import Image

    with pytest.raises(FileNotFoundError, match="missing"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="no class subfolders"):
        load_image_folder(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.new("L", (3, 3)).save(tmp_path / "a" / "0.png")
    with pytest.raises(ValueError, match=r"class folder 'b' holds no image files"):
        load_image_folder(tmp_path)
    (tmp_path / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png.*cannot be decoded"):
        load_image_folder(tmp_path)


def test_load_image_folder_without_pillow_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # makes `from PIL import ...` fail
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(ImportError, match="pip install pillow"):
        load_image_folder(tmp_path)


# --------------------------------------------------------------------------
# load_benchmark


def test_benchmark_registry_describes_every_set():
    assert list_benchmarks() == sorted(BENCHMARKS)
    assert {"mnist", "fashion_mnist", "usps", "cifar10", "dtd", "textures"} <= set(BENCHMARKS)
    for spec in BENCHMARKS.values():
        assert "test" in spec["files"]
        assert all(f.endswith(".npz") for f in spec["files"].values())
        assert len(spec["image_size"]) == 2 and spec["channels"] in (1, 3)


def test_load_benchmark_unknown_name_lists_names(tmp_path):
    with pytest.raises(ValueError, match="Unknown benchmark 'svhn'") as info:
        load_benchmark("svhn", tmp_path)
    for name in BENCHMARKS:
        assert name in str(info.value)


def test_load_benchmark_unknown_split(tmp_path):
    with pytest.raises(ValueError, match=r"'dtd' has no split 'train'.*\['test'\]"):
        load_benchmark("dtd", tmp_path, split="train")


def test_load_benchmark_missing_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data-dir") as info:
        load_benchmark("cifar10", tmp_path, split="train")
    assert str(tmp_path / "cifar10_train4k.npz") in str(info.value)


def test_load_benchmark_reads_and_adapts_geometry(tmp_path):
    x = np.random.RandomState(0).randint(0, 256, size=(3, 32, 32), dtype=np.uint8)
    np.savez(tmp_path / "skimage_texture_patches.npz", x=x, y=[0, 1, 2])
    X, y = load_benchmark("Textures", tmp_path)
    _assert_images(X, (3, 1, 32, 32))
    assert_allclose(X[:, 0] * 255, x, atol=1e-4)
    X, y = load_benchmark("textures", tmp_path, size=(28, 28), channels=3)
    _assert_images(X, (3, 3, 28, 28))
    assert_array_equal(y, [0, 1, 2])


def test_load_benchmark_selects_usps_split(tmp_path):
    x = np.arange(5, dtype=np.uint8)[:, None, None] * np.ones((5, 28, 28), np.uint8)
    np.savez(tmp_path / "usps.npz", x=x, y=[5, 6, 7, 8, 9], split=[0, 1, 0, 1, 0])
    X, y = load_benchmark("usps", tmp_path, split="train")
    assert_array_equal(y, [5, 7, 9])
    assert_allclose(X[:, 0, 0, 0] * 255, [0, 2, 4], atol=1e-4)
    X, y = load_benchmark("usps", tmp_path, split="test")
    assert_array_equal(y, [6, 8])


def test_load_benchmark_rejects_wrong_geometry(tmp_path):
    np.savez(tmp_path / "mnist_test.npz", x=np.zeros((2, 32, 32, 3), np.uint8), y=[0, 1])
    with pytest.raises(ValueError, match=r"mnist_test.npz.*\(1, 28, 28\).*\(3, 32, 32\)"):
        load_benchmark("mnist", tmp_path)
