"""BlockSelection (FeatureNorm + jigsaw NormRatio) against an independent recomputation."""

import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.utils import estimator_checks
from torch import nn

from sklearn_ood.model_detectors.block_selection import BlockSelection, candidate_blocks
from sklearn_ood.metrics import auroc, auroc_scorer
from sklearn_ood.pseudo_ood import jigsaw

BLOCKS = ["block1", "block2", "block3"]


def tiny_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(
            block1=nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU()),
            block2=nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU()),
            block3=nn.Sequential(nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.ReLU()),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            fc=nn.Linear(32, 10),
        )
    )


@pytest.fixture
def digits(digits_images):
    return digits_images


@pytest.fixture
def trained(digits_net):
    """The session's trained SmallCNN: its blocks are ``BLOCKS``."""
    return digits_net


def block_maps(net, X, names):
    """Full block outputs via our own hooks (no sklearn_ood extraction code)."""
    modules = dict(net.named_modules())
    out = {}
    handles = [
        modules[name].register_forward_hook(
            lambda module, inputs, output, name=name: out.__setitem__(name, output.detach())
        )
        for name in names
    ]
    try:
        with torch.no_grad():
            net(torch.as_tensor(X))
    finally:
        for handle in handles:
            handle.remove()
    return out


def feature_norm_torch(maps):
    """mean over channels of sqrt(sum over pixels of relu(F)^2), in float64."""
    rect = torch.relu(maps.double())
    return torch.sqrt((rect * rect).sum(dim=(2, 3))).mean(dim=1).numpy()


def test_selects_argmax_of_independent_norm_ratios(trained, digits):
    X_train, _, X_test, _ = digits
    det = BlockSelection(trained, random_state=0, batch_size=256).fit(X_train)
    assert det.blocks_ == BLOCKS

    puzzles = jigsaw(X_train, grid=3, random_state=0)
    id_maps = block_maps(trained, X_train, BLOCKS)
    jig_maps = block_maps(trained, puzzles, BLOCKS)
    expected = {}
    for name in BLOCKS:
        fn_id, fn_jig = feature_norm_torch(id_maps[name]), feature_norm_torch(jig_maps[name])
        assert (fn_jig > 0).all()
        expected[name] = float(np.mean(fn_id / fn_jig))
        # Discriminative: the ratio of means is a different number.
        assert abs(fn_id.mean() / fn_jig.mean() - expected[name]) > 1e-4
    assert det.norm_ratios_.keys() == expected.keys()
    for name in BLOCKS:
        assert det.norm_ratios_[name] == pytest.approx(expected[name], rel=1e-5)
    best = max(expected, key=expected.get)
    assert det.block_ == best
    assert expected[best] > 1.0

    scores = det.score_samples(X_test)
    want = feature_norm_torch(block_maps(trained, X_test, [best])[best])
    np.testing.assert_allclose(scores, want, rtol=1e-5)
    train_scores = feature_norm_torch(id_maps[best])
    assert det.offset_ == pytest.approx(np.percentile(train_scores, 5), rel=1e-5)
    np.testing.assert_allclose(det.decision_function(X_test), scores - det.offset_)
    assert set(det.predict(X_test)) <= {-1, 1}
    # Jigsaw images of the test set should mostly score lower (a sanity check).
    jig_scores = det.score_samples(jigsaw(X_test, random_state=1))
    assert auroc(np.r_[np.zeros(len(X_test)), -np.ones(len(X_test))],
                 np.r_[scores, jig_scores]) > 0.5


def test_batch_size_ood_rows_and_tensor_input_do_not_change_the_fit(trained, digits):
    X_train = digits[0][:300]
    ref = BlockSelection(trained, random_state=3).fit(X_train)
    small_batches = BlockSelection(trained, random_state=3, batch_size=7).fit(X_train)
    assert small_batches.norm_ratios_ == pytest.approx(ref.norm_ratios_, rel=1e-6)
    noise = np.random.default_rng(0).random((40, 1, 8, 8), dtype=np.float32)
    X_mixed = np.concatenate([X_train[:150], noise, X_train[150:]])
    y_mixed = np.r_[np.zeros(150), -np.ones(40), np.ones(150)].astype(int)
    mixed = BlockSelection(trained, random_state=3).fit(X_mixed, y_mixed)
    assert mixed.norm_ratios_ == pytest.approx(ref.norm_ratios_, rel=1e-6)
    from_tensor = BlockSelection(trained, random_state=3).fit(torch.from_numpy(X_train))
    assert from_tensor.norm_ratios_ == pytest.approx(ref.norm_ratios_, rel=1e-6)
    np.testing.assert_allclose(from_tensor.score_samples(torch.from_numpy(X_train[:5])),
                               ref.score_samples(X_train[:5]), rtol=1e-6)


def test_explicit_blocks_and_no_model_change(trained, digits):
    X_train = digits[0][:100]
    state = {k: v.clone() for k, v in trained.state_dict().items()}
    trained.train()
    try:
        det = BlockSelection(trained, blocks="block2", random_state=0).fit(X_train)
        assert det.blocks_ == ["block2"] and det.block_ == "block2"
        det = BlockSelection(trained, blocks=("block3", "block1"), random_state=0).fit(X_train)
        assert det.blocks_ == ["block3", "block1"]
        assert det.block_ == max(det.norm_ratios_, key=det.norm_ratios_.get)
        det.score_samples(X_train[:3])
        assert all(module.training for module in trained.modules())
    finally:
        trained.eval()
    for key, value in trained.state_dict().items():
        assert torch.equal(value, state[key])


