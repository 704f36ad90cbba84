"""BlockFeatureExtractor: one forward pass, hooks removed, shapes, names, errors."""

import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks
from scipy.special import logsumexp

from sklearn_ood import BlockFeatureExtractor, Energy
from sklearn_ood.extraction import iter_block_batches


class TinyNet(torch.nn.Module):
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
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        x = self.act1(self.conv1(x))
        x = self.act2(self.conv2(x))
        return self.fc(self.drop(self.flat(self.pool(x))))


def reference_maps(net, X):
    """Block outputs computed by hand, layer by layer, without hooks."""
    with torch.no_grad():
        x = torch.as_tensor(X)
        a1 = torch.relu(net.conv1(x))
        a2 = torch.relu(net.conv2(a1))
    return a1.numpy(), a2.numpy()


@pytest.fixture
def images():
    return np.random.default_rng(0).normal(size=(10, 1, 8, 8)).astype(np.float32)


def test_avg_max_flatten_norm_match_hand_computation(images):
    net = TinyNet()
    a1, a2 = reference_maps(net, images)
    ext = BlockFeatureExtractor(net, ["act1", "act2"], batch_size=3).fit(images)
    expected = np.hstack([a1.mean(axis=(2, 3)), a2.mean(axis=(2, 3))])
    np.testing.assert_allclose(ext.transform(images), expected, rtol=1e-5, atol=1e-6)

    got = ext.set_params(reduce="max").fit(images).transform(images)
    np.testing.assert_allclose(got, np.hstack([a1.max(axis=(2, 3)), a2.max(axis=(2, 3))]),
                               rtol=1e-5, atol=1e-6)

    got = ext.set_params(blocks="act2", reduce="flatten").fit(images).transform(images)
    np.testing.assert_allclose(got, a2.reshape(len(images), -1), rtol=1e-5, atol=1e-6)

    norms = np.sqrt((np.maximum(a2, 0) ** 2).sum(axis=(2, 3)))
    got = ext.set_params(reduce="norm").fit(images).transform(images)
    np.testing.assert_allclose(got, norms, rtol=1e-5, atol=1e-6)

    # ||a||_1 / ||a||_0 over the whole flattened output, one number per image
    flat = a2.reshape(len(images), -1).astype(np.float64)
    nan_by_hand = [[sum(abs(v) for v in row) / sum(1 for v in row if v > 0)] for row in flat]
    got = ext.set_params(reduce="negative_aware_norm").fit(images).transform(images)
    np.testing.assert_allclose(got, nan_by_hand, rtol=1e-5, atol=1e-6)


def test_spatial_maps_and_reduction_lists(images):
    net = TinyNet()
    _, a2 = reference_maps(net, images)
    maps = BlockFeatureExtractor(net, "act2", reduce=None).fit_transform(images)
    assert maps.shape == (10, 6, 4, 4)
    np.testing.assert_allclose(maps, a2, rtol=1e-5, atol=1e-6)

    ext = BlockFeatureExtractor(net, "act2", reduce=["max", "avg"]).fit(images)
    np.testing.assert_allclose(
        ext.transform(images), np.hstack([a2.max(axis=(2, 3)), a2.mean(axis=(2, 3))]),
        rtol=1e-5, atol=1e-6)
    names = ext.get_feature_names_out()
    assert names[0] == "act2__max__0" and names[6] == "act2__avg__0" and len(names) == 12


def test_callable_reduction_runs_per_batch(images):
    net = TinyNet()
    _, a2 = reference_maps(net, images)
    seen = []

    def corner(maps):
        seen.append(len(maps))
        return maps[:, :, 0, 0]

    out = BlockFeatureExtractor(net, "act2", reduce=corner, batch_size=4).fit(images)
    seen.clear()
    np.testing.assert_allclose(out.transform(images), a2[:, :, 0, 0], rtol=1e-5, atol=1e-6)
    assert seen == [4, 4, 2]  # never the whole data set at once
    assert out.get_feature_names_out()[0] == "act2__0"


