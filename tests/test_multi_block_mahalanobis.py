"""MultiBlockMahalanobis against per-block loops, and as the last step of a Pipeline."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from sklearn_ood import BlockFeatureExtractor, MultiBlockMahalanobis, make_pseudo_ood
from sklearn_ood.metrics import auroc

from _helpers import images, small_net


def block_scores_loop(train_blocks, codes, test_blocks):
    """-min_c (x - mu_c)^T pinv(S) (x - mu_c) per block, S the pooled 1/N covariance."""
    out = []
    for H, T in zip(train_blocks, test_blocks):
        n, d = H.shape
        means = {}
        for c in sorted(set(codes)):
            rows = [H[i] for i in range(n) if codes[i] == c]
            means[c] = [sum(r[j] for r in rows) / len(rows) for j in range(d)]
        S = np.zeros((d, d))
        for i in range(n):
            diff = H[i] - np.array(means[codes[i]])
            for a in range(d):
                for b in range(d):
                    S[a, b] += diff[a] * diff[b] / n
        P = np.linalg.pinv(S)
        col = []
        for x in T:
            dists = []
            for c in means:
                diff = x - np.array(means[c])
                dists.append(sum(diff[a] * P[a, b] * diff[b] for a in range(d) for b in range(d)))
            col.append(-min(dists))
        out.append(col)
    return np.array(out).T


def data(seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], 30)
    X = rng.normal(size=(60, 5)) + np.where(y[:, None] == 1, 2.0, 0.0)
    X_ood = rng.normal(size=(40, 5)) * 3
    return X, y, X_ood


def test_mean_combiner_by_hand():
    X, y, X_ood = data()
    det = MultiBlockMahalanobis([2, 3], combiner="mean").fit(X, y)
    blocks = lambda A: [A[:, :2], A[:, 2:]]
    raw_train = block_scores_loop(blocks(X), list(y), blocks(X))
    mu, sd = raw_train.mean(axis=0), raw_train.std(axis=0)
    raw = block_scores_loop(blocks(X), list(y), blocks(X_ood))
    np.testing.assert_allclose(det.score_samples(X_ood), ((raw - mu) / sd).mean(axis=1),
                               rtol=1e-8)


def test_logistic_combiner_on_ood_rows_by_hand():
    X, y, X_ood = data(1)
    Xy = np.vstack([X, X_ood])
    labels = np.r_[y, -np.ones(len(X_ood))]
    det = MultiBlockMahalanobis([2, 3]).fit(Xy, labels)
    assert det.n_ood_fit_ == 40
    blocks = lambda A: [A[:, :2], A[:, 2:]]
    raw_id = block_scores_loop(blocks(X), list(y), blocks(X))
    mu, sd = raw_id.mean(axis=0), raw_id.std(axis=0)
    z_ood = (block_scores_loop(blocks(X), list(y), blocks(X_ood)) - mu) / sd
    lr = LogisticRegression(class_weight="balanced").fit(
        np.vstack([(raw_id - mu) / sd, z_ood]), np.r_[np.ones(60), np.zeros(40)])
    np.testing.assert_allclose(det.weights_, lr.coef_[0], rtol=1e-5)
    np.testing.assert_allclose(det.score_samples(X_ood), lr.decision_function(z_ood),
                               rtol=1e-5)
    assert auroc(labels, det.score_samples(Xy)) > 0.9


def test_beyond_10000_rows_by_chunks_standardised_on_the_seeded_sample():
    # Gaussians on all 10,500 rows (more than two chunks), block scores
    # standardised on the documented sample: the 10,000 rows with the smallest
    # keys drawn with Generator(PCG64(0))
    rng = np.random.default_rng(2)
    n = 10_500
    y = rng.integers(0, 2, n)
    X = (rng.normal(size=(n, 5)) + 2.0 * y[:, None] + 50).astype(np.float32)
    X_test = rng.normal(51, 2, (8, 5))
    det = MultiBlockMahalanobis([2, 3], combiner="mean").fit(X, y)
    H = X.astype(np.float64)

    def raw_scores(T):
        cols = []
        for block in (slice(0, 2), slice(2, 5)):
            B = H[:, block]
            means = np.array([B[y == c].mean(axis=0) for c in (0, 1)])
            centred = B - means[y]
            P = np.linalg.pinv(centred.T @ centred / n)
            diff = T[:, None, block] - means[None]
            cols.append(-np.einsum("ikd,de,ike->ik", diff, P, diff).min(axis=1))
        return np.column_stack(cols)

    keys = np.random.Generator(np.random.PCG64(0)).random(n)
    sample = np.sort(np.argsort(keys)[:10_000])  # the rows with the smallest seeded keys
    raw_sample = raw_scores(H[sample])
    mu, sd = raw_sample.mean(axis=0), raw_sample.std(axis=0)
    np.testing.assert_allclose(det.score_samples(X_test),
                               ((raw_scores(X_test) - mu) / sd).mean(axis=1), rtol=1e-7)


def test_logistic_without_ood_rows_says_what_to_pass():
    X, y, _ = data()
    with pytest.raises(ValueError, match=r"label -1, e.g. the features of make_pseudo_ood"):
        MultiBlockMahalanobis([2, 3]).fit(X, y)
    with pytest.raises(ValueError, match=r"add up to the 5 features"):
        MultiBlockMahalanobis([2, 2]).fit(X, y)


def test_pipeline_after_block_extractor_with_jigsaw_rows():
    X = images(30, seed=0)
    X_aug, y_aug = make_pseudo_ood(X, method="jigsaw", random_state=0)
    ext = BlockFeatureExtractor(small_net(), ["1", "3"], reduce="avg")
    # block sizes: 3 channels after the first ReLU, 4 after the second
    pipe = make_pipeline(ext, MultiBlockMahalanobis([3, 4])).fit(X_aug, y_aug)
    assert pipe[-1].n_ood_fit_ == 30 and pipe[-1].classes_ is None
    by_names = make_pipeline(
        BlockFeatureExtractor(small_net(), ["1", "3"], reduce="avg").set_output(
            transform="pandas"),
        MultiBlockMahalanobis()).fit(X_aug, y_aug)
    assert by_names[-1].block_sizes_ == [3, 4]
    np.testing.assert_allclose(by_names.score_samples(X), pipe.score_samples(X))
