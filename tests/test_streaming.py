"""Streaming input: every kind of input gives the features of a plain model call.

The reference is computed independently: the whole stacked array through the
model once, with a hook of our own, reduced by hand.
"""

import pickle
import sys
import weakref

import numpy as np
import pytest
import torch
from _model_state_checks import assert_unchanged, prepare
from scipy.special import logsumexp
from sklearn.pipeline import make_pipeline
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from sklearn_ood import BlockFeatureExtractor, Energy
from sklearn_ood.exceptions import LabelsNotPassedWarning
from sklearn_ood.extraction import iter_block_batches
from sklearn_ood.streaming import iter_input_batches, labels_of, n_samples

N = 10


class Net(torch.nn.Module):
    """conv (4 ch) -> relu -> conv (6 ch, stride 2) -> relu -> pool -> fc (3 classes)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.act1 = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.act2 = torch.nn.ReLU()
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.flat = torch.nn.Flatten()
        self.drop = torch.nn.Dropout(0.5)
        self.fc = torch.nn.Linear(6, 3)
        self.batch_sizes = []

    def forward(self, x):
        self.batch_sizes.append(len(x))
        x = self.act2(self.conv2(self.act1(self.conv1(x))))
        return self.fc(self.drop(self.flat(self.pool(x))))


def reference(net, images):
    """Spatial mean of act2 for the whole stack, from one plain call with our own hook."""
    out = []
    handle = net.act2.register_forward_hook(lambda m, i, o: out.append(o.mean(dim=(2, 3))))
    flags = [m.training for m in net.modules()]
    net.eval()
    try:
        with torch.no_grad():
            net(torch.as_tensor(images))
    finally:
        handle.remove()
        for m, flag in zip(net.modules(), flags):
            m.training = flag
    net.batch_sizes.clear()
    return out[0].numpy()


@pytest.fixture
def images():
    return np.random.default_rng(0).normal(size=(N, 1, 8, 8)).astype(np.float32)


LABELS = np.array([2, 0, 1, 1, 0, 2, 2, 1, 0, 0])


class ItemDataset(Dataset):
    """Map-style: NumPy image and an int label per item; counts the items read."""

    def __init__(self, images, labels=None):
        self.images, self.labels, self.reads = images, labels, []

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        self.reads.append(i)
        image = self.images[i]
        return image if self.labels is None else (image, int(self.labels[i]))


class Stream(IterableDataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __iter__(self):
        return iter(zip(torch.from_numpy(self.images), self.labels.tolist()))


class CountingArray:
    """A lazily sliced array-like (as h5py/zarr): shape, len, slicing; logs each read."""

    def __init__(self, array):
        self._array, self.reads = array, []
        self.shape, self.dtype = array.shape, array.dtype

    def __len__(self):
        return len(self._array)

    def __getitem__(self, key):
        self.reads.append((key.start, key.stop))
        return self._array[key].copy()

    def __array__(self, dtype=None, copy=None):
        raise AssertionError("the whole array was read")


def batches_of(images, labels=None, size=3):
    for start in range(0, len(images), size):
        x = torch.from_numpy(images[start : start + size])
        yield x if labels is None else (x, torch.from_numpy(labels[start : start + size]))


def make_input(kind, images, tmp_path):
    """``(X, labels the input carries or None)`` for each supported kind of input."""
    tensors = TensorDataset(torch.from_numpy(images), torch.from_numpy(LABELS))
    if kind == "memmap":
        mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32,
                                       shape=images.shape)
        mm[:] = images
        mm.flush()
        return np.load(tmp_path / "x.npy", mmap_mode="r"), None
    return {
        "tensor_dataset": (tensors, LABELS),
        "item_dataset": (ItemDataset(images, LABELS), LABELS),
        "bare_dataset": (ItemDataset(images), None),
        "iterable_dataset": (Stream(images, LABELS), LABELS),
        "loader": (DataLoader(tensors, batch_size=4), LABELS),
        "loader_unbatched": (DataLoader(tensors, batch_size=None), LABELS),
        "generator": (batches_of(images, LABELS), LABELS),
        "bare_generator": (batches_of(images), None),
        "lazy_array": (CountingArray(images), None),
    }[kind]


KINDS = ["memmap", "tensor_dataset", "item_dataset", "bare_dataset", "iterable_dataset",
         "loader", "loader_unbatched", "generator", "bare_generator", "lazy_array"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_input_kind_matches_plain_model_call(kind, images, tmp_path):
    net = Net()
    expected = reference(net, images)
    X, labels = make_input(kind, images, tmp_path)
    ext = BlockFeatureExtractor(net, "act2", batch_size=4).fit(make_input(kind, images,
                                                                          tmp_path)[0])
    features, got_labels = ext.transform_with_labels(X)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    if labels is None:
        assert got_labels is None
    else:
        np.testing.assert_array_equal(got_labels, labels)
    # Same batches as the array path, so the very same bits.
    array_features = BlockFeatureExtractor(net, "act2", batch_size=4).fit(images).transform(
        images)
    if kind != "generator" and kind != "bare_generator":  # those come in batches of 3
        np.testing.assert_array_equal(features, array_features)


def test_shuffled_loader_keeps_features_and_labels_aligned(images):
    net = Net()
    expected = reference(net, images)
    ids = np.arange(N)
    loader = DataLoader(TensorDataset(torch.from_numpy(images), torch.from_numpy(ids)),
                        batch_size=3, shuffle=True,
                        generator=torch.Generator().manual_seed(1))
    features, order = BlockFeatureExtractor(net, "act2").fit(loader).transform_with_labels(
        loader)
    assert sorted(order) == list(ids) and list(order) != list(ids)
    np.testing.assert_allclose(features, expected[order], rtol=1e-5, atol=1e-6)


def test_loader_batches_used_as_yielded_and_batch_size_ignored(images):
    net = Net()
    loader = DataLoader(TensorDataset(torch.from_numpy(images)), batch_size=4)
    ext = BlockFeatureExtractor(net, "fc", batch_size=7).fit(loader)
    net.batch_sizes.clear()
    ext.transform(loader)
    assert net.batch_sizes == [4, 4, 2]


def test_loader_with_worker_processes(images):
    net = Net()
    loader = DataLoader(TensorDataset(torch.from_numpy(images), torch.from_numpy(LABELS)),
                        batch_size=4, num_workers=2)
    features, labels = BlockFeatureExtractor(net, "act2").fit(loader).transform_with_labels(
        loader)
    np.testing.assert_allclose(features, reference(net, images), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels, LABELS)


def test_lazy_array_is_read_slice_by_slice(images):
    X = CountingArray(images)
    ext = BlockFeatureExtractor(Net(), "act2", batch_size=4).fit(X)
    assert X.reads == [(0, 1)]  # fit probes the first sample only
    X.reads.clear()
    ext.transform(X)
    assert X.reads == [(0, 4), (4, 8), (8, 12)]  # never the whole array


def test_dataset_items_read_once_in_order_and_fit_reads_one(images):
    data = ItemDataset(images, LABELS)
    ext = BlockFeatureExtractor(Net(), "act2", batch_size=4).fit(data)
    assert data.reads == [0]
    data.reads.clear()
    ext.transform_with_labels(data)
    assert data.reads == list(range(N))


def test_at_most_one_batch_of_images_alive(images):
    """While batch k+1 is read, no tensor of batch k is still referenced."""
    net = Net()
    fed = weakref.WeakSet()  # every batch the model received
    handle = net.register_forward_pre_hook(lambda m, args: fed.add(args[0]))
    alive_when_reading = []

    class Watching(ItemDataset):
        def __getitem__(self, i):
            alive_when_reading.append(len(fed))
            return torch.from_numpy(self.images[i].copy())

    def generator():
        for start in range(0, N, 3):
            alive_when_reading.append(len(fed))
            yield torch.from_numpy(images[start : start + 3].copy())

    try:
        for make in (lambda: Watching(images), generator):
            alive_when_reading.clear()
            ext = BlockFeatureExtractor(net, "act2", batch_size=3)
            ext.fit_transform(make())
            ext.transform(make())
            assert len(alive_when_reading) >= 8 and max(alive_when_reading) == 0
    finally:
        handle.remove()


def test_pipeline_fits_on_loader_and_generator(images):
    net = Net()
    loader = DataLoader(TensorDataset(torch.from_numpy(images), torch.from_numpy(LABELS)),
                        batch_size=4)
    pipe = make_pipeline(BlockFeatureExtractor(net, "flat"), Energy(head=net.fc))
    with pytest.warns(LabelsNotPassedWarning):  # Energy uses none: harmless here
        pipe.fit(loader)
    with torch.no_grad():
        logits = net.eval()(torch.from_numpy(images)).numpy().astype(np.float64)
    np.testing.assert_allclose(pipe.score_samples(loader), logsumexp(logits, axis=1),
                               rtol=1e-5)
    pipe_gen = make_pipeline(BlockFeatureExtractor(net, "flat"), Energy(head=net.fc))
    pipe_gen.fit(batches_of(images))
    np.testing.assert_allclose(pipe_gen.score_samples(iter([torch.from_numpy(images)])),
                               logsumexp(logits, axis=1), rtol=1e-5)


def test_fit_transform_reads_a_generator_once(images):
    net = Net()
    with pytest.warns(LabelsNotPassedWarning):
        features = BlockFeatureExtractor(net, "act2", batch_size=4).fit_transform(
            batches_of(images, LABELS))
    np.testing.assert_allclose(features, reference(net, images), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="empty"):
        BlockFeatureExtractor(net, "act2").fit_transform(iter([]))


def test_progress_counts_images(images, capsys):
    net = Net()
    for X, total in ((images, f"{N}/{N}"), (batches_of(images), f"{N}img")):
        BlockFeatureExtractor(net, "act2", progress=True).fit_transform(X)
        err = capsys.readouterr().err
        assert total in err and "img/s" in err, err


def test_iter_block_batches_yields_labels(images):
    net = Net()
    data = TensorDataset(torch.from_numpy(images), torch.from_numpy(LABELS))
    out = list(iter_block_batches(net, ["act2"], data, batch_size=4, return_labels=True))
    assert [start for start, _, _ in out] == [0, 4, 8]
    np.testing.assert_array_equal(np.concatenate([y for _, _, y in out]), LABELS)
    np.testing.assert_allclose(np.concatenate([b["act2"] for _, b, _ in out]),
                               reference(net, images), rtol=1e-5, atol=1e-6)


def test_labels_of_reads_the_labels_in_order_and_refuses_what_it_cannot():
    tensors = TensorDataset(torch.from_numpy(np.zeros((N, 1, 2, 2), np.float32)),
                            torch.from_numpy(LABELS))
    for X in (tensors, ItemDataset(np.zeros((N, 1, 2, 2)), LABELS),
              DataLoader(tensors, batch_size=3), DataLoader(tensors, batch_size=None)):
        np.testing.assert_array_equal(labels_of(X), LABELS)
    with pytest.raises(TypeError, match="one-shot"):
        labels_of(batches_of(np.zeros((N, 1, 2, 2), np.float32), LABELS))
    with pytest.raises(ValueError, match="shuffle=False"):
        labels_of(DataLoader(tensors, batch_size=3, shuffle=True))
    with pytest.raises(ValueError, match="yields no labels"):
        labels_of(ItemDataset(np.zeros((N, 1, 2, 2))))


def test_n_samples():
    data = TensorDataset(torch.zeros(10, 3))
    assert n_samples(np.zeros((7, 2))) == 7
    assert n_samples(data) == 10
    assert n_samples(DataLoader(data, batch_size=4)) == 10
    assert n_samples(DataLoader(data, batch_size=4, drop_last=True)) == 8
    assert n_samples(DataLoader(data, batch_size=None)) == 10
    assert n_samples(Stream(np.zeros((3, 1)), np.zeros(3))) is None
    assert n_samples(iter([torch.zeros(2, 3)])) is None


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("make", [
    lambda x: x,
    lambda x: ItemDataset(x),
    lambda x: batches_of(x, size=4),
    lambda x: DataLoader(TensorDataset(torch.from_numpy(x)), batch_size=4),
], ids=["array", "dataset", "generator", "loader"])
def test_nan_in_batch_seven_names_batch_and_samples(make):
    x = np.random.default_rng(0).normal(size=(40, 1, 8, 8)).astype(np.float32)
    ext = BlockFeatureExtractor(Net(), "act2", batch_size=4).fit(x)
    x[29, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinity in batch 7 \(samples 28 to 31\)"):
        ext.transform(make(x))


def test_shape_change_in_a_later_batch_is_named(images):
    ext = BlockFeatureExtractor(Net(), "act2").fit(images)
    X = iter([torch.from_numpy(images[:4]), torch.from_numpy(images[4:, :, :6, :6])])
    with pytest.raises(ValueError, match=r"shape \(1, 6, 6\) in batch 1 \(samples 4 to 9\)"):
        ext.transform(X)


def test_bad_batches_and_labels(images):
    ext = BlockFeatureExtractor(Net(), "act2").fit(images)
    x = torch.from_numpy(images)
    with pytest.raises(ValueError, match="labels and others not"):
        ext.transform_with_labels(iter([(x[:4], torch.arange(4)), x[4:]]))
    with pytest.raises(ValueError, match="one label per image"):
        ext.transform(iter([(x[:4], torch.arange(3))]))
    with pytest.raises(TypeError, match="tuple"):
        ext.transform(iter([{"pixel_values": x}]))
    with pytest.raises(TypeError, match="numeric"):
        ext.transform(iter([np.array([["a"]] * 3, dtype=object)]))
    with pytest.raises(ValueError, match="empty"):
        ext.transform(iter([]))

    class NoLen(Dataset):
        def __getitem__(self, i):
            return x[i]

    with pytest.raises(TypeError, match="__len__"):
        ext.transform(NoLen())


def test_iter_input_batches_kinds(images):
    batches = list(iter_input_batches(images.tolist(), batch_size=4))  # a list is an array
    assert [len(x) for x, _ in batches] == [4, 4, 2] and batches[0][1] is None
    x, y = next(iter_input_batches(TensorDataset(torch.ones(3, 2), torch.arange(3))))
    assert x.shape == (3, 2) and y.tolist() == [0, 1, 2]


# ------------------------------------------------------------------ faults
class Failing(ItemDataset):
    def __init__(self, images, fail_at, error):
        super().__init__(images, LABELS)
        self.fail_at, self.error = fail_at, error

    def __getitem__(self, i):
        if i == self.fail_at:
            raise self.error
        return super().__getitem__(i)


def failing_generator(images, error):
    yield torch.from_numpy(images[:4])
    yield torch.from_numpy(images[4:8])
    raise error


class InterruptAt(torch.nn.Module):
    """Raises KeyboardInterrupt on its ``at``-th batch of 4 (fit's 1-sample probe aside)."""

    def __init__(self, at):
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x):
        self.calls += len(x) == 4
        if self.calls == self.at:
            raise KeyboardInterrupt
        return x


