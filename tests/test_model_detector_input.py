"""Model detectors on Datasets, DataLoaders and streams: the array results, bit for bit.

The reference is always the same detector on the plain array (with ``y``); the
offset sample is checked against :func:`offset_sample` drawn independently.
"""

import numpy as np
import pytest
import torch
from _model_state_checks import Faulty, assert_unchanged, prepare
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from sklearn_ood._base import offset_sample
from sklearn_ood.model_detectors import (
    ODIN,
    AdaSCALE,
    BlockSelection,
    InputPreprocessedMahalanobis,
    MCDropout,
)

N, C, S, BATCH = 23, 2, 6, 4
STD = [0.5, 0.25]


def net(seed=0):
    """A Faulty identity, two conv blocks (BlockSelection's candidates, IPM's blocks), dropout, a linear head."""
    torch.manual_seed(seed)
    return nn.Sequential(
        Faulty(),
        nn.Sequential(nn.Conv2d(C, 4, 3, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU()),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(6, 3))


DETECTORS = {
    "ODIN": lambda m: ODIN(m, magnitude=0.01, input_std=STD, batch_size=BATCH),
    "InputPreprocessedMahalanobis": lambda m: InputPreprocessedMahalanobis(
        m, ["1", "2"], magnitude=0.01, batch_size=BATCH),
    "AdaSCALE": lambda m: AdaSCALE(m, percentiles=(60, 90), random_state=0,
                                   batch_size=BATCH),
    "MCDropout": lambda m: MCDropout(m, n_passes=3, random_state=0, batch_size=BATCH),
    "BlockSelection": lambda m: BlockSelection(m, random_state=0, batch_size=BATCH),
}


def data(seed=0):
    X = np.random.default_rng(seed).random((N, C, S, S), dtype=np.float32)
    y = np.arange(N) % 3
    y[[2, 11, 12]] = -1  # OOD rows: fit ignores them
    return X, y


class Items(Dataset):
    """Map-style: a NumPy image and an int label per item; ``fail`` raises on one item."""

    def __init__(self, X, y=None, fail=None):
        self.X, self.y, self.fail = X, y, fail

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        if self.fail is not None and i == self.fail[0]:
            raise self.fail[1]
        return self.X[i] if self.y is None else (self.X[i], int(self.y[i]))


def batches_of(X, y, size):
    for start in range(0, len(X), size):
        yield torch.from_numpy(X[start : start + size]), torch.from_numpy(y[start : start + size])


def make(kind, X, y, tmp_path):
    tensors = TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    if kind == "memmap":
        path = tmp_path / "x.npy"
        np.save(path, X)
        return np.load(path, mmap_mode="r")
    return {
        "tensor_dataset": tensors,
        "item_dataset": Items(X, y),
        "loader": DataLoader(tensors, batch_size=BATCH + 1),  # not the detector's
        "loader_unbatched": DataLoader(tensors, batch_size=None),
        "generator": batches_of(X, y, 3),
    }[kind]


def fitted_state(det):
    return {k: v for k, v in vars(det).items() if k.endswith("_") and not k.startswith("_")}


def assert_same_fit(a, b):
    sa, sb = fitted_state(a), fitted_state(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        if isinstance(sa[key], list):
            for u, v in zip(sa[key], sb[key]):
                np.testing.assert_array_equal(u, v)
        elif isinstance(sa[key], dict):
            assert sa[key] == sb[key]
        else:
            np.testing.assert_array_equal(sa[key], sb[key])


@pytest.mark.parametrize("name", DETECTORS)
@pytest.mark.parametrize("kind", ["tensor_dataset", "item_dataset", "loader",
                                  "loader_unbatched", "generator", "memmap"])
def test_every_input_kind_gives_the_array_fit_and_scores_exactly(name, kind, tmp_path):
    model = net()
    X, y = data()
    reference = DETECTORS[name](model).fit(X, y)
    expected = reference.score_samples(X)

    if kind == "generator" and name == "InputPreprocessedMahalanobis":
        with pytest.raises(TypeError, match="reads its input 2 times.*one-shot"):
            DETECTORS[name](model).fit(make(kind, X, y, tmp_path))
        return
    fit_X = make(kind, X, y, tmp_path)
    # The labels (and OOD rows) come from the data; a memmap has none: y is given.
    det = DETECTORS[name](model).fit(fit_X, y if kind == "memmap" else None)
    assert_same_fit(det, reference)
    assert det.offset_ == reference.offset_
    scores = det.score_samples(make(kind, X, y, tmp_path))
    np.testing.assert_array_equal(scores, expected)
    assert det.predict(make(kind, X, y, tmp_path)).tolist() == reference.predict(X).tolist()


def test_model_sees_batches_of_batch_size_whatever_the_loader():
    model = net()
    X, y = data()
    sizes = []
    model[1].register_forward_pre_hook(lambda m, inputs: sizes.append(len(inputs[0])))
    det = ODIN(model, magnitude=0.0, batch_size=BATCH).fit(X)
    sizes.clear()
    det.score_samples(DataLoader(TensorDataset(torch.from_numpy(X)), batch_size=7))
    assert sizes == [4, 4, 4, 4, 4, 3]


@pytest.mark.parametrize("make_det", [
    lambda m: MCDropout(m, n_passes=2, random_state=0, batch_size=256),
    lambda m: ODIN(m, magnitude=0.0, batch_size=256),
], ids=["MCDropout", "ODIN"])
def test_offset_sample_is_the_same_rows_beyond_10000(make_det):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 5), nn.Dropout(0.3),
                          nn.Linear(5, 3)).double()
    n = 10_050
    X = np.random.default_rng(0).normal(size=(n, 1, 1, 2))
    y = np.arange(n) % 3
    y[::1000] = -1  # 11 OOD rows: 10,039 ID rows, so the offset comes from a sample
    is_id = y >= 0
    rows = np.flatnonzero(is_id)[offset_sample(is_id.sum())]
    det = make_det(model).fit(X, y)
    # The seeded rows, scored on their own (MC dropout: same seed, same batches).
    assert det.offset_ == np.percentile(det.score_samples(X[rows]), 5)
    assert det.offset_ != np.percentile(det.score_samples(X[is_id]), 5)  # other rows differ
    data_set = TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    assert make_det(model).fit(data_set).offset_ == det.offset_  # labels from the data
    assert make_det(model).fit(DataLoader(data_set, batch_size=1000)).offset_ == det.offset_