def test_one_forward_per_batch_and_early_stop(images):
    net = TinyNet()
    ext = BlockFeatureExtractor(net, ["act1", "act2", "fc"], batch_size=4).fit(images)
    net.calls = 0
    ext.transform(images)
    assert net.calls == 3  # ceil(10 / 4) batches, all blocks in the same pass

    # Early blocks only: the forward pass stops after act1, so fc never runs.
    ran = []
    handle = net.fc.register_forward_hook(lambda *args: ran.append(1))
    try:
        BlockFeatureExtractor(net, "act1").fit(images).transform(images)
    finally:
        handle.remove()
    assert ran == []


def test_eval_mode_inference_and_mode_restored(images):
    net = TinyNet()
    net.train()
    net.fc.eval()  # mixed flags must come back exactly
    ext = BlockFeatureExtractor(net, "flat").fit(images)
    a = ext.transform(images)
    b = ext.transform(images)
    np.testing.assert_array_equal(a, b)  # dropout inactive: eval mode during extraction
    assert net.training and net.drop.training and not net.fc.training
    assert all(not m._forward_hooks for m in net.modules())


def test_hooks_removed_and_mode_restored_after_exception(images):
    class Exploding(TinyNet):
        def forward(self, x):
            x = self.act1(self.conv1(x))
            raise RuntimeError("boom")

    net = Exploding()
    net.train()
    ext = BlockFeatureExtractor(net, ["act1", "act2"])
    with pytest.raises(RuntimeError, match="boom"):
        ext.fit(images)
    with pytest.raises(RuntimeError, match="boom"):
        list(iter_block_batches(net, ["act2"], torch.as_tensor(images)))
    assert all(not m._forward_hooks for m in net.modules())
    assert net.training and all(m.training for m in net.modules())
    assert not hasattr(ext, "blocks_")


def test_block_that_never_runs(images):
    class Skipping(TinyNet):
        def forward(self, x):
            return self.act1(self.conv1(x))

    with pytest.raises(ValueError, match="did not run"):
        BlockFeatureExtractor(Skipping(), ["act1", "act2"]).fit(images)


def test_energy_pipeline_matches_model_logits(images):
    net = TinyNet()
    pipe = make_pipeline(BlockFeatureExtractor(net, "flat"), Energy(head=net.fc)).fit(images)
    net.eval()
    with torch.no_grad():
        logits = net(torch.as_tensor(images)).numpy().astype(np.float64)
    np.testing.assert_allclose(pipe.score_samples(images), logsumexp(logits, axis=1),
                               rtol=1e-5)


def test_torch_tensor_and_dtype_input(images):
    net = TinyNet()
    ext = BlockFeatureExtractor(net, "act2").fit(images)
    ref = ext.transform(images)
    np.testing.assert_allclose(ext.transform(torch.as_tensor(images)), ref)
    np.testing.assert_allclose(ext.transform(images.astype(np.float64)), ref, rtol=1e-6)
    assert ext.transform(images).dtype == np.float32
    noncontiguous = np.asfortranarray(images)
    np.testing.assert_allclose(ext.transform(noncontiguous), ref)


@pytest.mark.parametrize(
    "blocks, message", [("nope", "Available blocks"), (["act1", "act1"], "duplicates"),
                        ([], "non-empty")])
def test_bad_blocks(images, blocks, message):
    with pytest.raises(ValueError, match=message):
        BlockFeatureExtractor(TinyNet(), blocks).fit(images)


def test_bad_inputs_leave_fitted_state_unchanged(images):
    ext = BlockFeatureExtractor(TinyNet(), "act2").fit(images)
    before = dict(ext.__dict__)
    bad = images.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ext.transform(bad)
    with pytest.raises(ValueError, match="NaN"):
        ext.fit(bad)
    with pytest.raises(ValueError, match="shape"):
        ext.transform(images[:, :, :4])
    with pytest.raises(ValueError, match="empty"):
        ext.transform(images[:0])
    with pytest.raises(ValueError, match="reduce"):
        ext.set_params(reduce="median").fit(images)
    with pytest.raises(ValueError, match="'negative_aware_norm'"):  # not "nan"
        ext.set_params(reduce="nan").fit(images)
    ext.set_params(reduce="avg")
    assert ext.__dict__.keys() == before.keys()
    assert ext.blocks_ == before["blocks_"]