FAULTS = {
    # name: (make input, error type, notes the error must carry)
    "dataset_item": (lambda x: Failing(x, 9, RuntimeError("bad file")), RuntimeError,
                     ["item 9 of the Dataset", "reading batch 2 (samples from 8)"]),
    "dataset_interrupt": (lambda x: Failing(x, 5, KeyboardInterrupt()), KeyboardInterrupt,
                          ["item 5 of the Dataset", "reading batch 1 (samples from 4)"]),
    "iterable": (lambda x: failing_generator(x, OSError("disk")), OSError,
                 ["reading batch 2 (samples from 8)"]),
    "forward_interrupt": (lambda x: x, KeyboardInterrupt,
                          ["extracting batch 1 (samples 4 to 7)"]),
}


def faulty_net():
    net = Net()
    net.act1 = torch.nn.Sequential(torch.nn.ReLU(), InterruptAt(at=10 ** 9))
    net.train()
    net.fc.eval()  # mixed flags must come back exactly
    net.conv1.weight.requires_grad_(False)
    return net


@pytest.mark.parametrize("method", ["transform", "transform_with_labels", "fit_transform"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_faults_leave_model_and_extractor_as_they_were(fault, method, images):
    make, error, notes = FAULTS[fault]
    net = faulty_net()
    ext = BlockFeatureExtractor(net, ["act1", "act2"], batch_size=4).fit(images)
    ext.set_params(blocks="act2")  # a failed fit_transform must not take it into account
    expected = ext.transform(images)
    before = pickle.dumps({k: v for k, v in ext.__dict__.items() if k != "model"})
    flags = [m.training for m in net.modules()]
    grads = [p.requires_grad for p in net.parameters()]
    if fault == "forward_interrupt":
        net.act1[1].calls, net.act1[1].at = 0, 2
    with pytest.raises(error) as info:
        getattr(ext, method)(make(images))
    assert type(info.value) is error
    for note in notes if sys.version_info >= (3, 11) else []:  # add_note is 3.11+
        assert any(note in n for n in info.value.__notes__), (note, info.value.__notes__)
    net.act1[1].at = 10 ** 9
    assert pickle.dumps({k: v for k, v in ext.__dict__.items() if k != "model"}) == before
    assert ext.model is net
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
    assert [m.training for m in net.modules()] == flags
    assert [p.requires_grad for p in net.parameters()] == grads
    np.testing.assert_array_equal(ext.transform(images), expected)  # still usable


@pytest.mark.parametrize("method", ["transform", "fit_transform"])
def test_loader_failing_mid_pass_leaves_the_model_as_it_was(method, images):
    net = Net()
    before = prepare(net)  # mixed flags, a frozen parameter, .grad tensors held
    ext = BlockFeatureExtractor(net, ["act1", "act2"]).fit(images)
    loader = DataLoader(Failing(images, 6, RuntimeError("bad file")), batch_size=4)
    with pytest.raises(RuntimeError, match="bad file"):
        getattr(ext, method)(loader)  # batch 0 ran through the model, batch 1 failed
    assert_unchanged(net, before)


def test_fault_during_fit_leaves_unfitted(images):
    ext = BlockFeatureExtractor(faulty_net(), "act2")
    with pytest.raises(RuntimeError, match="bad file"):
        ext.fit(Failing(images, 0, RuntimeError("bad file")))
    assert not hasattr(ext, "blocks_")
