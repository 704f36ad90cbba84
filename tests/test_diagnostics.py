import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_ood.diagnostics import neural_collapse

MEAN_KEYS = {"nc1", "etf_means", "equinorm_means", "equiangularity_means"}
HEAD_KEYS = {
    "etf_weights", "equinorm_weights", "equiangularity_weights", "self_duality",
    "ncc_mismatch",
}


def _reference(H, y, W=None, b=None):
    """Neural-collapse metrics by explicit loops over samples, classes and pairs."""
    H = np.asarray(H, dtype=float)
    classes = sorted(set(y.tolist()))
    K, (N, D) = len(classes), H.shape
    mu_G = sum(H[i] for i in range(N)) / N
    mu = []
    for c in classes:
        rows = [H[i] for i in range(N) if y[i] == c]
        mu.append(sum(rows) / len(rows))
    Sw = np.zeros((D, D))
    for i in range(N):
        d = H[i] - mu[classes.index(y[i])]
        Sw += np.outer(d, d)
    Sw /= N
    Sb = np.zeros((D, D))
    for c in range(K):
        d = mu[c] - mu_G
        Sb += np.outer(d, d)
    Sb /= K
    M = np.column_stack([mu[c] - mu_G for c in range(K)])  # D x K
    target = (np.eye(K) - np.ones((K, K)) / K) / np.sqrt(K - 1)

    def etf(G):
        return np.linalg.norm(G / np.linalg.norm(G, "fro") - target, "fro")

    def norms_and_cosines(vectors):
        norms = [np.linalg.norm(v) for v in vectors]
        cosines = [
            vectors[i] @ vectors[j] / (norms[i] * norms[j])
            for i in range(K) for j in range(i + 1, K)
        ]
        return np.std(norms) / np.mean(norms), np.std(cosines)

    # a loose rank cut-off keeps this reference clear of rounding-level eigenvalues
    nc1 = np.trace(Sw @ scipy.linalg.pinv(Sb, rtol=1e-10)) / K
    out = {"nc1": nc1, "etf_means": etf(M.T @ M)}
    out["equinorm_means"], out["equiangularity_means"] = norms_and_cosines(list(M.T))
    if W is not None:
        out["etf_weights"] = etf(W @ W.T)
        out["equinorm_weights"], out["equiangularity_weights"] = norms_and_cosines(list(W))
        out["self_duality"] = etf(W @ M)
        mismatches = 0
        for i in range(N):
            net_pred = max(range(K), key=lambda c: W[c] @ H[i] + b[c])
            ncc_pred = min(range(K), key=lambda c: np.linalg.norm(H[i] - mu[c]))
            mismatches += net_pred != ncc_pred
        out["ncc_mismatch"] = mismatches / N
    return out


def _simplex_2d(scale=1.0, phase=0.0):
    angles = phase + 2 * np.pi * np.arange(3) / 3
    return scale * np.c_[np.cos(angles), np.sin(angles)]


@pytest.mark.parametrize("n_features", [2, 4])
def test_matches_loop_reference(n_features):
    rng = np.random.default_rng(0)
    y = np.array([0] * 5 + [1] * 7 + [2] * 9)  # unbalanced on purpose
    centres = rng.normal(scale=3.0, size=(3, n_features))
    H = centres[y] + rng.normal(size=(len(y), n_features))
    W = rng.normal(size=(3, n_features))
    b = rng.normal(size=3)

    got = neural_collapse(H, y, head=(W, b))
    expected = _reference(H, y, W, b)

    assert set(got) == MEAN_KEYS | HEAD_KEYS
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
        assert isinstance(got[key], float)


def test_rank_deficient_between_class_covariance():
    # K = 3 balanced classes in D = 6: Sigma_B has rank 2, the pseudo-inverse matters
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], 6)
    H = rng.normal(scale=4.0, size=(3, 6))[y] + rng.normal(size=(18, 6))
    assert neural_collapse(H, y)["nc1"] == pytest.approx(_reference(H, y)["nc1"], rel=1e-9)


def test_without_head_only_mean_metrics():
    H = _simplex_2d()[np.repeat([0, 1, 2], 2)]
    assert set(neural_collapse(H, np.repeat([0, 1, 2], 2))) == MEAN_KEYS


def test_perfect_collapse_on_regular_simplex():
    y = np.repeat([0, 1, 2], 4)
    means = _simplex_2d(scale=2.5, phase=0.3)
    offset = np.array([10.0, -3.0])  # the global mean is removed before the ETF test
    head = (means, -means @ offset)  # logits of a sample of class c: means @ means[c]
    got = neural_collapse(means[y] + offset, y, head=head)
    for key in MEAN_KEYS | HEAD_KEYS:
        assert got[key] == pytest.approx(0.0, abs=1e-12), key


def test_one_hot_features_form_a_simplex_etf():
    # centred one-hot vectors are the textbook simplex ETF, for any K
    K = 5
    y = np.repeat(np.arange(K), 3)
    got = neural_collapse(np.eye(K)[y], y)
    assert got["nc1"] == pytest.approx(0.0, abs=1e-12)
    assert got["etf_means"] == pytest.approx(0.0, abs=1e-12)
    assert got["equiangularity_means"] == pytest.approx(0.0, abs=1e-12)


