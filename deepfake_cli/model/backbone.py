"""EfficientNet with named feature taps, built on efficientnet-pytorch without forking it.

Taps (MAT.md §2): `b0` = stem output, `b1`..`b7` = output of each of the 7 block groups
("stages"), `final` = head conv + BN + swish, `logits` = the backbone's own classifier on the
average-pooled `final`. The forward pass walks `_blocks` with a stage map computed from the
package's own block arguments, so weights keep efficientnet-pytorch's module names.
"""

from __future__ import annotations

import math

import torch
from efficientnet_pytorch import EfficientNet
from efficientnet_pytorch.utils import Conv2dStaticSamePadding, round_repeats
from torch import nn

from deepfake_cli.model.config import NATIVE_INPUT_SIZE


def same_padding(input_size: int, kernel_size: int, stride: int, dilation: int = 1) -> tuple:
    """TensorFlow "same" padding (left, right, top, bottom) for a square input of `input_size`."""
    output_size = math.ceil(input_size / stride)
    total = max((output_size - 1) * stride + (kernel_size - 1) * dilation + 1 - input_size, 0)
    return (total // 2, total - total // 2, total // 2, total - total // 2)


class TappedEfficientNet(EfficientNet):
    """efficientnet-pytorch's EfficientNet plus `forward_taps`, which returns named features."""

    @classmethod
    def build(
        cls,
        name: str,
        *,
        input_size: int,
        num_classes: int = 2,
        dropout: float = 0.4,
        legacy_padding: bool = False,
    ) -> TappedEfficientNet:
        """A randomly initialised backbone (nothing is downloaded; load weights separately)."""
        model = cls.from_name(
            name, image_size=input_size, num_classes=num_classes, dropout_rate=dropout
        )
        # The stage map: index of the last block of each group, as the package builds them.
        stage_ends: dict[int, str] = {}
        block_index = -1
        for stage_number, block_args in enumerate(model._blocks_args, start=1):
            block_index += round_repeats(block_args.num_repeat, model._global_params)
            stage_ends[block_index] = f"b{stage_number}"
        model.stage_ends = stage_ends
        model.input_size = input_size
        if legacy_padding:
            # The authors' copy pads for the backbone's native resolution whatever the input
            # size (only the parity of the size matters for stride 2, so this differs from
            # padding for `input_size` only at odd sizes).
            model.use_legacy_padding(NATIVE_INPUT_SIZE[name])
        return model

    def use_legacy_padding(self, input_size: int) -> None:
        """Pad every convolution as if its input were `input_size` (the authors' padding).

        The authors' EfficientNet copy computes "same" padding once, for the backbone's native
        input size, and applies it at every stage; their released weights only reproduce their
        outputs with it (MAT.md §7).
        """
        for module in self.modules():
            if isinstance(module, Conv2dStaticSamePadding):
                padding = same_padding(
                    input_size, module.kernel_size[0], module.stride[0], module.dilation[0]
                )
                module.static_padding = nn.ZeroPad2d(padding) if any(padding) else nn.Identity()

    def forward_taps(self, images: torch.Tensor, taps: set[str] | None = None) -> dict:
        """Run the backbone and return the requested taps (all of them when `taps` is None).

        Stops early once every requested tap is computed, so a model that needs only shallow
        features does not pay for the head.
        """
        wanted = set(taps) if taps is not None else None
        features: dict[str, torch.Tensor] = {}

        def done() -> bool:
            return wanted is not None and wanted.issubset(features)

        x = self._swish(self._bn0(self._conv_stem(images)))
        features["b0"] = x
        num_blocks = len(self._blocks)
        for index, block in enumerate(self._blocks):
            drop_connect_rate = self._global_params.drop_connect_rate
            if drop_connect_rate:
                # Stochastic depth grows linearly with depth, as efficientnet-pytorch does it.
                drop_connect_rate *= float(index) / num_blocks
            x = block(x, drop_connect_rate=drop_connect_rate)
            if index in self.stage_ends:
                features[self.stage_ends[index]] = x
                if done():
                    return features
        x = self._swish(self._bn1(self._conv_head(x)))
        features["final"] = x
        if done():
            return features
        pooled = self._avg_pooling(x).flatten(start_dim=1)  # (B, C_final)
        features["logits"] = self._fc(self._dropout(pooled))
        return features

    @property
    def final_channels(self) -> int:
        return self._conv_head.out_channels
