"""Every public fitted attribute is documented in its class's Attributes section."""

import inspect
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from _helpers import small_net
from sklearn_ood import BlockFeatureExtractor, BlockSelection, Jigsaw
from test_base import DETECTORS_2D, X2, Y


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


@pytest.mark.parametrize("name", list(DETECTORS_2D))
def test_detector_attributes_documented(name):
    make, needs_y = DETECTORS_2D[name]
    columns = [f"f{i}" for i in range(X2.shape[1])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = make().fit(pd.DataFrame(X2, columns=columns), Y if needs_y else None)
    assert hasattr(est, "feature_names_in_")
    assert_documented(est)


def test_model_holding_estimators_document_their_attributes():
    images = np.random.default_rng(0).normal(size=(20, 2, 5, 5)).astype(np.float32)
    net = small_net()
    assert_documented(BlockFeatureExtractor(net, "3").fit(images))
    assert_documented(BlockSelection(net, ["1", "3"], random_state=0).fit(images))
    assert_documented(Jigsaw(random_state=0).fit(images))


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
