"""The inference form of a detector: the same function, without what only training needs.

Measured on a 2-core CPU (B4 at 380, bf16): about half of an eager MAT forward is overhead that
inference does not need: batch norms that could be folded into the convolution before them,
efficientnet-pytorch's Swish run as two ops (sigmoid, then mul), and the dtype copies autocast
inserts before every op. `inference_form` returns a copy that

- folds every batch norm that directly follows a convolution into that convolution's weights
  and bias (backbone stem, every MBConv block, head; the attention branch; the texture
  branch's last 1x1), leaving an identity in its place;
- runs the texture branch's dense block without building its concatenations;
- runs Swish as one fused `nn.SiLU`, and lets convolutions pad symmetric inputs themselves;
- optionally holds its weights in bf16 once, so no op casts them again.

The training module is never changed: training and the fidelity tests against the authors'
code use `MATDetector` as built. Folding changes results only by float rounding (a test holds
|delta logit| small in fp32).
"""

from __future__ import annotations

import copy

import torch
from efficientnet_pytorch.model import MBConvBlock
from efficientnet_pytorch.utils import Conv2dStaticSamePadding
from torch import nn

from deepfake_cli.model.mat import MATDetector
from deepfake_cli.model.texture import TextureEnhancement


def fold_batch_norm(conv: nn.Conv2d, batch_norm: nn.BatchNorm2d) -> None:
    """Fold an eval-mode `batch_norm` that directly follows `conv` into `conv`, in place.

    BN(conv(x)) = gamma * (W x + b - mean) / sqrt(var + eps) + beta, which is a convolution with
    weight W * s and bias (b - mean) * s + beta, where s = gamma / sqrt(var + eps) per output
    channel. Computed in float64 so the fold adds no rounding of its own.
    """
    if batch_norm.running_mean is None or batch_norm.running_var is None:
        raise ValueError("only a batch norm with running statistics can be folded")
    weight = conv.weight.detach().double()
    scale = batch_norm.running_var.double().add(batch_norm.eps).rsqrt()
    if batch_norm.weight is not None:
        scale = scale * batch_norm.weight.detach().double()
    bias = (
        conv.bias.detach().double()
        if conv.bias is not None
        else torch.zeros(conv.out_channels, dtype=torch.float64, device=weight.device)
    )
    shift = batch_norm.bias.detach().double() if batch_norm.bias is not None else 0.0
    folded_bias = (bias - batch_norm.running_mean.double()) * scale + shift
    # (C_out,) -> (C_out, 1, 1, 1) to scale every output channel's kernel.
    folded_weight = weight * scale.view(-1, 1, 1, 1)
    conv.weight = nn.Parameter(folded_weight.to(conv.weight.dtype), requires_grad=False)
    conv.bias = nn.Parameter(folded_bias.to(conv.weight.dtype), requires_grad=False)


def _fold(owner: nn.Module, conv_name: str, norm_name: str) -> None:
    """Fold `owner.<norm_name>` into `owner.<conv_name>` and leave an identity in its place."""
    fold_batch_norm(getattr(owner, conv_name), getattr(owner, norm_name))
    setattr(owner, norm_name, nn.Identity())


def _fold_block(block: MBConvBlock) -> None:
    """An MBConv block: expansion, depthwise and projection convolutions each feed one BN."""
    if block._block_args.expand_ratio != 1:
        _fold(block, "_expand_conv", "_bn0")
    _fold(block, "_depthwise_conv", "_bn1")
    _fold(block, "_project_conv", "_bn2")


def _fold_detector(detector: MATDetector) -> None:
    """Fold every conv -> BN pair of the detector in place."""
    backbone = detector.backbone
    _fold(backbone, "_conv_stem", "_bn0")
    for block in backbone._blocks:
        _fold_block(block)
    _fold(backbone, "_conv_head", "_bn1")
    if detector.config.variant == "backbone":
        return
    _fold(detector.attentions, "conv_extract", "bn1")
    _fold(detector.attentions, "conv2", "bn2")
    # The texture dense block is pre-activation (BN -> ReLU -> conv, and each conv's raw output
    # is also concatenated onward), so only its last 1x1 conv feeds a BN alone.
    _fold(detector.texture_enhance, "conv_last", "bn_last")


