"""EfficientNet with named feature taps, built on efficientnet-pytorch without forking it.

Taps (MAT.md §2): `b0` = stem output, `b1`..`b7` = output of each of the 7 block groups
("stages"), `final` = head conv + BN + swish, `logits` = the backbone's own classifier on the
average-pooled `final`. The forward pass walks `_blocks` with a stage map computed from the
package's own block arguments, so weights keep efficientnet-pytorch's module names.

ImageNet initialisation: efficientnet-pytorch's released `.pth` state dicts, the standard ones
(`efficientnet-bX-*.pth`, trained on ImageNet-normalised input) and the AdvProp ones
(`adv-efficientnet-bX-*.pth`, trained on (x - 0.5) / 0.5; the authors start from these). They are
never downloaded: a file is given, or found in torch hub's cache.
"""

from __future__ import annotations

import glob
import math
import re
from pathlib import Path

import torch
from efficientnet_pytorch import EfficientNet
from efficientnet_pytorch.utils import (
    Conv2dStaticSamePadding,
    get_model_params,
    round_filters,
    round_repeats,
)
from torch import nn

from deepfake_cli.errors import UsageError, WeightsError
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

    def load_imagenet(self, state: dict[str, torch.Tensor]) -> int:
        """Copy ImageNet weights (`read_imagenet_weights`) into every tensor but the classifier
        (`_fc`: 1000 ImageNet classes, not real/fake) -> the number of tensors copied.

        Raises:
            WeightsError: a tensor of the backbone is missing from `state` or has another shape.
        """
        own = {key: value for key, value in self.state_dict().items() if not key.startswith("_fc.")}
        misfit = next(
            (k for k, v in own.items() if k not in state or state[k].shape != v.shape), None
        )
        if misfit is not None:
            raise WeightsError(f"the ImageNet weights lack {misfit!r} (or it has another shape).")
        self.load_state_dict({key: state[key] for key in own}, strict=False)
        return len(own)


# --- ImageNet weights -----------------------------------------------------------------------------


def efficientnet_signature(name: str) -> tuple[int, int]:
    """(channels of `_conv_head`, number of `_blocks`) of an EfficientNet variant: unique per
    variant (B0 and B1 share the head width but not the depth)."""
    blocks_args, global_params = get_model_params(name, None)
    blocks = sum(round_repeats(args.num_repeat, global_params) for args in blocks_args)
    return round_filters(1280, global_params), blocks


def efficientnet_variant(state: dict[str, torch.Tensor]) -> str | None:
    """Which efficientnet-pytorch variant a state dict holds, read off its tensors' shapes;
    None when it is not an efficientnet-pytorch EfficientNet."""
    head = state.get("_conv_head.weight")
    if "_conv_stem.weight" not in state or head is None or head.dim() != 4:
        return None
    block_numbers = {int(m.group(1)) for key in state if (m := re.match(r"_blocks\.(\d+)\.", key))}
    signature = (int(head.shape[0]), len(block_numbers))
    return next((n for n in NATIVE_INPUT_SIZE if efficientnet_signature(n) == signature), None)


def find_imagenet_weights(backbone: str) -> Path | None:
    """efficientnet-pytorch's ImageNet file for `backbone` in torch hub's cache, if any; the
    AdvProp file (the authors' choice) before the standard one."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    for pattern in (f"adv-{glob.escape(backbone)}-*.pth", f"{glob.escape(backbone)}-*.pth"):
        matches = sorted(glob.glob(str(folder / pattern)))
        if matches:
            return Path(matches[0])
    return None


def read_imagenet_weights(path: str | Path, backbone: str) -> dict[str, torch.Tensor]:
    """The state dict of an efficientnet-pytorch ImageNet (or AdvProp) `.pth` for `backbone`.

    Read with `torch.load(weights_only=True)` (a pickle runs code otherwise) and recognised by
    its content: efficientnet-pytorch's tensor names, and the variant from the shapes.

    Raises:
        UsageError: no such file, or it holds another variant than `backbone`.
        WeightsError: it cannot be read safely, or it is not an efficientnet-pytorch state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--backbone-weights {path} does not exist.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the same user error
        if str(error).startswith("Weights only load failed"):
            raise WeightsError(
                f"{path} holds Python objects besides tensors; ImageNet weights are read only as "
                "a plain state dict (torch.load with weights_only=True)."
            ) from None
        hint = " (mattn weights start a run with --init)" if path.suffix == ".safetensors" else ""
        raise WeightsError(f"{path} is not a torch .pth file{hint}.") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} holds no state dict of tensors.")
    state = {key.removeprefix("module."): value for key, value in state.items()}
    variant = efficientnet_variant(state)
    if variant is None:
        raise WeightsError(
            f"{path} is not an efficientnet-pytorch EfficientNet state dict (no _conv_stem, "
            "_blocks.N and _conv_head tensors of a known variant)."
        )
    if variant != backbone:
        raise UsageError(
            f"{path} holds {variant} weights, but the backbone is {backbone} (set --backbone "
            f"{variant} or give {backbone} weights)."
        )
    return state
