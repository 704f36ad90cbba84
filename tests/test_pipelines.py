"""Pipelines of a model, the extractor and a detector: bad input, hook hygiene,
persistence, determinism.

Hooks never outlive a call and train/eval flags are restored, also when the
forward pass raises; fitted pipelines survive pickle/joblib and GridSearchCV
with n_jobs=2; seeded runs are bit-for-bit reproducible on CPU.
"""

import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from torch.utils.data import DataLoader, TensorDataset

from sklearn_ood.model_detectors.block_selection import BlockSelection
from _helpers import assert_unchanged_after_error, state
from sklearn_ood.detectors import KNN, NAP, Energy, FeatureNorm, Mahalanobis
from sklearn_ood.exceptions import LabelsNotPassedWarning
from sklearn_ood.extraction import BlockFeatureExtractor, iter_block_batches
from sklearn_ood.metrics import auroc_scorer
from sklearn_ood.models import SmallCNN, make_classifier
from sklearn_ood.pseudo_ood import jigsaw
from sklearn_ood.streaming import labels_of


# --------------------------------------------------------------------------- models
class TinyNet(torch.nn.Module):
    """Module-level (picklable) 1-channel CNN: two conv blocks, pool, fc (3 classes)."""

    def __init__(self, fail=False):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.block1 = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU())
        self.block2 = torch.nn.Sequential(
            torch.nn.Conv2d(4, 6, 3, stride=2, padding=1), torch.nn.BatchNorm2d(6),
            torch.nn.ReLU(),
        )
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.flat = torch.nn.Flatten()
        self.drop = torch.nn.Dropout(0.5)
        self.fc = torch.nn.Linear(6, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        self.fail = fail

    def forward(self, x):
        x = self.block1(x)
        if self.fail:
            raise RuntimeError("boom inside forward")
        x = self.block2(x)
        return self.fc(self.drop(self.flat(self.pool(x))))


def no_hooks(model):
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        for m in model.modules()
    )


def modes(model):
    return [m.training for m in model.modules()]



RNG = np.random.default_rng(0)
IMAGES = RNG.random((12, 1, 8, 8), dtype=np.float32)


# ----------------------------------------------------------- bad input: extractor
def test_extractor_bad_inputs():
    net = TinyNet()
    ext = BlockFeatureExtractor(net, ["block1", "block2"]).fit(IMAGES)
    expected = ext.transform(IMAGES)
    for bad, match in [(np.nan, "NaN"), (np.inf, "infinity")]:
        Xb = IMAGES.copy()
        Xb[0, 0, 1, 1] = bad
        assert_unchanged_after_error(ext, lambda: ext.transform(Xb), ValueError, match)
        assert_unchanged_after_error(ext, lambda: ext.fit(Xb), ValueError, match)
    assert_unchanged_after_error(ext, lambda: ext.transform(IMAGES[:0]), ValueError, "empty")
    assert_unchanged_after_error(ext, lambda: ext.transform(IMAGES[0, 0, 0]), ValueError,
                                 "sample dimension|2D array")
    assert_unchanged_after_error(ext, lambda: ext.transform(np.repeat(IMAGES, 3, axis=1)),
                                 ValueError, "fitted on samples of shape")
    assert_unchanged_after_error(ext, lambda: ext.transform(IMAGES[:, 0]), ValueError,
                                 "fitted on samples of shape")
    assert_unchanged_after_error(ext, lambda: ext.fit(IMAGES.astype(object)), TypeError,
                                 "numeric")
    # one sample, dtypes (cast to the model's float32), non-contiguous input
    np.testing.assert_allclose(ext.transform(IMAGES[3:4]), expected[3:4], rtol=1e-5,
                               atol=1e-6)
    for Xd in (IMAGES.astype(np.float64), np.asfortranarray(IMAGES),
               np.repeat(IMAGES, 2, axis=3)[..., ::2], torch.from_numpy(IMAGES)):
        out = ext.transform(Xd)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, expected)
    ints = (IMAGES * 10).astype(np.int64)
    np.testing.assert_array_equal(ext.transform(ints), ext.transform(ints.astype(np.float32)))
    halves = IMAGES.astype(np.float16)
    np.testing.assert_array_equal(ext.transform(halves),
                                  ext.transform(halves.astype(np.float32)))
    assert no_hooks(net)


def test_extractor_unknown_block_and_wrong_channels():
    net = TinyNet()
    with pytest.raises(ValueError, match="Unknown block"):
        BlockFeatureExtractor(net, ["block1", "layer9"]).fit(IMAGES)
    with pytest.raises(ValueError, match="Unknown block"):
        BlockSelection(net, blocks=["nope"]).fit(IMAGES)
    ext = BlockFeatureExtractor(net, "block2").fit(IMAGES)
    before = state(ext)
    # The model takes 1 channel: 3-channel images fail inside torch's conv.
    with pytest.raises((ValueError, RuntimeError), match="channels"):
        ext.fit(np.repeat(IMAGES, 3, axis=1))
    assert state(ext) == before
    assert no_hooks(net)


