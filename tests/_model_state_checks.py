"""Shared checks of the detectors that run a model: the model is left as it was."""

import numpy as np
import pytest
import torch
from sklearn.utils.validation import validate_data
from torch import nn



class Faulty(nn.Module):
    """Identity that raises in its forward (``fail="forward"``) or backward pass."""

    def __init__(self):
        super().__init__()
        self.fail = None

    def forward(self, x):
        if self.fail == "forward":
            raise RuntimeError("forward failed")
        if self.fail == "backward":
            return _RaiseInBackward.apply(x)
        return x


class _RaiseInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("backward failed")


def prepare(model):
    """Give the model a state the detectors must not touch; return its snapshot.

    Mixed train/eval flags, one parameter frozen, existing ``.grad`` tensors on
    the others (BatchNorm buffers are in the state dict).
    """
    for i, module in enumerate(model.modules()):
        module.train(i % 2 == 0)
    params = list(model.parameters())
    params[0].requires_grad_(False)
    for p in params[1:]:
        p.grad = torch.full_like(p, 0.25)
    return snapshot(model)


def snapshot(model):
    return {
        "flags": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [p.grad for p in model.parameters()],
        "grad_values": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "hooks": [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in model.modules()
        ],
    }


def assert_unchanged(model, before):
    after = snapshot(model)
    assert after["flags"] == before["flags"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["hooks"] == before["hooks"]
    for g_after, g_before, values in zip(after["grads"], before["grads"],
                                         before["grad_values"]):
        assert g_after is g_before  # the very tensor object, or None
        if values is not None:
            assert torch.equal(g_after, values)
    assert after["state"].keys() == before["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), key


def check_model_left_unchanged(make_detector, model, faulty, X, *, fit_X=None,
                               fit_y=None, stages=("forward", "backward")):
    """Fit and score; then fail inside forward and backward: the model is unchanged.

    ``make_detector()`` builds a detector on ``model``; ``faulty`` is a
    :class:`Faulty` inside ``model``.
    """
    before = prepare(model)
    X_in = X.copy()
    fit_X = X if fit_X is None else fit_X
    det = make_detector().fit(fit_X, fit_y)
    scores = det.score_samples(X)
    assert np.isfinite(scores).all()
    assert_unchanged(model, before)
    np.testing.assert_array_equal(X, X_in)  # the input is never written to
    for stage in stages:
        faulty.fail = stage
        try:
            with pytest.raises(RuntimeError, match=f"{stage} failed"):
                det.score_samples(X)
            assert_unchanged(model, before)
            with pytest.raises(RuntimeError, match=f"{stage} failed"):
                make_detector().fit(fit_X, fit_y)
            assert_unchanged(model, before)
        finally:
            faulty.fail = None
    np.testing.assert_array_equal(det.score_samples(X), scores)
    return det


# ------------------------------------------------ scikit-learn's estimator checks
class AnyWidth(nn.Module):
    """A classifier for images of any size: logits from (mean, max, min) of the pixels.

    ``features`` (3 numbers per image) feeds ``fc``; ``drop`` is a dropout
    layer (identity in eval mode).
    """

    def __init__(self, n_classes=3, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.features = _Stats()
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(3, n_classes)

    def forward(self, x):
        return self.fc(self.drop(self.features(x)))


class _Stats(nn.Module):
    def forward(self, x):
        x = x.flatten(1)
        return torch.stack([x.mean(1), x.amax(1), x.amin(1)], 1)


#: scikit-learn checks a model-holding detector fails, and why (``expected_failed_checks``).
EXPECTED_FAILED_CHECKS = {
    "check_estimators_overwrite_params": (
        "compares joblib.hash of each parameter with that of its deepcopy, and the hash of "
        "a torch module differs from its deepcopy's even when nothing touched it (tensor "
        "pickling); that fit leaves the model unchanged is tested directly by "
        "check_model_left_unchanged (flags, requires_grad, .grad, state_dict, hooks)"
    ),
}


class TabularInput:
    """Mixin: a detector taking 2-D ``(n_samples, n_features)`` input as 1-channel images.

    scikit-learn's generic checks feed 2-D data, which an image-only detector
    rejects: ``class TabularODIN(TabularInput, ODIN)`` runs them on the
    detector's own fit/score code. The 2-D input goes through
    ``validate_data`` (scikit-learn's messages and ``feature_names_in_``),
    then becomes one-channel images.
    """

    def _validate_input(self, X, *, reset):
        X = validate_data(self, X, reset=reset, dtype=(np.float64, np.float32))
        return X[:, None, None, :]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.input_tags.three_d_array = False
        return tags
