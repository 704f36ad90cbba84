"""Transformers and sequence models: token layouts, the class token, structured outputs.

Every expected value is computed directly in torch from the block output
captured by a hook of the test's own, not through the extractor.
"""

import dataclasses
import pickle
from collections import namedtuple

import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch import nn

from sklearn_ood import BlockFeatureExtractor, NegativeAwareNorm
from sklearn_ood.block_outputs import Token, describe_output, known_layout
from sklearn_ood.extraction import iter_block_batches

D, T = 8, 5


class TinyEncoder(nn.Module):
    """Tokens (n, T, D) from inputs (n, T, 3): embedding, a batch_first encoder, a head."""

    def __init__(self, batch_first=True):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(3, D)
        layer = nn.TransformerEncoderLayer(D, 2, dim_feedforward=16, dropout=0.0,
                                           batch_first=batch_first)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.act = nn.GELU()
        self.head = nn.Linear(D, 3)

    def forward(self, x):
        return self.head(self.act(self.enc(self.embed(x)))[:, 0])


@pytest.fixture
def seqs():
    return np.random.default_rng(0).normal(size=(11, T, 3)).astype(np.float32)


def captured(model, block, X, *, pick=lambda out: out):
    """The block output for ``X``, captured by a hook of our own in one pass."""
    store = {}
    handle = dict(model.named_modules())[block].register_forward_hook(
        lambda m, i, out: store.__setitem__("out", pick(out).detach().clone()))
    try:
        with torch.no_grad():
            model.eval()(torch.as_tensor(X))
    finally:
        handle.remove()
    return store["out"]


def token_reference(tokens):
    """What each token reduction should give for a (n, T, D) tensor."""
    relu = torch.relu(tokens)
    flat = tokens.flatten(1)
    active = (flat > 0).sum(1)
    return {
        "avg": tokens.mean(1),
        "max": tokens.amax(1),
        "cls": tokens[:, 0],
        "flatten": tokens.reshape(len(tokens), -1),
        "norm": relu.pow(2).sum(1).sqrt(),  # per feature, over tokens
        "negative_aware_norm": (flat.abs().sum(1) / active)[:, None],
    }


@pytest.mark.parametrize("reduce", ["avg", "max", "cls", "flatten", "norm",
                                    "negative_aware_norm"])
def test_token_reductions_match_direct_torch(seqs, reduce):
    net = TinyEncoder()
    tokens = captured(net, "act", seqs)
    assert tokens.shape == (len(seqs), T, D)
    ext = BlockFeatureExtractor(net, "act", reduce=reduce, layout="tokens", batch_size=4)
    features = ext.fit(seqs).transform(seqs)
    expected = token_reference(tokens)[reduce].numpy()
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    width = {"flatten": T * D, "negative_aware_norm": 1}.get(reduce, D)
    assert features.shape == (len(seqs), width)
    assert ext.block_shapes_ == {"act": (width,)}
    assert ext.block_layouts_ == {"act": "tokens"}


def test_token_index_and_reduction_list(seqs):
    net = TinyEncoder()
    tokens = captured(net, "act", seqs)
    ext = BlockFeatureExtractor(net, "act", reduce=["cls", Token(-1), "max", "avg"],
                                layout={"act": "tokens"}).fit(seqs)
    expected = torch.cat([tokens[:, 0], tokens[:, -1], tokens.amax(1), tokens.mean(1)], 1)
    np.testing.assert_allclose(ext.transform(seqs), expected.numpy(), rtol=1e-5, atol=1e-6)
    names = ext.get_feature_names_out()
    assert names[0] == "act__cls__0" and names[D] == "act__token-1__0"
    assert names[2 * D] == "act__max__0" and len(names) == 4 * D
    with pytest.raises(ValueError, match="index 7.*5 tokens"):
        BlockFeatureExtractor(net, "act", reduce=Token(7), layout="tokens").fit(seqs)


def test_nap_statistics_treat_tokens_as_spatial(seqs):
    """["max", "avg"] per feature over tokens, as NAP reads them from (n, D, T) maps."""
    net = TinyEncoder()
    maps = captured(net, "act", seqs).transpose(1, 2)  # (n, D, T)
    ext = BlockFeatureExtractor(net, "act", reduce=["max", "avg"], layout="tokens")
    expected = torch.cat([maps.amax(2), maps.mean(2)], 1).numpy()
    np.testing.assert_allclose(ext.fit_transform(seqs), expected, rtol=1e-5, atol=1e-6)
    nan = BlockFeatureExtractor(net, "act", reduce="negative_aware_norm", layout="tokens")
    flat = captured(net, "act", seqs).flatten(1).numpy()
    scores = NegativeAwareNorm().fit(flat).score_samples(flat)
    np.testing.assert_allclose(nan.fit_transform(seqs)[:, 0], scores, rtol=1e-5)


