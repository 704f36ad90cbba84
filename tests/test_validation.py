"""The one label convention: class >= 0, NaN = ID of unknown class, negative = OOD."""

import numpy as np
import pytest

from sklearn_ood import Mahalanobis, PseudoOODSplit
from sklearn_ood._validation import check_labels, split_id_rows
from sklearn_ood.metrics import auroc, fpr_at_tpr


def test_check_labels_reads_each_kind_of_label():
    _, is_id = check_labels(np.array([0, 3, -1, np.nan, -0.5]), 5)
    assert is_id.tolist() == [True, True, False, True, False]
    _, is_id = check_labels(np.array(["cat", "dog"]), 2)
    assert is_id.tolist() == [True, True]
    _, is_id = check_labels(np.array([True, False]), 2)
    assert is_id.tolist() == [True, False]


@pytest.mark.parametrize("y, kwargs, error, match", [
    ([0, 1], {}, ValueError, "one label per row \\(3\\)"),
    ([0, np.inf, 1], {}, ValueError, "infinity"),
    ([0, -1, 1], {"allow_ood": False}, ValueError, "negative labels"),
    ([1 + 1j, 0, 0], {}, TypeError, "class labels"),
])
def test_check_labels_errors(y, kwargs, error, match):
    with pytest.raises(error, match=match):
        check_labels(np.array(y), 3, **kwargs)


def test_split_id_rows_unknown_class_means_no_labels():
    X = np.arange(8.0).reshape(4, 2)
    X_id, y_id = split_id_rows(X, np.array([np.nan, -1, np.nan, -1]))
    np.testing.assert_array_equal(X_id, X[[0, 2]])
    assert y_id is None
    X_id, y_id = split_id_rows(X, np.array([2.0, -1, 0.0, -1]))
    assert y_id.tolist() == [2.0, 0.0]
    with pytest.raises(ValueError, match="label all of them or none"):
        split_id_rows(X, np.array([2.0, -1, np.nan, -1]))
    with pytest.raises(ValueError, match="every row as OOD"):
        split_id_rows(X, np.array([-1, -1, -2, -1]))


def test_fit_with_unknown_classes_equals_fit_without_labels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    y = np.r_[np.full(20, np.nan), np.full(10, -1.0)]
    with_nan = Mahalanobis().fit(X, y)
    without = Mahalanobis().fit(X[:20])
    assert with_nan.classes_ is None
    np.testing.assert_array_equal(with_nan.means_, without.means_)
    assert with_nan.offset_ == without.offset_


def test_metrics_read_nan_as_id():
    scores = np.array([3.0, 1.0, 2.0, 0.0])  # ID 3 and 1, OOD 2 and 0: 3 of 4 pairs won
    assert auroc([np.nan, np.nan, -1, -1], scores) == auroc([0, 5, -1, -1], scores) == 0.75
    # ID 3 and 2: at 95 % TPR the threshold is 2, which OOD 2.5 passes and 0 does not.
    assert fpr_at_tpr([np.nan, -1, np.nan, -1], [3.0, 2.5, 2.0, 0.0]) == 0.5


def test_pseudo_ood_split_with_unknown_classes():
    y = np.r_[np.full(9, np.nan), np.full(6, -1.0)]
    folds = list(PseudoOODSplit(3, random_state=0).split(np.zeros((15, 1)), y))
    assert len(folds) == 3
    tested = np.sort(np.concatenate([test for _, test in folds]))
    np.testing.assert_array_equal(tested, np.arange(15))
    for train, test in folds:
        assert np.isnan(y[train]).all() and len(train) == 6
        assert (y[test] == -1).sum() == 2