class SplitDenseBlock(nn.Module):
    """The texture dense block without its concatenations: the same sums, piece by piece.

    In the dense block, layer k convolves BN -> ReLU of the per-group concatenation of all
    earlier outputs. A grouped convolution of a concatenation is the sum of grouped
    convolutions of its pieces (the kernel split along its input channels), and a batch norm of
    a concatenation is a batch norm of each piece, so the block can run without ever building
    the concatenated tensors. On a 2-core CPU (B4 at 380, bf16) the concatenations and the
    layout copies they force were over half of the texture branch's time.
    """

    def __init__(self, texture: TextureEnhancement) -> None:
        super().__init__()
        m = texture.num_attentions
        n = texture.conv0.out_channels // m
        self.conv0 = texture.conv0
        # An identity once `_fold_detector` has folded it into conv_last.
        self.last_norm = texture.bn_last
        layers = [
            (texture.bn1, texture.conv1),
            (texture.bn2, texture.conv2),
            (texture.bn3, texture.conv3),
            (texture.bn4, texture.conv_last),
        ]
        self.norms = nn.ModuleList()
        self.convs = nn.ModuleList()
        for num_pieces, (batch_norm, conv) in enumerate(layers, start=1):
            self.norms.append(
                nn.ModuleList(
                    _norm_piece(batch_norm, n, m, num_pieces, p) for p in range(num_pieces)
                )
            )
            self.convs.append(
                nn.ModuleList(_conv_piece(conv, n, p, bias=p == 0) for p in range(num_pieces))
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pieces = [self.conv0(x)]  # x0, then x1, x2, x3: each (B, M*N, H, W)
        for norms, convs in zip(self.norms, self.convs, strict=True):
            output = None
            for piece, norm, conv in zip(pieces, norms, convs, strict=False):
                term = conv(torch.relu(norm(piece)))
                output = term if output is None else output.add_(term)
            pieces.append(output)
        # The last layer is conv_last (its pieces summed), then bn_last and a ReLU.
        return torch.relu(self.last_norm(pieces[-1]))


class InferenceTexture(TextureEnhancement):
    """`TextureEnhancement` with its dense block run piece by piece (same inputs and outputs).

    Its `forward` and `gated_residual` are the original's; only `dense_block` differs.
    """

    def __init__(self, texture: TextureEnhancement) -> None:
        # Not TextureEnhancement.__init__: that would build fresh layers; these are taken over.
        nn.Module.__init__(self)
        self.block = SplitDenseBlock(texture)
        # Only the gated residual's convolution is still needed from the original module.
        self.conv_extract = texture.conv_extract
        self.num_attentions = texture.num_attentions

    def dense_block(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


def _norm_piece(
    batch_norm: nn.BatchNorm2d, n: int, m: int, num_pieces: int, piece: int
) -> nn.BatchNorm2d:
    """The channels of `batch_norm` that fall on `piece` of a per-group concatenation.

    The concatenation holds, for each group g, the N channels of piece 0, then piece 1, ...;
    so piece p's channel g*N + f sits at g*(num_pieces*N) + p*N + f.
    """
    channels = torch.tensor(
        [g * num_pieces * n + piece * n + f for g in range(m) for f in range(n)]
    )
    norm = nn.BatchNorm2d(n * m, eps=batch_norm.eps)
    norm.eval()
    with torch.no_grad():
        norm.weight.copy_(batch_norm.weight[channels])
        norm.bias.copy_(batch_norm.bias[channels])
        norm.running_mean.copy_(batch_norm.running_mean[channels])
        norm.running_var.copy_(batch_norm.running_var[channels])
    return norm


def _conv_piece(conv: nn.Conv2d, n: int, piece: int, *, bias: bool) -> nn.Conv2d:
    """The part of grouped `conv` that reads `piece` (input channels p*N..(p+1)*N of a group)."""
    part = nn.Conv2d(
        conv.out_channels // conv.groups * conv.groups,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        padding=conv.padding,
        groups=conv.groups,
        bias=bias and conv.bias is not None,
    )
    # Built with N*M inputs, so its weight is (C_out, N, kh, kw), one N-slice per group.
    with torch.no_grad():
        part.weight.copy_(conv.weight[:, piece * n : (piece + 1) * n])
        if part.bias is not None:
            part.bias.copy_(conv.bias)
    return part


def _pad_inside_convolutions(module: nn.Module) -> None:
    """Let each convolution pad its input itself where its "same" padding is symmetric.

    efficientnet-pytorch pads with a separate ZeroPad2d before every convolution; that is a
    copy of the whole feature map, and in channels_last it also costs a layout conversion. A
    symmetric padding is the convolution's own `padding` argument, computed without the copy.
    Asymmetric ones (stride 2 at even sizes) keep their ZeroPad2d.
    """
    for conv in module.modules():
        if not isinstance(conv, Conv2dStaticSamePadding):
            continue
        padding = getattr(conv.static_padding, "padding", None)
        if padding is None:
            continue
        left, right, top, bottom = padding
        if left == right and top == bottom:
            conv.padding = (top, left)
            conv.static_padding = nn.Identity()


def _fuse_swish(module: nn.Module) -> None:
    """Replace every efficientnet-pytorch Swish attribute (`_swish`) with one fused SiLU."""
    for child in module.modules():
        if hasattr(child, "_swish"):
            child._swish = nn.SiLU()


def inference_form(detector: MATDetector, *, dtype: torch.dtype | None = None) -> MATDetector:
    """A folded, fused copy of `detector` in eval mode (optionally with `dtype` weights).

    The copy computes the same logits up to float rounding; it cannot be trained (folded batch
    norms have no statistics left to update) and is never saved.
    """
    was_training = detector.training
    detector.eval()
    inference_detector = copy.deepcopy(detector)
    detector.train(was_training)
    _fold_detector(inference_detector)
    if inference_detector.config.variant != "backbone":
        inference_detector.texture_enhance = InferenceTexture(inference_detector.texture_enhance)
    _fuse_swish(inference_detector)
    _pad_inside_convolutions(inference_detector)
    inference_detector.requires_grad_(False)
    if dtype is not None:
        inference_detector = inference_detector.to(dtype)
    return inference_detector
