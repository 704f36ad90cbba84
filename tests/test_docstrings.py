"""Every public fitted attribute is documented in its class's Attributes section."""

import inspect
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from _helpers import small_net
from _instances import HEAD, X2, X4, Y, cases, make_model_detector, model_detectors
from _model_state_checks import AnyWidth
from sklearn_ood import BlockFeatureExtractor, BlockSelection, Jigsaw

CASES = cases(X2, X4, Y, HEAD)  # every detector that takes arrays, from the registry


def documented_attributes(cls):
    """Names listed in the numpydoc Attributes section of ``cls``'s docstring."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    match = re.search(r"\nAttributes\n-+\n(.*?)(\n\n[A-Z][A-Za-z ]+\n-+\n|\Z)", doc, re.S)
    if not match:
        return set()
    names = set()
    for line in match.group(1).splitlines():
        entry = re.match(r"([A-Za-z_][\w, ]*?)\s*(:|$)", line)
        if entry:
            names.update(name.strip() for name in entry.group(1).split(","))
    return names


def fitted_attributes(est):
    return {name for name in vars(est) if name.endswith("_") and not name.startswith("_")}


def assert_documented(est):
    missing = fitted_attributes(est) - documented_attributes(type(est))
    assert not missing, f"{type(est).__name__} does not document {sorted(missing)}"


@pytest.mark.parametrize("name", list(CASES))
def test_detector_attributes_documented(name):
    case = CASES[name]
    X = case.X
    if X.ndim == 2:  # with column names: feature_names_in_ too
        X = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = case.make().fit(X, case.y)
    assert hasattr(est, "feature_names_in_") == (case.X.ndim == 2)
    assert_documented(est)


def test_model_holding_estimators_document_their_attributes():
    images = np.random.default_rng(0).normal(size=(20, 2, 5, 5)).astype(np.float32)
    net = small_net()
    assert_documented(BlockFeatureExtractor(net, "3").fit(images))
    assert_documented(Jigsaw(random_state=0).fit(images))
    for _, cls in model_detectors():
        # BlockSelection compares the blocks of a convolutional net; the others read a
        # classifier's head
        det = BlockSelection(net, ["1", "3"], random_state=0) if cls is BlockSelection \
            else make_model_detector(cls, AnyWidth(), "features")
        assert_documented(det.fit(images))


def test_documented_attributes_parser():
    class Doc:
        """Doc.

        Attributes
        ----------
        a_ : int
            One.
        b_, c_ : float
            Two and three.

        Examples
        --------
        >>> 1
        """

    assert documented_attributes(Doc) == {"a_", "b_", "c_"}
