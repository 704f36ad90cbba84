"""CIFAR-style ResNet with an optional L2-normalised penultimate feature."""

from torch import nn

__all__ = ["L2Normalize", "ResNet", "resnet18"]


class L2Normalize(nn.Module):
    """Scale every row of a ``(N, D)`` tensor to unit Euclidean norm.

    Computes ``x / max(||x||_2, eps)`` along ``dim``. Used as the
    ``penultimate`` block of :class:`ResNet` and :class:`SmallCNN` when
    ``l2_normalize=True`` (Haas et al., 2023).

    Parameters
    ----------
    eps : float, default=1e-12
        Lower bound on the norm, so that an all-zero row stays zero instead
        of becoming NaN.
    dim : int, default=1
        Dimension along which the norm is taken.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.models import L2Normalize
    >>> L2Normalize()(torch.tensor([[3.0, 4.0]]))
    tensor([[0.6000, 0.8000]])
    """

    def __init__(self, eps=1e-12, dim=1):
        super().__init__()
        self.eps = eps
        self.dim = dim

    def forward(self, x):
        return x / x.norm(dim=self.dim, keepdim=True).clamp_min(self.eps)

    def extra_repr(self):
        return f"eps={self.eps}, dim={self.dim}"


def _conv3x3(in_channels, out_channels, stride=1):
    return nn.Conv2d(
        in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity or 1x1-conv shortcut.

    The output is ``relu2(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x))``,
    i.e. post-ReLU. ReLUs are separate, non in-place modules so that hooks on
    any sub-module see unmodified tensors.
    """

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


def _make_head(feature_dim, num_classes, l2_normalize):
    """Return the ``(avgpool, flatten, penultimate, fc)`` modules shared by the models."""
    penultimate = L2Normalize() if l2_normalize else nn.Identity()
    return (
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        penultimate,
        nn.Linear(feature_dim, num_classes),
    )


def _init_weights(module):
    """Kaiming-normal convolutions, unit/zero BatchNorm, default-initialised linear layers."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ResNet(nn.Module):
    """CIFAR-style ResNet (He et al., 2016) of BasicBlocks.

    A 3x3 stride-1 stem without max-pooling followed by four stages of
    :class:`BasicBlock` with strides 1, 2, 2, 2 and widths
    ``width * (1, 2, 4, 8)``, global average pooling and a linear classifier.
    The default ``blocks=(2, 2, 2, 2)`` is the ResNet-18 layout. Any input of
    spatial size 8x8 or larger works (8x8 ends at 1x1 after ``layer4``,
    32x32 at 4x4).

    Named modules, in the order ``forward`` calls them (forward hooks on any of
    them fire once per call):

    ========================  =====================================================
    name                      output
    ========================  =====================================================
    ``conv1``, ``bn1``        stem convolution and its BatchNorm
    ``relu``                  stem output (post-ReLU)
    ``layer1`` .. ``layer4``  stage outputs ``(N, width*2**i, H_i, W_i)``, post-ReLU
    ``layerS.B``              output of BasicBlock ``B`` of stage ``S``, post-ReLU
    ``avgpool``               ``nn.AdaptiveAvgPool2d(1)``, ``(N, C, 1, 1)``
    ``flatten``               pooled feature ``h``, ``(N, feature_dim)``
    ``penultimate``           ``h / ||h||_2`` if ``l2_normalize`` else ``h``
    ``fc``                    logits ``(N, num_classes)``
    ========================  =====================================================

    The input of ``fc`` is always the output of ``penultimate``.

    Parameters
    ----------
    num_classes : int, default=10
        Number of output logits.
    in_channels : int, default=3
        Channels of the input images.
    width : int, default=64
        Channels of the stem and of ``layer1``; later stages double it.
    blocks : tuple of 4 int, default=(2, 2, 2, 2)
        Number of BasicBlocks in ``layer1`` .. ``layer4``.
    l2_normalize : bool, default=False
        If True, the pooled feature is L2-normalised before ``fc``, during
        training and inference (Haas et al., 2023).

    Attributes
    ----------
    feature_dim : int
        Dimension of the penultimate feature (the input of ``fc``), ``8 * width``.
    block_names : tuple of str
        Names of every BasicBlock (``"layer1.0"``, ``"layer1.1"``, ...), in
        forward order; each output is post-ReLU.

    See Also
    --------
    SmallCNN : A faster three-block CNN with the same head.
    resnet18 : ``ResNet`` with the ResNet-18 layout.

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image
       Recognition", CVPR 2016.
    .. [2] J. Haas, W. Yolland, B. Rabus, "Linking Neural Collapse and L2
       Normalization with Improved Out-of-Distribution Detection in Deep
       Neural Networks", TMLR 2023.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ood.models import ResNet
    >>> net = ResNet(num_classes=10, in_channels=1, width=8, l2_normalize=True)
    >>> net.feature_dim
    64
    >>> net(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    >>> net.block_names[:3]
    ('layer1.0', 'layer1.1', 'layer2.0')
    """

    def __init__(
        self, num_classes=10, *, in_channels=3, width=64, blocks=(2, 2, 2, 2),
        l2_normalize=False,
    ):
        super().__init__()
        blocks = tuple(int(b) for b in blocks)
        if len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(
                f"blocks must be 4 positive integers (blocks per stage); got {blocks}."
            )
        if width < 1 or in_channels < 1 or num_classes < 1:
            raise ValueError(
                "num_classes, in_channels and width must be positive; got "
                f"num_classes={num_classes}, in_channels={in_channels}, width={width}."
            )
        self.l2_normalize = bool(l2_normalize)
        self.feature_dim = 8 * width

        self.conv1 = _conv3x3(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        channels = width
        names = []
        for stage, (n_blocks, stride) in enumerate(zip(blocks, (1, 2, 2, 2)), start=1):
            out_channels = width * 2 ** (stage - 1)
            layers = []
            for i in range(n_blocks):
                layers.append(BasicBlock(channels, out_channels, stride if i == 0 else 1))
                channels = out_channels
                names.append(f"layer{stage}.{i}")
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
        self.block_names = tuple(names)
        self.avgpool, self.flatten, self.penultimate, self.fc = _make_head(
            self.feature_dim, num_classes, self.l2_normalize
        )
        _init_weights(self)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        h = self.penultimate(self.flatten(self.avgpool(x)))
        return self.fc(h)


def resnet18(**kwargs):
    """ResNet-18 layout: :class:`ResNet` with ``blocks=(2, 2, 2, 2)``.

    Parameters
    ----------
    **kwargs
        Passed to :class:`ResNet` (``num_classes``, ``in_channels``, ``width``,
        ``l2_normalize``).

    Returns
    -------
    ResNet

    Examples
    --------
    >>> from sklearn_ood.models import resnet18
    >>> resnet18(num_classes=10).feature_dim
    512
    """
    if "blocks" in kwargs:
        raise TypeError("resnet18 fixes blocks=(2, 2, 2, 2); use ResNet(blocks=...) instead.")
    return ResNet(blocks=(2, 2, 2, 2), **kwargs)
