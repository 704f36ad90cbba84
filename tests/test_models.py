import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from skorch.callbacks import ProgressBar
from torch import nn

from sklearn_ood.diagnostics import neural_collapse
from sklearn_ood.models import (
    L2Normalize,
    NeuralCollapseTracker,
    ResNet,
    SeededNeuralNetClassifier,
    SmallCNN,
    make_classifier,
    resnet18,
)

RESNET_ORDER = [
    "conv1", "bn1", "relu", "layer1", "layer2", "layer3", "layer4",
    "avgpool", "flatten", "penultimate", "fc",
]
CNN_ORDER = ["block1", "block2", "block3", "avgpool", "flatten", "penultimate", "fc"]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return train_test_split(X, y.astype(np.int64), test_size=0.3, random_state=0, stratify=y)


def _fc_inputs(module, X):
    """Inputs of ``module.fc`` for X, collected by a forward pre-hook."""
    captured = []
    handle = module.fc.register_forward_pre_hook(lambda m, args: captured.append(args[0]))
    try:
        module.eval()
        with torch.no_grad():
            module(torch.as_tensor(X))
    finally:
        handle.remove()
    return torch.cat(captured)


def _call_order(module, names, x):
    order = []
    handles = [
        module.get_submodule(name).register_forward_hook(
            lambda m, args, out, name=name: order.append(name)
        )
        for name in names
    ]
    try:
        module.eval()
        with torch.no_grad():
            module(x)
    finally:
        for handle in handles:
            handle.remove()
    return order


def _block_output(module, name, x):
    out = []
    handle = module.get_submodule(name).register_forward_hook(lambda m, a, o: out.append(o))
    try:
        module.eval()
        with torch.no_grad():
            module(x)
    finally:
        handle.remove()
    return out[0]


# --------------------------------------------------------------------- models


@pytest.mark.parametrize("size", [8, 28, 32])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_resnet_shapes(size, in_channels):
    net = ResNet(num_classes=7, in_channels=in_channels, width=4)
    x = torch.rand(2, in_channels, size, size)
    assert net(x).shape == (2, 7)
    assert _fc_inputs(net, x).shape == (2, net.feature_dim) == (2, 32)
    stage4 = _block_output(net, "layer4", x)
    expected = -(-size // 8)  # three stride-2 stages, padding 1: ceil(size / 8)
    assert stage4.shape == (2, 32, expected, expected)


@pytest.mark.parametrize(
    "model_cls, order, size", [(ResNet, RESNET_ORDER, 8), (SmallCNN, CNN_ORDER, 28)]
)
@pytest.mark.parametrize("l2_normalize", [False, True])
def test_named_modules_are_called_in_order(model_cls, order, size, l2_normalize):
    model = model_cls(num_classes=3, in_channels=1, width=4, l2_normalize=l2_normalize)
    assert _call_order(model, order, torch.rand(2, 1, size, size)) == order
    expected = L2Normalize if l2_normalize else nn.Identity
    assert type(model.penultimate) is expected
    assert isinstance(model.avgpool, nn.AdaptiveAvgPool2d)
    assert isinstance(model.fc, nn.Linear) and model.fc.in_features == model.feature_dim


@pytest.mark.parametrize(
    "model", [ResNet(in_channels=1, width=4, blocks=(1, 2, 1, 1)), SmallCNN(width=4)]
)
def test_every_block_output_is_post_relu(model):
    x = torch.randn(3, 1, 12, 12)
    assert _call_order(model, model.block_names, x) == list(model.block_names)
    for name in model.block_names:
        assert _block_output(model, name, x).min() >= 0


def test_resnet_block_names_and_resnet18_layout():
    net = ResNet(width=4, blocks=(1, 2, 3, 1))
    assert net.block_names == (
        "layer1.0", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer3.2", "layer4.0"
    )
    r18 = resnet18(num_classes=10, width=8)
    assert len(r18.block_names) == 8
    assert r18.feature_dim == 64
    assert [r18.get_submodule(f"layer{i}")[0].conv1.out_channels for i in range(1, 5)] == [
        8, 16, 32, 64
    ]
    with pytest.raises(ValueError, match="blocks"):
        ResNet(blocks=(2, 2, 2))


@pytest.mark.parametrize("model_cls", [ResNet, SmallCNN])
def test_l2_normalize_gives_unit_norm_fc_inputs(model_cls):
    x = 10 * torch.rand(5, 1, 28, 28)
    normed = model_cls(num_classes=4, in_channels=1, width=4, l2_normalize=True)
    norms = _fc_inputs(normed, x).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(5))
    plain = model_cls(num_classes=4, in_channels=1, width=4, l2_normalize=False)
    assert not torch.allclose(_fc_inputs(plain, x).norm(dim=1), torch.ones(5))


def test_l2normalize_module():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]])
    torch.testing.assert_close(
        L2Normalize()(x), torch.tensor([[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]])
    )


# ------------------------------------------------------------------- training