def test_ambiguous_3d_output_raises_and_explains(seqs):
    net = TinyEncoder()
    with pytest.raises(ValueError, match=r"'act' \(GELU\) outputs 3-D.*layout='tokens'"):
        BlockFeatureExtractor(net, "act").fit(seqs)
    with pytest.raises(ValueError, match="layout={'act': 'tokens'}"):
        BlockFeatureExtractor(net, ["act", "head"], reduce="max").fit(seqs)
    # callables and None see the raw output: no layout needed
    assert BlockFeatureExtractor(net, "act", reduce=None).fit_transform(seqs).shape == (
        11, T, D)
    ext = BlockFeatureExtractor(net, "act", reduce=lambda x: x[:, 1]).fit(seqs)
    assert ext.block_layouts_ == {"act": None}


def test_layout_known_from_module(seqs):
    net = TinyEncoder()
    tokens = captured(net, "enc", seqs)
    ext = BlockFeatureExtractor(net, ["enc", "head"]).fit(seqs)
    assert ext.block_layouts_ == {"enc": "tokens", "head": None}
    np.testing.assert_allclose(ext.transform(seqs)[:, :D], tokens.mean(1).numpy(), rtol=1e-5,
                               atol=1e-6)
    assert known_layout(nn.BatchNorm1d(3)) == "channels_first"
    assert known_layout(nn.Transformer(8, 2, 1, 1, batch_first=True)) == "tokens"
    assert known_layout(nn.Linear(2, 2)) is None


def test_stated_channels_first_and_layout_errors(seqs):
    net = TinyEncoder()
    tokens = captured(net, "act", seqs)
    ext = BlockFeatureExtractor(net, "act", layout="channels_first").fit(seqs)
    np.testing.assert_allclose(ext.transform(seqs), tokens.mean(2).numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="keeps one token.*layout='tokens'"):
        BlockFeatureExtractor(net, "act", reduce="cls", layout="channels_first").fit(seqs)
    with pytest.raises(ValueError, match="layout must be None, one of"):
        BlockFeatureExtractor(net, "act", layout="nlc").fit(seqs)
    with pytest.raises(ValueError, match=r"\['enc'\] are not among the blocks"):
        BlockFeatureExtractor(net, "act", layout={"enc": "tokens"}).fit(seqs)
    images = np.zeros((2, 1, 4, 4), np.float32)
    conv = nn.Sequential(nn.Conv2d(1, 2, 3))
    with pytest.raises(ValueError, match="layout='tokens' expects"):
        BlockFeatureExtractor(conv, "0", layout="tokens").fit(images)


class SeqFirst(nn.Module):
    """Batch-first input (n, T, D) run through a batch_first=False encoder "enc"."""

    def __init__(self):
        super().__init__()
        self.enc = TinyEncoder(batch_first=False).enc

    def forward(self, x):
        return self.enc(x.transpose(0, 1))  # (T, n, D)


def test_sequence_first_transformer_is_reported():
    net, X = SeqFirst(), np.random.default_rng(1).normal(size=(4, 6, D)).astype(np.float32)
    with pytest.raises(ValueError, match=r"\(6, 1, 8\), whose first axis is not the 1 "):
        BlockFeatureExtractor(net, "enc").fit(X)
    with pytest.raises(ValueError, match="batch_first=False: its output is"):
        # Fed batch first, a batch_first=False encoder keeps the shape but mixes samples.
        BlockFeatureExtractor(TinyEncoder(batch_first=False), "enc").fit(
            np.zeros((4, 6, 3), np.float32))
    # the documented fix: transpose in select, state the layout
    ext = BlockFeatureExtractor(net, "enc", select=_to_batch_first, layout="tokens")
    expected = captured(net, "enc", X).transpose(0, 1).mean(1)
    np.testing.assert_allclose(ext.fit_transform(X), expected.numpy(), rtol=1e-5, atol=1e-6)


def _to_batch_first(out):
    return out.transpose(0, 1)


Pair = namedtuple("Pair", ["hidden", "pooled"])


@dataclasses.dataclass
class Output:
    last_hidden_state: torch.Tensor
    attentions: tuple = None


class Structured(nn.Module):
    """Wraps TinyEncoder; its block "out" returns ``kind`` of (tokens, pooled)."""

    def __init__(self, kind):
        super().__init__()
        self.net = TinyEncoder()
        self.out = Wrap(kind)

    def forward(self, x):
        result = self.out(self.net.enc(self.net.embed(x)))
        return result


