"""
OOD detection with a small vision transformer: token layouts and the class token.
=================================================================================

A vision transformer (ViT) written in plain torch -- patch embedding, a class
token and position embeddings, pre-norm encoder blocks, a final LayerNorm and
a linear head on the class token -- is trained for a few seconds on
scikit-learn's 8x8 digits 0-7 (in-distribution, ID), cut into 2x2 patches
(16 patch tokens plus the class token). Digits 8-9 (near-OOD) and patches of
scikit-learn's sample photos (far-OOD) are the OOD sets
(:func:`~sklearn_ood.datasets.load_digits_ood`, no download).

Its blocks output token sequences ``(n_samples, n_tokens, n_features)``, not
the channels-first maps of a CNN, so the
:class:`~sklearn_ood.BlockFeatureExtractor` is told so with
``layout="tokens"``; then:

* the class token after the final LayerNorm (``reduce="cls"``) is the feature
  the head reads: :class:`~sklearn_ood.Energy` with the model's own head,
  :class:`~sklearn_ood.KNN` and :class:`~sklearn_ood.Mahalanobis` use it;
* the mean over tokens (``reduce="avg"``) of the same block, for KNN and
  Mahalanobis, as a comparison;
* :class:`~sklearn_ood.NegativeAwareNorm` reads the GELU hidden layer of the
  last block's MLP, over every token (``reduce="negative_aware_norm"``).

The script prints AUROC and FPR at 95 % TPR (ID positive) for each detector
and OOD set; higher scores mean "more in-distribution".

    python examples/vision_transformer.py --epochs 40
"""

import argparse
import sys
import time

import numpy as np
import torch
from torch import nn

from sklearn_ood import KNN, BlockFeatureExtractor, Energy, Mahalanobis, NegativeAwareNorm
from sklearn_ood.datasets import load_digits_ood
from sklearn_ood.metrics import auroc, fpr_at_tpr


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim, heads, mlp_ratio=2):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(),
                                 nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]  # attn returns (output, weights)
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Vision transformer for small gray images ``(n, 1, side, side)``."""

    def __init__(self, *, side=8, patch=2, dim=32, depth=2, heads=4, num_classes=8):
        super().__init__()
        self.patch_embed = nn.Conv2d(1, dim, patch, stride=patch)  # one token per patch
        n_tokens = (side // patch) ** 2 + 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, n_tokens, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (n, patches, dim)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1)
        tokens = self.norm(self.blocks(tokens + self.pos_embed))  # (n, 1 + patches, dim)
        return self.head(tokens[:, 0])  # classify from the class token


def train(net, X, y, *, epochs, seed, batch_size=64, lr=3e-3):
    """Plain Adam with cosine decay; returns the network in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * -(-len(X) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    net.train()
    for _ in range(epochs):
        for rows in torch.randperm(len(X), generator=generator).split(batch_size):
            loss = nn.functional.cross_entropy(net(X[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return net.eval()


def detectors(net):
    """(name, extractor, detector, needs labels) for each row of the table."""
    tokens = dict(layout="tokens", batch_size=256)
    last_mlp = f"blocks.{len(net.blocks) - 1}.mlp.1"  # GELU hidden layer, (n, T, 2 * dim)
    cls = BlockFeatureExtractor(net, "norm", reduce="cls", **tokens)
    avg = BlockFeatureExtractor(net, "norm", reduce="avg", **tokens)
    return [
        ("Energy (cls, head)", cls, Energy(head=net.head), False),
        ("KNN (cls)", cls, KNN(n_neighbors=10), False),
        ("Mahalanobis (cls)", cls, Mahalanobis(), True),
        ("KNN (token mean)", avg, KNN(n_neighbors=10), False),
        ("Mahalanobis (token mean)", avg, Mahalanobis(), True),
        ("NegativeAwareNorm (MLP tokens)",
         BlockFeatureExtractor(net, last_mlp, reduce="negative_aware_norm", **tokens),
         NegativeAwareNorm(), False),
    ]


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def run(args):
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    data = load_digits_ood(random_state=args.seed)
    net = ViT(patch=args.patch, num_classes=len(data.classes))
    train(net, data.X_train, data.y_train, epochs=args.epochs, seed=args.seed)
    with torch.no_grad():
        accuracy = (net(torch.from_numpy(data.X_test)).argmax(1).numpy() == data.y_test).mean()
    n_tokens = (8 // args.patch) ** 2 + 1
    print(f"ViT: {args.patch}x{args.patch} patches, {n_tokens} tokens, "
          f"{sum(p.numel() for p in net.parameters())} parameters, {args.epochs} epochs; "
          f"test accuracy {accuracy:.3f}")

    names = list(data.ood)
    header = "".join(f"{name + ' AUROC':>22}{'FPR@95':>8}" for name in names)
    print(f"\n{'detector':<32}{header}")
    features = {}  # each extractor runs once per data set
    for label, extractor, detector, needs_y in detectors(net):
        if id(extractor) not in features:
            extractor.fit(data.X_train)
            features[id(extractor)] = {
                name: extractor.transform(X) for name, X in
                [("train", data.X_train), ("test", data.X_test), *data.ood.items()]
            }
        feats = features[id(extractor)]
        detector.fit(feats["train"], data.y_train if needs_y else None)
        id_scores = detector.score_samples(feats["test"])
        row = ""
        for name in names:
            ood_scores = detector.score_samples(feats[name])
            y = np.r_[np.zeros(len(id_scores)), -np.ones(len(ood_scores))]  # -1 = OOD
            scores = np.r_[id_scores, ood_scores]
            row += f"{100 * auroc(y, scores):>22.1f}{100 * fpr_at_tpr(y, scores):>8.1f}"
        print(f"{label:<32}{row}")
    print(f"\n(AUROC and FPR at 95 % TPR in %, ID positive; "
          f"wall time {time.perf_counter() - start:.1f} s)")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description="OOD detection with a small ViT")
    parser.add_argument("--epochs", type=_positive_int, default=40)
    parser.add_argument("--patch", type=int, choices=(2, 4), default=2,
                        help="patch side in pixels (8x8 images)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=_positive_int, default=1,
                        help="torch CPU threads for this run (default 1: a model this "
                             "small trains fastest on one)")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(args.threads)
        return run(args)
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    status = main()
    if status:  # a gallery build runs this block too: exit only on failure
        sys.exit(status)