def test_reduce_none_needs_single_block(images):
    with pytest.raises(ValueError, match="single block"):
        BlockFeatureExtractor(TinyNet(), ["act1", "act2"], reduce=None).fit(images)


def test_shared_module_is_rejected():
    relu = torch.nn.ReLU()
    net = torch.nn.Sequential(
        OrderedDict(a=relu, b=torch.nn.Tanh(), c=relu, d=torch.nn.Sigmoid()))
    with pytest.raises(ValueError, match="more than once"):
        BlockFeatureExtractor(net, ["a", "d"]).fit(np.ones((2, 3)))


def test_device_mismatch_is_reported(images):
    net = TinyNet()
    with pytest.raises(ValueError, match="device"):
        BlockFeatureExtractor(net, "act2", device="meta").fit(images)


def test_clone_pickle_and_pandas_output(images):
    net = TinyNet()
    ext = BlockFeatureExtractor(net, "act2").fit(images)
    restored = pickle.loads(pickle.dumps(ext))
    np.testing.assert_array_equal(restored.transform(images), ext.transform(images))
    assert clone(ext).get_params()["blocks"] == "act2"

    pd = pytest.importorskip("pandas")
    frame = ext.set_output(transform="pandas").transform(images)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns[:2]) == ["act2__0", "act2__1"]


def test_reduce_per_block_dict(images):
    net = TinyNet()
    a1, a2 = reference_maps(net, images)
    ext = BlockFeatureExtractor(
        net, ["act1", "act2"], reduce={"act1": "max", "act2": ["avg", "flatten"]}).fit(images)
    expected = np.hstack([a1.max(axis=(2, 3)), a2.mean(axis=(2, 3)), a2.reshape(10, -1)])
    np.testing.assert_allclose(ext.transform(images), expected, rtol=1e-5, atol=1e-6)
    names = ext.get_feature_names_out()
    assert list(names[[0, 4, 10]]) == ["act1__0", "act2__avg__0", "act2__flatten__0"]
    with pytest.raises(ValueError, match="one entry per block"):
        ext.set_params(reduce={"act1": "max"}).fit(images)


# A parameter-free model accepts any feature count, so scikit-learn's generic
# checks (2-D data of 1 to 10 features) run the extractor end to end.
@parametrize_with_checks([BlockFeatureExtractor(torch.nn.Sequential(torch.nn.Tanh()), "0")])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_channels_first_outputs_are_unchanged_by_layouts(images):
    """4-D maps and 1-D conv maps: bit for bit the pooling formulas of before layouts."""
    net = TinyNet()
    with torch.no_grad():
        maps = torch.relu(net.conv2(torch.relu(net.conv1(torch.from_numpy(images)))))
    formulas = {
        "avg": maps.flatten(2).mean(2), "max": maps.flatten(2).amax(2),
        "norm": torch.relu(maps).flatten(2).norm(dim=2), "flatten": maps.flatten(1),
    }
    for reduce, expected in formulas.items():
        for layout in (None, "channels_first"):
            ext = BlockFeatureExtractor(net, "act2", reduce=reduce, layout=layout,
                                        batch_size=len(images)).fit(images)
            assert ext.block_layouts_ == {"act2": "channels_first"}
            np.testing.assert_array_equal(ext.transform(images), expected.numpy())

    conv1d = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3), torch.nn.ReLU())
    X = np.random.default_rng(0).normal(size=(6, 2, 9)).astype(np.float32)
    ext = BlockFeatureExtractor(conv1d, "0", reduce="avg").fit(X)  # layout from Conv1d
    assert ext.block_layouts_ == {"0": "channels_first"}
    with torch.no_grad():
        expected = conv1d[0](torch.from_numpy(X)).mean(2).numpy()
    np.testing.assert_array_equal(ext.transform(X), expected)
    with pytest.raises(ValueError, match="outputs 3-D tensors"):  # a ReLU may hold tokens
        BlockFeatureExtractor(conv1d, "1").fit(X)
    assert BlockFeatureExtractor(conv1d, "1", layout="channels_first").fit_transform(X).shape \
        == (6, 3)