def test_labels_from_y_and_from_the_data():
    model = net()
    X, y = data()
    ipm = DETECTORS["InputPreprocessedMahalanobis"]
    reference = ipm(model).fit(X, y)
    both = ipm(model).fit(Items(X, y), y)  # they agree: fine
    np.testing.assert_array_equal(both.classes_, reference.classes_)
    assert both.offset_ == reference.offset_
    other = y.copy()
    other[9] = 1 - other[9] % 2
    with pytest.raises(ValueError, match=r"disagree in batch 2 \(samples 8 to 11\)"):
        ipm(model).fit(Items(X, y), other)
    with pytest.raises(ValueError, match="one label per row"):
        ipm(model).fit(Items(X, y), y[:-1])
    # A stream of unknown length: y's length is checked as it is read.
    with pytest.raises(ValueError, match="y has 22 labels, but X has more samples"):
        ipm(model).fit(Unsized(X), y[:-1])
    with pytest.raises(ValueError, match="y has 24 labels, but X has 23 samples"):
        ipm(model).fit(Unsized(X), np.append(y, 0))
    with pytest.raises(ValueError, match="every row as OOD"):
        ipm(model).fit(Items(X, -np.ones(N)))
    # Without labels anywhere: one class, as for an array without y.
    unlabelled = ipm(model).fit(Items(X))
    assert unlabelled.classes_ is None
    np.testing.assert_array_equal(unlabelled.means_[0], ipm(model).fit(X).means_[0])


class Unsized(torch.utils.data.IterableDataset):
    """A re-readable stream of unknown length."""

    def __init__(self, X):
        self.X = X

    def __iter__(self):
        return iter(torch.from_numpy(self.X))