def test_zero_jigsaw_norm_rule():
    # Identity conv + ReLU: FeatureNorm = norm of relu(image). Images whose content
    # sits only in the last row (the jigsaw remainder, zeroed) have puzzle FN = 0.
    conv = nn.Conv2d(1, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    net = nn.Sequential(nn.Sequential(conv, nn.ReLU()), nn.Flatten())
    X = np.zeros((4, 1, 7, 7), dtype=np.float32)
    X[:2, 0, 6, :] = 1.0  # content in the remainder row only -> left out
    X[2, 0, :6, :6] = 2.0  # puzzle = same tiles: ratio 1
    X[3, 0, :6, :6] = 1.0
    X[3, 0, 6, :] = 5.0  # ID norm sqrt(36 + 7 * 25), puzzle norm 6
    det = BlockSelection(net, random_state=0).fit(X)
    assert det.blocks_ == ["0"]
    expected = (1.0 + np.sqrt(36 + 7 * 25) / 6) / 2
    assert det.norm_ratios_["0"] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="no NormRatio"):
        BlockSelection(net, random_state=0).fit(X[:2])


def test_candidate_blocks_rule():
    def stage():
        return nn.Sequential(nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU()),
                             nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU()))

    class Wrapper(nn.Module):  # a wide-ResNet style NetworkBlock holding one Sequential
        def __init__(self):
            super().__init__()
            self.layer = stage()

        def forward(self, x):
            return self.layer(x)

    net = nn.Sequential(OrderedDict(
        stem=nn.Conv2d(1, 2, 1), bn=nn.BatchNorm2d(2), layer1=stage(), block=Wrapper(),
        single=nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU()), pool=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(), fc=nn.Linear(2, 3),
    ))
    assert candidate_blocks(net) == ["layer1.0", "layer1.1", "block.layer.0",
                                     "block.layer.1", "single"]
    assert candidate_blocks(tiny_cnn()) == BLOCKS
    with pytest.raises(ValueError, match="no candidate block"):
        candidate_blocks(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten()))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        candidate_blocks("resnet")


def test_candidate_blocks_of_package_models():
    models = pytest.importorskip("sklearn_ood.models")
    for net in (models.ResNet(width=4), models.SmallCNN(width=4)):
        assert candidate_blocks(net) == list(net.block_names)


def test_bad_input_and_atomic_fit(trained, digits):
    X_train = digits[0][:60]
    det = BlockSelection(trained, random_state=0).fit(X_train)
    state = dict(vars(det))
    bad = X_train.copy()
    bad[0, 0, 0, 0] = np.nan
    cases = [
        (bad, ValueError, "NaN"),
        (X_train[:, 0], ValueError, r"\(n_samples, channels, height, width\)"),
        (X_train.astype(object), TypeError, "numeric"),
    ]
    for X, error, match in cases:
        with pytest.raises(error, match=match):
            det.fit(X)
        with pytest.raises(error, match=match):
            det.score_samples(X)
    with pytest.raises(ValueError, match="X has 2 channels, but BlockSelection was fitted"):
        det.score_samples(np.repeat(X_train, 2, axis=1))
    with pytest.raises(ValueError, match="Unknown block"):
        det.set_params(blocks=["nope"]).fit(X_train)
    with pytest.raises(ValueError, match="grid"):
        det.set_params(blocks="auto", grid=1).fit(X_train)
    with pytest.raises(ValueError, match="model"):
        det.set_params(grid=3, model="resnet").fit(X_train)
    with pytest.raises(ValueError, match="at least 9x9 pixels"):
        det.set_params(model=trained, grid=9).fit(X_train)
    det.set_params(grid=3)
    assert vars(det).keys() == state.keys()
    for key in ("blocks_", "block_", "norm_ratios_", "offset_", "n_features_in_"):
        assert getattr(det, key) == state[key]
    with pytest.raises(NotFittedError):
        clone(det).score_samples(X_train)


def test_sklearn_api(trained, digits):
    X_train = digits[0][:80]
    det = BlockSelection(trained, blocks=["block1", "block3"], grid=2, random_state=0)
    params = det.get_params()
    assert params["blocks"] == ["block1", "block3"] and params["grid"] == 2
    cloned = clone(det)
    assert cloned.model is not trained  # clone deep-copies the model parameter
    fitted = cloned.fit(X_train)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(restored.score_samples(X_train), fitted.score_samples(X_train))
    assert restored.block_ == fitted.block_
    # parametrize_with_checks skips BlockSelection altogether: its input tags say
    # images only (three_d_array), and scikit-learn's generic checks feed 2-D data.
    # The checks that do not need data run here.
    name = type(det).__name__
    for check in (
        estimator_checks.check_no_attributes_set_in_init,
        estimator_checks.check_get_params_invariance,
        estimator_checks.check_set_params,
        estimator_checks.check_estimator_repr,
        estimator_checks.check_estimator_cloneable,
        estimator_checks.check_do_not_raise_errors_in_init_or_set_params,
        estimator_checks.check_valid_tag_types,
    ):
        check(name, clone(det))


def test_pipeline_and_gridsearch_over_blocks(trained, digits):
    X_id = digits[2][:150]
    noise = np.random.default_rng(0).random((60, 1, 8, 8), dtype=np.float32)
    X = np.concatenate([X_id, noise])
    y = np.r_[digits[3][:150], -np.ones(60, dtype=int)]
    search = GridSearchCV(
        BlockSelection(trained, random_state=0),
        {"blocks": [["block1"], ["block3"], "auto"]},
        scoring=auroc_scorer,
        cv=StratifiedKFold(2, shuffle=True, random_state=0),
    ).fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.block_ in BLOCKS
    pipe = make_pipeline(BlockSelection(trained, random_state=0)).fit(X, y)
    direct = BlockSelection(trained, random_state=0).fit(X_id)  # OOD rows dropped in fit
    np.testing.assert_allclose(pipe.score_samples(X), direct.score_samples(X))
