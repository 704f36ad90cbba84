"""MCDropout against a hand computation from the recorded dropout masks."""

import pickle

import numpy as np
import pytest
import torch
from _model_state_checks import Faulty, check_model_left_unchanged
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from torch import nn

from sklearn_ood.metrics import fpr95_scorer
from sklearn_ood.model_detectors import MCDropout
from sklearn_ood.pseudo_ood import make_pseudo_ood
from sklearn_ood.tuning import PseudoOODSplit
from sklearn_ood.discovery import tuning_grid

D_IN, D, K, P = 12, 6, 4, 0.4


def dropout_net(seed=0):
    torch.manual_seed(seed)
    bn = nn.BatchNorm1d(D)
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    return nn.Sequential(nn.Flatten(), nn.Linear(D_IN, D), bn, nn.Dropout(P), Faulty(),
                         nn.Linear(D, K)).double()


def images(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 3, 2, 2))


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("mode", ["mean", "var"])
def test_matches_hand_computation_from_recorded_masks(mode):
    net = dropout_net().train()  # BatchNorm must nevertheless run in eval mode
    X = images(10)
    T = 7
    seen = []
    handle = net[3].register_forward_hook(
        lambda module, inputs, output: seen.append((inputs[0].numpy().copy(),
                                                    output.numpy().copy())))
    try:
        det = MCDropout(net, n_passes=T, mode=mode, batch_size=4, random_state=0).fit(X)
        seen.clear()
        scores = det.score_samples(X)
    finally:
        handle.remove()
    assert len(seen) == T * 3  # 3 batches of T passes

    lin, bn, fc = net[1], net[2], net[5]
    x = X.reshape(len(X), -1)
    h = x @ lin.weight.detach().numpy().T + lin.bias.detach().numpy()
    h = (h - bn.running_mean.numpy()) / np.sqrt(bn.running_var.numpy() + bn.eps)
    h = h * bn.weight.detach().numpy() + bn.bias.detach().numpy()  # BatchNorm in eval
    expected = np.empty(len(X))
    for b, start in enumerate(range(0, len(X), 4)):
        passes = seen[b * T : (b + 1) * T]
        probs = []
        for inp, out in passes:
            np.testing.assert_allclose(inp, h[start : start + 4], rtol=1e-12)
            mask = out != 0
            np.testing.assert_allclose(out, mask * inp / (1 - P), rtol=1e-12)  # dropout on
            logits = out @ fc.weight.detach().numpy().T + fc.bias.detach().numpy()
            probs.append(softmax(logits))
        masks = np.array([out != 0 for _, out in passes])
        assert not (masks == masks[0]).all()  # the passes differ
        probs = np.array(probs)
        expected[start : start + 4] = (probs.mean(0).max(1) if mode == "mean"
                                       else -probs.var(0, ddof=1).mean(1))
    np.testing.assert_allclose(scores, expected, rtol=1e-12)
    assert all(m.training for m in net.modules())  # flags restored


def test_seeding_reproducible_and_global_rng_untouched():
    net = dropout_net().eval()
    X = images(20)
    state = torch.get_rng_state()
    det = MCDropout(net, n_passes=5, random_state=3).fit(X)
    a, b = det.score_samples(X), det.score_samples(X)
    assert torch.equal(torch.get_rng_state(), state)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, clone(det).fit(X).score_samples(X))
    other = det.set_params(random_state=4).score_samples(X)
    assert not np.allclose(a, other)
    rng = np.random.RandomState(0)
    det.set_params(random_state=rng).fit(X)
    assert not np.allclose(det.score_samples(X), det.score_samples(X))  # a stream
    # p = 0 dropout: every pass is the deterministic forward pass.
    net[3].p = 0.0
    s = MCDropout(net, n_passes=3, mode="var", random_state=0).fit(X).score_samples(X)
    np.testing.assert_allclose(s, 0.0, atol=1e-30)


def test_model_left_unchanged_after_success_and_errors():
    net = dropout_net()
    X = images(9)
    check_model_left_unchanged(lambda: MCDropout(net, n_passes=3, batch_size=4, random_state=0),
                               net, net[4], X, stages=("forward",))


def test_validation():
    X = images(5)
    with pytest.raises(ValueError, match="no dropout module"):
        MCDropout(nn.Sequential(nn.Flatten(), nn.Linear(D_IN, K))).fit(X)
    with pytest.raises(ValueError, match="n_passes >= 2"):
        MCDropout(dropout_net(), n_passes=1, mode="var").fit(X)
    with pytest.raises(ValueError, match="mode"):
        MCDropout(dropout_net(), mode="max").fit(X)
    with pytest.raises(ValueError, match="n_passes"):
        MCDropout(dropout_net(), n_passes=0).fit(X)


def test_clone_pickle_pipeline_and_grid_search():
    net = dropout_net()
    X = images(40)
    det = MCDropout(net, n_passes=4, random_state=0).fit(X)
    restored = pickle.loads(pickle.dumps(det))
    np.testing.assert_array_equal(restored.score_samples(X), det.score_samples(X))
    pipe = make_pipeline(MCDropout(net, n_passes=4, random_state=0)).fit(X)
    np.testing.assert_array_equal(pipe.score_samples(X), det.score_samples(X))
    X_aug, y_aug = make_pseudo_ood(X, method="noise", random_state=0)
    search = GridSearchCV(MCDropout(net, n_passes=4, random_state=0), tuning_grid(MCDropout, len(X)),
                          scoring=fpr95_scorer, cv=PseudoOODSplit(3, random_state=0))
    search.fit(X_aug, y_aug)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
