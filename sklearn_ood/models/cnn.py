"""A small, fast VGG-style CNN for 8x8 to 28x28 images."""

from torch import nn

from .resnet import _init_weights, _make_head

__all__ = ["SmallCNN"]


def _conv_bn_relu(in_channels, out_channels, stride=1):
    return [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    ]


def _block(in_channels, out_channels, stride):
    return nn.Sequential(
        *_conv_bn_relu(in_channels, out_channels, stride),
        *_conv_bn_relu(out_channels, out_channels),
    )


class SmallCNN(nn.Module):
    """Three-block convolutional classifier, quick to train on CPU.

    Each block is conv3x3-BN-ReLU followed by conv3x3-BN-ReLU; ``block2`` and
    ``block3`` start with a stride-2 convolution and double the width. Any
    input of spatial size 8x8 or larger works (8x8 ends at 2x2, 28x28 at 7x7).

    Named modules, in the order ``forward`` calls them (forward hooks on any of
    them fire once per call):

    ===============  ==========================================================
    name             output
    ===============  ==========================================================
    ``block1``       ``(N, width, H, W)``, post-ReLU
    ``block2``       ``(N, 2*width, ceil(H/2), ceil(W/2))``, post-ReLU
    ``block3``       ``(N, 4*width, ceil(H/4), ceil(W/4))``, post-ReLU
    ``avgpool``      ``nn.AdaptiveAvgPool2d(1)``, ``(N, 4*width, 1, 1)``
    ``flatten``      pooled feature ``h``, ``(N, feature_dim)``
    ``penultimate``  ``h / ||h||_2`` if ``l2_normalize`` else ``h``
    ``fc``           logits ``(N, num_classes)``
    ===============  ==========================================================

    Parameters
    ----------
    num_classes : int, default=10
        Number of output logits.
    in_channels : int, default=1
        Channels of the input images.
    width : int, default=32
        Channels of ``block1``; ``block2`` and ``block3`` have 2x and 4x.
    l2_normalize : bool, default=False
        If True, the pooled feature is L2-normalised before ``fc``.

    Attributes
    ----------
    feature_dim : int
        Dimension of the penultimate feature (the input of ``fc``), ``4 * width``.
    block_names : tuple of str
        ``("block1", "block2", "block3")``.

    See Also
    --------
    ResNet : The CIFAR-style ResNet with the same head.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.models import SmallCNN
    >>> net = SmallCNN(num_classes=10, width=8, l2_normalize=True)
    >>> net(torch.zeros(4, 1, 8, 8)).shape
    torch.Size([4, 10])
    >>> net.feature_dim
    32
    """

    block_names = ("block1", "block2", "block3")

    def __init__(self, num_classes=10, *, in_channels=1, width=32, l2_normalize=False):
        super().__init__()
        if width < 1 or in_channels < 1 or num_classes < 1:
            raise ValueError(
                "num_classes, in_channels and width must be positive; got "
                f"num_classes={num_classes}, in_channels={in_channels}, width={width}."
            )
        self.l2_normalize = bool(l2_normalize)
        self.feature_dim = 4 * width
        self.block1 = _block(in_channels, width, stride=1)
        self.block2 = _block(width, 2 * width, stride=2)
        self.block3 = _block(2 * width, 4 * width, stride=2)
        self.avgpool, self.flatten, self.penultimate, self.fc = _make_head(
            self.feature_dim, num_classes, self.l2_normalize
        )
        _init_weights(self)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(x)))
        h = self.penultimate(self.flatten(self.avgpool(x)))
        return self.fc(h)
