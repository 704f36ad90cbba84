"""Several blocks in one 2-D input: the columns of consecutive blocks, side by side.

A multi-block detector reads the concatenated output of
:class:`~sklearn_ood.extraction.BlockFeatureExtractor` (``blocks=[b1, b2, ...]``):
block 1's columns, then block 2's, and so on. It splits them with
``block_sizes`` (the number of columns of each block), or, when ``X`` is a
DataFrame with the extractor's column names ``"<block>__..."`` (the extractor
with ``set_output(transform="pandas")``), by those names.
"""

import numpy as np


def check_block_sizes(block_sizes, n_features, owner, what="block_sizes must be positive "
                      "column counts"):
    """The column count of every block, checked against ``n_features``."""
    sizes = [int(s) for s in block_sizes]
    if any(s < 1 for s in sizes) or sum(sizes) != n_features:
        raise ValueError(
            f"{owner}: {what} that add up to the {n_features} features of X (one per "
            f"block, in the order of the extractor's blocks); got column counts "
            f"{sizes} (sum {sum(sizes)})."
        )
    return sizes


def block_sizes_from_names(names):
    """Column counts of consecutive runs of the same ``"<block>__"`` prefix.

    Examples
    --------
    >>> block_sizes_from_names(["l1__0", "l1__1", "l2__0"])
    [2, 1]
    """
    prefixes = [str(n).split("__", 1)[0] for n in names]
    sizes = []
    for i, p in enumerate(prefixes):
        if i and p == prefixes[i - 1]:
            sizes[-1] += 1
        else:
            sizes.append(1)
    return sizes


def split_blocks(X, sizes):
    """The column blocks of ``X``, as views."""
    edges = np.cumsum([0] + list(sizes))
    return [X[:, a:b] for a, b in zip(edges[:-1], edges[1:])]