def test_non_etf_means_have_positive_distance():
    y = np.repeat([0, 1, 2], 2)
    means = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    got = neural_collapse(means[y], y)
    assert got["etf_means"] > 0.1
    assert got["equinorm_means"] > 0.1


def test_nc1_closed_form_two_classes_in_one_dimension():
    # class means -1 and +1, within-class spread +-s: Sigma_W = s^2, Sigma_B = 1
    s = 0.3
    H = np.array([[-1 - s], [-1 + s], [1 - s], [1 + s]])
    assert neural_collapse(H, np.array([0, 0, 1, 1]))["nc1"] == pytest.approx(s**2 / 2)


def test_ncc_mismatch_against_constant_head():
    # a head that always predicts the first class disagrees with NCC on the others
    y = np.repeat([0, 1, 2], [2, 3, 5])
    H = _simplex_2d()[y]
    got = neural_collapse(H, y, head=(np.zeros((3, 2)), np.array([1.0, 0.0, 0.0])))
    assert got["ncc_mismatch"] == pytest.approx(8 / 10)


def test_label_values_and_order_do_not_matter():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1, 2], 5)
    H = rng.normal(size=(15, 3)) + 3 * np.eye(3)[y]
    W, b = rng.normal(size=(3, 3)), rng.normal(size=3)
    base = neural_collapse(H, y, head=(W, b))

    perm = rng.permutation(15)
    relabelled = np.array([7, 11, 42])[y]  # same sorted order as 0, 1, 2
    other = neural_collapse(H[perm], relabelled[perm], head=(W, b))
    for key in base:
        assert other[key] == pytest.approx(base[key], rel=1e-10, abs=1e-12), key


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(0.01, 100.0),
    shift=st.floats(-50.0, 50.0),
)
def test_mean_metrics_invariant_to_similarity_transforms(seed, scale, shift):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1, 2, 3], 4)
    H = 2 * rng.normal(size=(4, 5))[y] + rng.normal(size=(16, 5))
    Q, _ = np.linalg.qr(rng.normal(size=(5, 5)))  # orthogonal
    base = neural_collapse(H, y)
    moved = neural_collapse(scale * H @ Q + shift, y)
    for key in MEAN_KEYS:
        assert moved[key] == pytest.approx(base[key], rel=1e-6, abs=1e-9), key


def test_accepts_torch_tensors_and_linear_head():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1, 2], 4)
    H = rng.normal(size=(12, 4)).astype(np.float32)
    fc = torch.nn.Linear(4, 3)
    got = neural_collapse(torch.from_numpy(H), torch.from_numpy(y), head=fc)
    expected = neural_collapse(
        H, y, head=(fc.weight.detach().numpy(), fc.bias.detach().numpy())
    )
    assert got == pytest.approx(expected)

    no_bias = torch.nn.Linear(4, 3, bias=False)
    got = neural_collapse(H, y, head=no_bias)
    assert got == pytest.approx(
        neural_collapse(H, y, head=(no_bias.weight.detach().numpy(), None))
    )


def test_coinciding_class_means_give_nan():
    H = np.array([[0.0], [1.0], [0.0], [1.0]])
    got = neural_collapse(H, np.array([0, 0, 1, 1]))
    assert np.isnan(got["nc1"])
    assert np.isnan(got["etf_means"])


@pytest.mark.parametrize(
    "features, y, head, match",
    [
        (np.zeros(4), [0, 0, 1, 1], None, "2-D array"),
        (np.zeros((4, 2, 1)), [0, 0, 1, 1], None, "2-D array"),
        (np.array([[0.0], [np.nan], [1.0], [2.0]]), [0, 0, 1, 1], None, "NaN"),
        (np.zeros((4, 2)), [0, 1, 1], None, "one label per row"),
        (np.zeros((4, 2)), [[0, 0], [1, 1]], None, "1-D"),
        (np.zeros((4, 2)), [1, 1, 1, 1], None, "at least 2 classes"),
        (np.zeros((4, 2)), [0, -1, 1, 1], None, "negative labels"),
        (np.zeros((4, 2)), [0, 0, 1, 1], (np.zeros((3, 2)), np.zeros(3)), r"\(2, 2\)"),
        (np.zeros((4, 2)), [0, 0, 1, 1], (np.zeros((2, 3)), np.zeros(2)), r"\(2, 2\)"),
        (np.zeros((4, 2)), [0, 0, 1, 1], (np.zeros((2, 2)), np.zeros(3)), "intercept"),
        (np.zeros((4, 2)), [0, 0, 1, 1], (np.full((2, 2), np.inf), None), "infinite"),
    ],
)
def test_input_validation(features, y, head, match):
    with pytest.raises(ValueError, match=match):
        neural_collapse(features, np.asarray(y), head=head)


def test_head_of_the_wrong_type():
    with pytest.raises(TypeError, match="nn.Linear"):
        neural_collapse(np.zeros((4, 2)), np.array([0, 0, 1, 1]), head="linear")