def test_make_classifier_configuration():
    net = make_classifier(
        ResNet, max_epochs=3, l2_normalize=True, in_channels=1, width=16, num_classes=10,
        iterator_train__num_workers=0, progress=True,
    )
    assert isinstance(net, SeededNeuralNetClassifier)
    assert net.module__l2_normalize is True and net.module__width == 16
    assert net.iterator_train__num_workers == 0
    assert net.optimizer is torch.optim.SGD and net.lr == 0.05
    assert net.optimizer__nesterov and net.optimizer__momentum == 0.9
    assert net.train_split is None and net.iterator_train__shuffle
    names = dict(net.callbacks)
    assert names["lr_scheduler"].T_max == 3
    assert isinstance(names["progress_bar"], ProgressBar)

    adamw = make_classifier(SmallCNN, optimizer="adamw")
    assert adamw.optimizer is torch.optim.AdamW and adamw.lr == 1e-3
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_classifier(SmallCNN, optimizer="adam")


def test_training_on_digits_with_l2_normalisation(digits):
    X_train, X_test, y_train, y_test = digits
    net = make_classifier(
        SmallCNN, max_epochs=6, batch_size=64, width=16, num_classes=10, l2_normalize=True
    )
    net.fit(X_train, y_train)
    assert np.mean(net.predict(X_test) == y_test) > 0.85
    norms = _fc_inputs(net.module_, X_test).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    # the cosine schedule decays the learning rate towards 0
    lrs = net.history[:, "event_lr"]
    assert lrs[0] == pytest.approx(0.05) and np.all(np.diff(lrs) < 0)


def test_resnet_trains_through_skorch(digits):
    X_train, _, y_train, _ = digits
    net = make_classifier(
        ResNet, max_epochs=1, l2_normalize=True, in_channels=1, width=4, num_classes=10,
        blocks=(1, 1, 1, 1),
    )
    net.fit(X_train[:256], y_train[:256])
    assert isinstance(net.module_, ResNet)
    assert net.predict_proba(X_train[:8]).shape == (8, 10)


def _small_fit(X, y, random_state, optimizer="sgd"):
    net = make_classifier(
        SmallCNN, max_epochs=2, batch_size=32, width=4, num_classes=10,
        random_state=random_state, optimizer=optimizer,
    )
    return net.fit(X, y)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_same_random_state_gives_identical_weights(digits, optimizer):
    X, _, y, _ = digits
    X, y = X[:300], y[:300]
    rng_state = torch.get_rng_state()
    a, b = _small_fit(X, y, 3, optimizer), _small_fit(X, y, 3, optimizer)
    c = _small_fit(X, y, 4, optimizer)
    # seeding happens in a forked RNG: the global torch RNG is untouched
    assert torch.equal(torch.get_rng_state(), rng_state)

    state_a, state_b, state_c = (n.module_.state_dict() for n in (a, b, c))
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert not torch.equal(state_a["fc.weight"], state_c["fc.weight"])
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


def test_refit_is_reproducible_and_shuffling_is_seeded(digits):
    X, _, y, _ = digits
    X, y = X[:200], y[:200]
    net = _small_fit(X, y, 0)
    first = {k: v.clone() for k, v in net.module_.state_dict().items()}
    net.fit(X, y)  # re-initialises: same seeds again
    assert all(torch.equal(first[k], v) for k, v in net.module_.state_dict().items())

    loader = net.get_iterator(net.get_dataset(X, y), training=True)
    assert isinstance(loader.generator, torch.Generator)


# -------------------------------------------------------------------- tracker


def test_neural_collapse_tracker_records_one_value_per_epoch(digits):
    X, _, y, _ = digits
    X, y = X[:400], y[:400]
    tracker = NeuralCollapseTracker(
        X, y, metrics=("nc1", "ncc_mismatch"), batch_size=150
    )
    net = make_classifier(
        SmallCNN, max_epochs=3, batch_size=64, width=4, num_classes=10,
        l2_normalize=True, callbacks=[tracker],
    )
    net.fit(X, y)

    nc1 = net.history[:, "nc1"]
    assert len(nc1) == 3 and np.all(np.isfinite(nc1)) and min(nc1) > 0
    assert len(net.history[:, "ncc_mismatch"]) == 3
    assert not net.module_.fc._forward_pre_hooks  # hook removed

    # the last record equals a direct computation on the final weights
    features = _fc_inputs(net.module_, X).double().numpy()
    expected = neural_collapse(features, y, head=net.module_.fc)
    assert nc1[-1] == pytest.approx(expected["nc1"], rel=1e-4)
    assert net.history[-1, "ncc_mismatch"] == pytest.approx(expected["ncc_mismatch"])


def test_neural_collapse_tracker_restores_module_modes(digits):
    X, _, y, _ = digits
    net = make_classifier(SmallCNN, max_epochs=1, width=4, num_classes=10)
    net.fit(X[:64], y[:64])
    module = net.module_.train()
    module.block1.eval()  # mixed modes must survive the callback
    tracker = NeuralCollapseTracker(X[:64], y[:64], prefix="val_").initialize()
    tracker.on_epoch_end(net)
    assert module.training and not module.block1.training and module.block2.training
    assert "val_nc1" in net.history[-1]

    with pytest.raises(ValueError, match="metrics must be"):
        NeuralCollapseTracker(X, y, metrics=("nc5",)).initialize()
