"""MTCNN's three networks with facenet-pytorch's pretrained weights.

PNet proposes face boxes over an image pyramid, RNet rescores and moves each proposal, ONet
gives the final probability, box and five landmarks (`faces.FaceDetector` runs the stages).
The layers are those of the weight files facenet-pytorch ships (`facenet_pytorch/data/
{pnet,rnet,onet}.pt`, converted from the original MTCNN's Caffe models); the parameter names
are theirs, so those files load as they are. `tests/test_mtcnn.py` checks that every network
gives facenet-pytorch's outputs bit for bit.

The networks are defined here rather than imported from facenet-pytorch because importing its
`models` package imports torchvision (for one NMS call), which on this project's CPU machines
took about 2 s and 170 MB of memory of every `mattn scan`. The weight files are located
without importing the package and read with `weights_only=True`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional

from deepfake_cli.errors import WeightsError

#: Where facenet-pytorch keeps the weights, relative to its package folder.
WEIGHTS_FOLDER = "data"


class PNet(nn.Module):
    """Proposal network: fully convolutional, a 12x12 window with stride 2 over a level.

    (B, 3, H, W) -> offsets (B, 4, H', W') in units of the window, probabilities (B, 2, H', W')
    of (no face, face), with H' = ceil((H - 2) / 2) - 4.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)  # face / no face
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)  # box offsets

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = functional.max_pool2d(self.prelu1(self.conv1(images)), 2, 2, ceil_mode=True)
        features = self.prelu2(self.conv2(features))
        features = self.prelu3(self.conv3(features))
        return self.conv4_2(features), torch.softmax(self.conv4_1(features), dim=1)


class RNet(nn.Module):
    """Refinement network. (B, 3, 24, 24) -> offsets (B, 4), probabilities (B, 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)  # face / no face
        self.dense5_2 = nn.Linear(128, 4)  # box offsets

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = functional.max_pool2d(self.prelu1(self.conv1(crops)), 3, 2, ceil_mode=True)
        features = functional.max_pool2d(self.prelu2(self.conv2(features)), 3, 2, ceil_mode=True)
        features = self.prelu3(self.conv3(features))  # (B, 64, 3, 3)
        features = self.prelu4(self.dense4(_caffe_flatten(features)))  # (B, 128)
        return self.dense5_2(features), torch.softmax(self.dense5_1(features), dim=1)


class ONet(nn.Module):
    """Output network. (B, 3, 48, 48) -> offsets (B, 4), landmarks (B, 10) (five x's, then five
    y's, in units of the box), probabilities (B, 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)  # face / no face
        self.dense6_2 = nn.Linear(256, 4)  # box offsets
        self.dense6_3 = nn.Linear(256, 10)  # landmarks

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = functional.max_pool2d(self.prelu1(self.conv1(crops)), 3, 2, ceil_mode=True)
        features = functional.max_pool2d(self.prelu2(self.conv2(features)), 3, 2, ceil_mode=True)
        features = functional.max_pool2d(self.prelu3(self.conv3(features)), 2, 2, ceil_mode=True)
        features = self.prelu4(self.conv4(features))  # (B, 128, 3, 3)
        features = self.prelu5(self.dense5(_caffe_flatten(features)))  # (B, 256)
        probabilities = torch.softmax(self.dense6_1(features), dim=1)
        return self.dense6_2(features), self.dense6_3(features), probabilities


def _caffe_flatten(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, W * H * C), in the order the Caffe weights of the dense layers expect
    (width outermost, channels innermost)."""
    return features.permute(0, 3, 2, 1).reshape(len(features), -1)


def load_networks(device: str | torch.device = "cpu") -> tuple[PNet, RNet, ONet]:
    """The three networks with facenet-pytorch's weights, in eval mode on `device`."""
    folder = weights_folder()
    networks = (PNet(), RNet(), ONet())
    for network, file_name in zip(networks, ("pnet.pt", "rnet.pt", "onet.pt"), strict=True):
        path = folder / file_name
        try:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
            network.load_state_dict(state_dict)
        except Exception as error:  # torch.load and load_state_dict raise many types
            raise WeightsError(
                f"MTCNN's weights {path} could not be read ({type(error).__name__}); "
                "reinstall facenet-pytorch."
            ) from error
    return tuple(network.to(device).eval() for network in networks)  # type: ignore[return-value]


def weights_folder() -> Path:
    """facenet-pytorch's folder of MTCNN weights, found without importing facenet-pytorch."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "MTCNN's weights come with facenet-pytorch, which is not installed; "
            "install mattn as the README says."
        )
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FOLDER