@pytest.mark.parametrize("name", DETECTORS)
def test_shuffled_loader_is_rejected(name):
    X, y = data()
    loader = DataLoader(TensorDataset(torch.from_numpy(X), torch.from_numpy(y)),
                        batch_size=5, shuffle=True)
    det = DETECTORS[name](net())
    with pytest.raises(ValueError, match="shuffle=False"):
        det.fit(loader)
    det.fit(X, y)
    with pytest.raises(ValueError, match="shuffle=False"):
        det.score_samples(loader)


def test_bad_batches_name_the_batch():
    X, y = data()
    det = ODIN(net(), batch_size=BATCH).fit(X, y)

    def bad():
        yield torch.from_numpy(X[:5])
        yield torch.from_numpy(X[5:9, :1])

    with pytest.raises(ValueError, match=r"1 channels in batch 1 \(samples 5 to 8\)"):
        det.score_samples(bad())
    with pytest.raises(ValueError, match="expects images of shape"):
        det.score_samples(iter([torch.from_numpy(X[:3, 0])]))
    with pytest.raises(ValueError, match=r"shape \(2, 5, 5\) in batch 1"):
        det.score_samples(iter([torch.from_numpy(X[:3]), torch.zeros(2, C, 5, 5)]))


class Boom(Exception):
    pass


@pytest.mark.parametrize("name", DETECTORS)
@pytest.mark.parametrize("error", [Boom("item broken"), KeyboardInterrupt()],
                         ids=["error", "interrupt"])
def test_a_failing_item_leaves_model_and_detector_as_they_were(name, error):
    model = net()
    X, y = data()
    before = prepare(model)
    det = DETECTORS[name](model).fit(X, y)
    state = dict(vars(det))
    scores = det.score_samples(X)
    for call in ("fit", "score_samples"):
        broken = Items(X, y, fail=(13, error))
        with pytest.raises(type(error)) as info:
            det.fit(broken) if call == "fit" else det.score_samples(broken)
        notes = "\n".join(getattr(info.value, "__notes__", []))
        assert "item 13 of the Dataset" in notes
        assert "batch 3 (samples from 12)" in notes  # batches of 4 items
        assert_unchanged(model, before)
        assert vars(det).keys() == state.keys()
        assert all(vars(det)[k] is v for k, v in state.items())
    np.testing.assert_array_equal(det.score_samples(X), scores)


@pytest.mark.parametrize("name", ["ODIN", "InputPreprocessedMahalanobis"])
def test_a_loader_failing_mid_pass_leaves_the_model_as_it_was(name):
    model = net()
    X, y = data()
    before = prepare(model)
    det = DETECTORS[name](model).fit(X, y)
    loader = DataLoader(Items(X, y, fail=(13, Boom("item broken"))), batch_size=5)
    for call in (det.fit, det.score_samples):
        with pytest.raises(Boom, match="item broken"):
            call(loader)  # after the first images ran through the model
        assert_unchanged(model, before)


@pytest.mark.parametrize("name", DETECTORS)
def test_a_failing_pass_names_its_batch(name):
    model = net()
    X, y = data()
    before = prepare(model)
    det = DETECTORS[name](model).fit(X, y)
    model[0].fail = "forward"
    try:
        with pytest.raises(RuntimeError, match="forward failed") as info:
            det.score_samples(DataLoader(TensorDataset(torch.from_numpy(X)), batch_size=3))
    finally:
        model[0].fail = None
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "a batch of 4 images (samples 0 to 3 of X" in notes
    assert_unchanged(model, before)


def test_lazy_array_is_read_one_batch_at_a_time():
    X, y = data()

    class Lazy:
        shape, dtype = X.shape, X.dtype

        def __init__(self):
            self.reads = []

        def __len__(self):
            return N

        def __getitem__(self, key):
            self.reads.append((key.start, key.stop))
            return X[key].copy()

        def __array__(self, dtype=None, copy=None):
            raise AssertionError("the whole array was read")

    lazy = Lazy()
    det = ODIN(net(), batch_size=BATCH).fit(X)
    np.testing.assert_array_equal(det.score_samples(lazy), det.score_samples(X))
    assert lazy.reads == [(s, s + BATCH) for s in range(0, N, BATCH)]
