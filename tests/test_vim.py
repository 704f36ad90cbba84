"""ViM against a step-by-step reference (lstsq and SVD instead of pinv and eigh)."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_ood.detectors.vim import ViM, vim_principal_dim

from _helpers import check_failed_calls_leave_detector_unchanged


def _vim(n_features):
    rng = np.random.default_rng(n_features)
    return ViM(head=(rng.normal(size=(4, n_features)), rng.normal(size=4)))


# The feature count each check feeds to ``fit`` (scikit-learn 1.9). A ViM head
# fixes D, so each check is run by the instance whose head matches its data
# and is expected to fail, with the head-mismatch ValueError, on the others.
VIM_CHECK_FEATURES = {
    1: ["check_fit2d_1feature"],
    2: ["check_classifier_data_not_an_array", "check_estimators_fit_returns_self",
        "check_estimators_overwrite_params", "check_fit_check_is_fitted",
        "check_fit_idempotent", "check_n_features_in", "check_outliers_fit_predict",
        "check_outliers_train", "check_readonly_memmap_input"],
    3: ["check_dict_unchanged", "check_dont_overwrite_parameters",
        "check_estimators_nan_inf", "check_estimators_pickle",
        "check_f_contiguous_array_estimator", "check_fit2d_predict1d",
        "check_fit_score_takes_y", "check_methods_sample_order_invariance",
        "check_methods_subset_invariance", "check_pipeline_consistency"],
    4: ["check_n_features_in_after_fitting", "check_positive_only_tag_during_fit"],
    5: ["check_estimators_dtypes"],
    10: ["check_dtype_object", "check_fit2d_1sample"],
}


def _expected_failed(estimator):
    n_features = np.shape(estimator.head[0])[1]
    return {
        check: f"the head accepts {n_features} features but this check uses {d}"
        for d, checks in VIM_CHECK_FEATURES.items() if d != n_features
        for check in checks
    }


def _vim_check_params():
    # Every check runs on the ViM instance whose head fits the check's data; the
    # (estimator, check) pairs expected to fail only because of the head size
    # are dropped rather than run as xfail (nothing to learn from them, and
    # pytest's xfail tracebacks through estimator_checks.py are slow).
    # test_vim_errors covers the head-mismatch message.
    marked = parametrize_with_checks([_vim(d) for d in VIM_CHECK_FEATURES],
                                     expected_failed_checks=_expected_failed)
    params, seen = [], set()
    for p in marked.args[1]:
        estimator, check = getattr(p, "values", p)  # a ParameterSet when marked
        key = (_check_name(check), repr(sorted(getattr(check, "keywords", {}).items())))
        if not getattr(p, "marks", ()) and key not in seen:  # head-free checks: once
            seen.add(key)
            params.append((estimator, check))
    covered = {_check_name(check) for _, check in params}
    assert covered >= {c for checks in VIM_CHECK_FEATURES.values() for c in checks}
    return params


def _check_name(check):
    check = getattr(check, "func", check)
    return getattr(check, "__name__", "")


VIM_PARAMS = _vim_check_params()


@pytest.mark.parametrize("estimator, check", VIM_PARAMS, ids=[
    f"ViM(D={est.head[0].shape[1]})-{_check_name(check)}"
    + "".join(f"-{k}={v}" for k, v in getattr(check, "keywords", {}).items())
    for est, check in VIM_PARAMS])
def test_vim_sklearn_compatible(estimator, check):
    check(estimator)


def _vim_reference(W, b, X_train, X, n_comp):
    """Step by step, through lstsq and an SVD instead of pinv and eigh."""
    u = -np.linalg.lstsq(W, b, rcond=None)[0]  # minimum-norm solution of W u = -b
    _, _, Vt = np.linalg.svd((X_train - u) / np.sqrt(len(X_train)))
    P = Vt[:n_comp]  # principal directions (rows), singular values descending

    def residual(H):
        C = H - u
        return np.sqrt(((C - (C @ P.T) @ P) ** 2).sum(axis=1))

    def logits(H):
        return np.array([[sum(W[k, j] * h[j] for j in range(len(h))) + b[k]
                          for k in range(len(b))] for h in H])

    alpha = logits(X_train).max(axis=1).mean() / residual(X_train).mean()
    energy = np.log(np.exp(logits(X)).sum(axis=1))
    return -alpha * residual(X) + energy, alpha


def test_vim_matches_step_by_step_reference():
    rng = np.random.default_rng(6)
    W, b = rng.normal(size=(3, 6)), rng.normal(size=3)
    X_train = rng.normal(size=(25, 6)) * np.array([3, 2, 1.5, 1, 0.5, 0.2]) + 1.0
    X = rng.normal(size=(5, 6))
    det = ViM(head=(W, b)).fit(X_train)
    assert det.n_components_ == 3  # D // 2 for D = 6
    expected, alpha = _vim_reference(W, b, X_train, X, 3)
    assert det.alpha_ == pytest.approx(alpha, rel=1e-10)
    np.testing.assert_allclose(det.score_samples(X), expected, rtol=1e-10)
    det2 = ViM(head=(W, b), n_components=4).fit(X_train)
    np.testing.assert_allclose(det2.score_samples(X),
                               _vim_reference(W, b, X_train, X, 4)[0], rtol=1e-10)
    # the same with a torch head
    lin = torch.nn.Linear(6, 3).double()
    with torch.no_grad():
        lin.weight.copy_(torch.as_tensor(W))
        lin.bias.copy_(torch.as_tensor(b))
    np.testing.assert_allclose(ViM(head=lin).fit(X_train).score_samples(X), expected,
                               rtol=1e-10)


def test_vim_principal_dim_rule():
    assert [vim_principal_dim(d) for d in (4096, 2048, 2047, 768, 767, 6, 1)] == [
        1000, 1000, 512, 512, 383, 3, 0]


def test_vim_errors():
    X = np.random.default_rng(7).normal(size=(10, 4))
    head = (np.ones((2, 4)), np.zeros(2))
    with pytest.raises(ValueError, match="n_components=4 and n_features=4"):
        ViM(head=head, n_components=4).fit(X)
    with pytest.raises(ValueError, match="needs the final linear layer"):
        ViM().fit(X)
    with pytest.raises(ValueError, match="head expects 3 features"):
        ViM(head=(np.ones((2, 3)), np.zeros(2))).fit(X)
    with pytest.raises(ValueError, match="no residual.*n_samples=2"):
        ViM(head=head, n_components=2).fit(X[:2])


def test_errors_leave_the_fitted_estimator_unchanged():
    rng = np.random.default_rng(11)
    X, y = rng.normal(size=(12, 3)), np.repeat([0, 1], 6)
    det = ViM(head=(np.eye(3)[:2], np.zeros(2))).fit(X, y)
    state = pickle.dumps(det)
    with pytest.raises(ValueError, match="head expects 3 features"):
        det.fit(np.ones((12, 4)), y)
    assert pickle.dumps(det) == state
    check_failed_calls_leave_detector_unchanged(det, X, y)