class Wrap(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def forward(self, tokens):
        pooled = tokens.mean(1)
        return {
            "tuple": lambda: (tokens, pooled),
            "dict": lambda: {"hidden": tokens, "pooled": pooled, "mask": None},
            "namedtuple": lambda: Pair(tokens, pooled),
            "attribute": lambda: Output(tokens, (pooled,)),
        }[self.kind]()


@pytest.mark.parametrize("kind, select, listed", [
    ("tuple", 0, ["tuple of 2 items", "[0]: tensor of shape (1, 5, 8)",
                  "[1]: tensor of shape (1, 8)"]),
    ("dict", "hidden", ["dict with keys", "'hidden': tensor of shape (1, 5, 8)",
                        "'mask': None"]),
    ("namedtuple", "hidden", ["namedtuple Pair", "'pooled' / [1]: tensor of shape (1, 8)"]),
    ("attribute", "last_hidden_state", ["dataclass Output",
                                        "'last_hidden_state': tensor of shape (1, 5, 8)"]),
])
def test_structured_outputs_with_and_without_selector(seqs, kind, select, listed):
    model = Structured(kind)
    tokens = captured(model.net, "enc", seqs)
    ext = BlockFeatureExtractor(model, "out", reduce="cls", select=select, layout="tokens")
    np.testing.assert_allclose(ext.fit_transform(seqs), tokens[:, 0].numpy(), rtol=1e-5,
                               atol=1e-6)
    # the whole model is the block "": select works on the model's own output
    whole = BlockFeatureExtractor(model, "", reduce="avg", select={"": select},
                                  layout={"": "tokens"})
    np.testing.assert_allclose(whole.fit_transform(seqs), tokens.mean(1).numpy(), rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(TypeError, match="structured output, not a tensor") as info:
        BlockFeatureExtractor(model, "out", layout="tokens").fit(seqs)
    for text in listed:
        assert text in str(info.value)


def test_selector_errors_list_the_output(seqs):
    model = Structured("dict")
    with pytest.raises(ValueError, match="(?s)select='hiden' found nothing.*'hidden'"):
        BlockFeatureExtractor(model, "out", select="hiden").fit(seqs)
    with pytest.raises(TypeError, match="select='mask' picked NoneType.*must pick a tensor"):
        BlockFeatureExtractor(model, "out", select="mask").fit(seqs)
    with pytest.raises(ValueError, match="select must be None, a key"):
        BlockFeatureExtractor(model, "out", select=1.5).fit(seqs)
    callable_pick = BlockFeatureExtractor(model, "out", select=_pooled).fit(seqs)
    assert callable_pick.block_layouts_ == {"out": None}
    assert callable_pick.transform(seqs).shape == (11, D)


def _pooled(out):
    return out["pooled"]


def test_multihead_attention_tuple(seqs):
    """nn.MultiheadAttention returns (output, weights): select=0 takes the output."""

    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.embed = nn.Linear(3, D)
            self.attn = nn.MultiheadAttention(D, 2, batch_first=True)

        def forward(self, x):
            h = self.embed(x)
            return self.attn(h, h, h)[0]

    net = Attn()
    with pytest.raises(TypeError, match=r"\[1\]: tensor of shape \(1, 5, 5\)"):
        BlockFeatureExtractor(net, "attn").fit(seqs)
    expected = captured(net, "attn", seqs, pick=lambda out: out[0]).amax(1)
    ext = BlockFeatureExtractor(net, "attn", reduce="max", select=0, layout="tokens")
    np.testing.assert_allclose(ext.fit_transform(seqs), expected.numpy(), rtol=1e-5,
                               atol=1e-6)


def test_iter_block_batches_with_layout_and_select(seqs):
    model = Structured("tuple")
    tokens = captured(model.net, "enc", seqs)
    batches = list(iter_block_batches(model, ["out"], seqs, reduce="cls", select=0,
                                      layout="tokens", batch_size=4))
    assert [start for start, _ in batches] == [0, 4, 8]
    got = torch.cat([out["out"] for _, out in batches])
    torch.testing.assert_close(got, tokens[:, 0], rtol=1e-5, atol=1e-6)


def test_new_parameters_clone_and_pickle(seqs):
    ext = BlockFeatureExtractor(TinyEncoder(), "act", reduce=["cls", Token(2)],
                                layout={"act": "tokens"}, select=None)
    params = clone(ext).get_params()
    assert params["layout"] == {"act": "tokens"} and params["reduce"] == ["cls", Token(2)]
    ext.fit(seqs)
    again = pickle.loads(pickle.dumps(ext))
    np.testing.assert_array_equal(again.transform(seqs), ext.transform(seqs))


def test_describe_output_of_a_plain_object():
    class Holder:
        def __init__(self):
            self.logits = torch.zeros(2, 3)
            self._private = 1

    assert describe_output(Holder()) == ("Holder with attributes:\n"
                                         "  'logits': tensor of shape (2, 3)")