def test_block_selection_bad_inputs():
    net = TinyNet()
    det = BlockSelection(net, random_state=0).fit(IMAGES)
    s = det.score_samples(IMAGES)
    assert np.isfinite(s).all()
    np.testing.assert_allclose(det.score_samples(IMAGES[2:3]), s[2:3], rtol=1e-5)
    Xb = IMAGES.copy()
    Xb[0, 0, 0, 0] = np.nan
    assert_unchanged_after_error(det, lambda: det.fit(Xb), ValueError, "NaN")
    assert_unchanged_after_error(det, lambda: det.score_samples(Xb), ValueError, "NaN")
    assert_unchanged_after_error(det, lambda: det.score_samples(IMAGES[:, 0]), ValueError,
                                 "expects images")
    assert_unchanged_after_error(det, lambda: det.score_samples(IMAGES[:0]), ValueError,
                                 "empty")
    assert_unchanged_after_error(det, lambda: det.score_samples(np.repeat(IMAGES, 2, 1)),
                                 ValueError, "channels")
    np.testing.assert_allclose(det.score_samples(IMAGES.astype(np.float64)), s, rtol=1e-6)
    assert no_hooks(net)


# ------------------------------------------------------------------ hook hygiene
def mixed_mode_net(fail=False):
    net = TinyNet(fail=fail)
    net.train()
    net.block2.eval()
    net.drop.eval()
    net.block1[1].train()
    return net


def test_hooks_removed_and_modes_restored_after_normal_calls():
    net = mixed_mode_net()
    flags = modes(net)
    BlockFeatureExtractor(net, ["block1", "block2", "fc"]).fit(IMAGES).transform(IMAGES)
    det = BlockSelection(net, blocks=["block1", "block2"], random_state=0).fit(IMAGES)
    det.score_samples(IMAGES)
    make_pipeline(BlockFeatureExtractor(net, "block2", reduce=["max", "avg"]),
                  NAP()).fit(IMAGES).score_samples(IMAGES)
    assert no_hooks(net)
    assert modes(net) == flags


def test_hooks_removed_and_modes_restored_after_exception_in_forward():
    net = mixed_mode_net()
    flags = modes(net)
    ext = BlockFeatureExtractor(net, "block2").fit(IMAGES)
    net.fail = True
    with pytest.raises(RuntimeError, match="boom"):
        ext.transform(IMAGES)
    with pytest.raises(RuntimeError, match="boom"):
        BlockFeatureExtractor(net, "block2").fit(IMAGES)
    with pytest.raises(RuntimeError, match="boom"):
        BlockSelection(net, blocks=["block1", "block2"]).fit(IMAGES)
    assert no_hooks(net)
    assert modes(net) == flags


def test_hooks_removed_after_error_in_reduce_and_early_close():
    net = mixed_mode_net()
    flags = modes(net)

    def bad_reduce(t):
        raise ZeroDivisionError("bad reduce")

    ext = BlockFeatureExtractor(net, "block1", reduce=lambda t: t.flatten(1)).fit(IMAGES)
    ext.set_params(reduce=bad_reduce)
    with pytest.raises(ZeroDivisionError):
        ext.transform(IMAGES)
    assert no_hooks(net) and modes(net) == flags
    gen = iter_block_batches(net, ["block1"], torch.from_numpy(IMAGES), batch_size=4)
    next(gen)
    assert not no_hooks(net)  # a generator half way through holds its hook ...
    gen.close()
    assert no_hooks(net) and modes(net) == flags  # ... and close() removes it


# ------------------------------------------------------- labels the data yields
LABELS = np.arange(len(IMAGES)) % 3


def labelled_loader(labels=LABELS):
    return DataLoader(TensorDataset(torch.from_numpy(IMAGES), torch.as_tensor(labels)),
                      batch_size=5)


def test_pipeline_on_labelled_loader_fits_with_the_labels_passed_as_y():
    net = TinyNet()
    loader = labelled_loader()
    pipe = make_pipeline(BlockFeatureExtractor(net, "flat"), Mahalanobis())
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelsNotPassedWarning)
        pipe.fit(loader, labels_of(loader))
    np.testing.assert_array_equal(labels_of(loader), LABELS)
    # The same detector fitted by hand on the array path's features and the labels.
    features = BlockFeatureExtractor(net, "flat").fit(IMAGES).transform(IMAGES)
    by_hand = Mahalanobis().fit(features, LABELS)
    np.testing.assert_array_equal(pipe[-1].classes_, [0, 1, 2])
    np.testing.assert_allclose(pipe[-1].means_, by_hand.means_, rtol=1e-6)
    np.testing.assert_allclose(pipe.score_samples(loader), by_hand.score_samples(features),
                               rtol=1e-5)
    wrong = LABELS.copy()
    wrong[7] = (wrong[7] + 1) % 3
    with pytest.raises(ValueError, match=r"disagree in batch 1 \(samples 5 to 9\)"):
        pipe.fit(loader, wrong)
    with pytest.raises(ValueError, match="y has 13 labels, but X has 12 samples"):
        pipe.fit(loader, np.append(LABELS, 0))


