"""KL-Matching against templates and divergences computed with plain loops."""

import math

import numpy as np
import torch

from sklearn_ood import KLMatching


def _softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def _kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


FIT = np.array([[2.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, 3.0, 1.0], [0.2, 0.1, 0.0],
                [0.0, 1.0, 0.9]])
TEST = np.array([[1.0, 1.0, 1.0], [4.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 5.0]])


def test_templates_grouped_by_prediction_and_scores_by_hand():
    probs = [_softmax(z) for z in FIT]
    preds = [p.index(max(p)) for p in probs]  # 0, 0, 1, 0, 1: class 2 never predicted
    templates = {}
    for k in sorted(set(preds)):
        rows = [p for p, c in zip(probs, preds) if c == k]
        templates[k] = [sum(r[j] for r in rows) / len(rows) for j in range(3)]
    det = KLMatching().fit(FIT, [2, 2, 2, 2, 2])  # labels are not used
    assert list(det.template_classes_) == [0, 1]
    np.testing.assert_allclose(det.templates_, [templates[0], templates[1]])
    expected = [-min(_kl(_softmax(z), t) for t in templates.values()) for z in TEST]
    np.testing.assert_allclose(det.score_samples(TEST), expected)


def test_ood_rows_are_not_templates_and_head_is_applied():
    W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = np.array([0.0, 0.5, -1.0])
    H = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [9.0, 9.0]])
    y = np.array([0, 1, 0, -1])
    layer = torch.nn.Linear(2, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(W))
        layer.bias.copy_(torch.tensor(b))
    on_logits = KLMatching().fit(H[:3] @ W.T + b)
    for head in [(W, b), layer]:
        det = KLMatching(head).fit(H, y)
        np.testing.assert_allclose(det.templates_, on_logits.templates_, rtol=1e-6)
        np.testing.assert_allclose(det.score_samples(H), on_logits.score_samples(H @ W.T + b),
                                   rtol=1e-6)


def test_matching_a_template_scores_zero():
    det = KLMatching().fit(FIT)
    log_t = np.log(det.templates_)
    np.testing.assert_allclose(det.score_samples(log_t), [0.0, 0.0], atol=1e-12)
    assert np.all(det.score_samples(TEST) <= 0)