def test_pipeline_on_labelled_loader_without_y_warns_that_labels_are_dropped():
    pipe = make_pipeline(BlockFeatureExtractor(TinyNet(), "flat"), Mahalanobis())
    with pytest.warns(LabelsNotPassedWarning, match=r"labels_of\(X\)"):
        pipe.fit(labelled_loader())
    assert pipe[-1].classes_ is None  # fitted without them, as the warning said
    unlabelled = DataLoader(TensorDataset(torch.from_numpy(IMAGES)), batch_size=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelsNotPassedWarning)
        pipe.fit(unlabelled)
        pipe.fit(IMAGES)
        pipe[0].fit(labelled_loader())  # fit alone passes nothing on


# ------------------------------------------------------------------ persistence
def fitted_pipelines():
    net = TinyNet()
    head = net.fc
    return {
        "energy": make_pipeline(BlockFeatureExtractor(net, "flat"), Energy(head)),
        "knn": make_pipeline(BlockFeatureExtractor(net, "flat"), KNN(n_neighbors=2)),
        "mahalanobis": make_pipeline(BlockFeatureExtractor(net, "flat"), Mahalanobis()),
        "nap": make_pipeline(BlockFeatureExtractor(net, "block2", reduce=["max", "avg"]),
                             NAP(head, weight=0.4)),
        "featurenorm": make_pipeline(BlockFeatureExtractor(net, "block2", reduce="norm"),
                                     FeatureNorm()),
        "block_selection": BlockSelection(net, random_state=0),
    }


@pytest.mark.parametrize("name", list(fitted_pipelines()))
def test_pickle_and_joblib_round_trip(name, tmp_path):
    pipe = fitted_pipelines()[name].fit(IMAGES)
    expected = pipe.score_samples(IMAGES)
    pred = pipe.predict(IMAGES)
    restored = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(restored.score_samples(IMAGES), expected)
    np.testing.assert_array_equal(restored.predict(IMAGES), pred)
    joblib.dump(pipe, tmp_path / "p.joblib")
    restored = joblib.load(tmp_path / "p.joblib")
    np.testing.assert_array_equal(restored.score_samples(IMAGES), expected)


def test_grid_search_n_jobs_2_on_torch_pipeline():
    rng = np.random.default_rng(1)
    X_id = rng.random((24, 1, 8, 8), dtype=np.float32)
    X_ood = rng.random((24, 1, 8, 8), dtype=np.float32) * 3.0 + 1.0
    X = np.concatenate([X_id, X_ood])
    y = np.r_[np.arange(24) % 3, -np.ones(24, dtype=int)]
    pipe = make_pipeline(BlockFeatureExtractor(TinyNet(), "flat"), KNN())
    search = GridSearchCV(
        pipe, {"knn__n_neighbors": [1, 3]}, scoring=auroc_scorer, n_jobs=2,
        cv=KFold(2, shuffle=True, random_state=0),
    ).fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["knn__n_neighbors"] in (1, 3)
    assert search.best_score_ > 0.9


# ------------------------------------------------------------------ determinism
def _digits(n=120):
    X, y = load_digits(return_X_y=True)
    return (X[:n] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8), y[:n].astype(np.int64)


def _train_and_score(X, y):
    net = make_classifier(SmallCNN, max_epochs=1, width=4, num_classes=10, batch_size=32,
                          random_state=0).fit(X, y)
    module = net.module_
    pipe = make_pipeline(BlockFeatureExtractor(module, "penultimate"), Energy(module.fc))
    return pipe.fit(X).score_samples(X), [p.detach().clone() for p in module.parameters()]


def test_same_seed_same_model_same_scores_bit_for_bit():
    X, y = _digits()
    s1, p1 = _train_and_score(X, y)
    s2, p2 = _train_and_score(X, y)
    assert all(torch.equal(a, b) for a, b in zip(p1, p2))
    np.testing.assert_array_equal(s1, s2)


def test_block_selection_and_jigsaw_deterministic_with_random_state():
    X, _ = _digits(40)
    np.testing.assert_array_equal(jigsaw(X, 3, random_state=0), jigsaw(X, 3, random_state=0))
    net = TinyNet()
    a = BlockSelection(net, blocks=["block1", "block2"], random_state=0).fit(X)
    b = BlockSelection(net, blocks=["block1", "block2"], random_state=0).fit(X)
    assert a.norm_ratios_ == b.norm_ratios_ and a.block_ == b.block_
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
