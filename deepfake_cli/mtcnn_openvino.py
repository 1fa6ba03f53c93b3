"""MTCNN's three networks on OpenVINO's CPU plugin, for `mattn scan --backend openvino`.

The graphs are built here from the torch networks' weights (`mtcnn_networks`) with OpenVINO's
operations, layer for layer, rather than traced and converted: building and compiling all three
takes a few tenths of a second at every start, where `openvino.convert_model` took about two
seconds, and nothing needs caching on disk. They run in fp32 (`INFERENCE_PRECISION_HINT`; the
CPU plugin's default on AMX CPUs is bf16), so the boxes are the torch networks' to within float
rounding (`tests/test_mtcnn.py` holds them to 1e-4).

Each compiled network is called like the torch module it replaces: a (B, 3, H, W) float32
tensor in, the same tuple of tensors out.

This module imports OpenVINO, an optional extra; `faces.FaceDetector` imports it only for the
openvino runtime.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from deepfake_cli.device import compile_for_openvino_cpu
from deepfake_cli.mtcnn_networks import ONet, PNet, RNet


class OpenVinoNetwork:
    """A compiled network called like the torch module: (B, 3, H, W) float32 in, a tuple out."""

    def __init__(self, model, core) -> None:
        self._compiled = compile_for_openvino_cpu(core, model, {"INFERENCE_PRECISION_HINT": "f32"})
        self._request = self._compiled.create_infer_request()
        self._outputs = list(self._compiled.outputs)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # The graph takes NHWC: a channels_last tensor's permuted view is contiguous, no copy.
        pixels = np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())
        results = self._request.infer([pixels], share_inputs=True)
        # Copied: the request reuses its output buffers at the next call.
        return tuple(torch.from_numpy(np.array(results[output])) for output in self._outputs)


def openvino_networks(
    networks: tuple[PNet, RNet, ONet],
) -> tuple[OpenVinoNetwork, OpenVinoNetwork, OpenVinoNetwork]:
    """PNet, RNet and ONet with the weights of `networks`, compiled for the CPU."""
    import openvino

    core = openvino.Core()
    pnet, rnet, onet = networks
    return (
        OpenVinoNetwork(_pnet_graph(pnet), core),
        OpenVinoNetwork(_rnet_graph(rnet), core),
        OpenVinoNetwork(_onet_graph(onet), core),
    )


def _pnet_graph(pnet: PNet):
    """(B, H, W, 3) -> offsets (B, 4, H', W'), probabilities (B, 2, H', W')."""
    import openvino

    ops = _opset()
    images = ops.parameter([-1, -1, -1, 3], np.float32, name="images")
    features = ops.transpose(images, ops.constant(np.array([0, 3, 1, 2], np.int64)))
    features = _max_pool(_prelu(_conv(features, pnet.conv1), pnet.prelu1), 2, 2)
    features = _prelu(_conv(features, pnet.conv2), pnet.prelu2)
    features = _prelu(_conv(features, pnet.conv3), pnet.prelu3)
    offsets = _conv(features, pnet.conv4_2)
    probabilities = ops.softmax(_conv(features, pnet.conv4_1), 1)
    return openvino.Model([offsets, probabilities], [images], "pnet")


def _rnet_graph(rnet: RNet):
    """(B, 24, 24, 3) -> offsets (B, 4), probabilities (B, 2)."""
    import openvino

    ops = _opset()
    crops = ops.parameter([-1, 24, 24, 3], np.float32, name="crops")
    features = ops.transpose(crops, ops.constant(np.array([0, 3, 1, 2], np.int64)))
    features = _max_pool(_prelu(_conv(features, rnet.conv1), rnet.prelu1), 3, 2)
    features = _max_pool(_prelu(_conv(features, rnet.conv2), rnet.prelu2), 3, 2)
    features = _prelu(_conv(features, rnet.conv3), rnet.prelu3)  # (B, 64, 3, 3)
    features = _prelu(_dense(_caffe_flatten(features), rnet.dense4), rnet.prelu4)  # (B, 128)
    offsets = _dense(features, rnet.dense5_2)
    probabilities = ops.softmax(_dense(features, rnet.dense5_1), 1)
    return openvino.Model([offsets, probabilities], [crops], "rnet")


def _onet_graph(onet: ONet):
    """(B, 48, 48, 3) -> offsets (B, 4), landmarks (B, 10), probabilities (B, 2)."""
    import openvino

    ops = _opset()
    crops = ops.parameter([-1, 48, 48, 3], np.float32, name="crops")
    features = ops.transpose(crops, ops.constant(np.array([0, 3, 1, 2], np.int64)))
    features = _max_pool(_prelu(_conv(features, onet.conv1), onet.prelu1), 3, 2)
    features = _max_pool(_prelu(_conv(features, onet.conv2), onet.prelu2), 3, 2)
    features = _max_pool(_prelu(_conv(features, onet.conv3), onet.prelu3), 2, 2)
    features = _prelu(_conv(features, onet.conv4), onet.prelu4)  # (B, 128, 3, 3)
    features = _prelu(_dense(_caffe_flatten(features), onet.dense5), onet.prelu5)  # (B, 256)
    offsets = _dense(features, onet.dense6_2)
    landmarks = _dense(features, onet.dense6_3)
    probabilities = ops.softmax(_dense(features, onet.dense6_1), 1)
    return openvino.Model([offsets, landmarks, probabilities], [crops], "onet")


def _opset():
    from openvino import opset14

    return opset14


def _weights(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().float().numpy()


def _conv(features, layer: nn.Conv2d):
    ops = _opset()
    convolved = ops.convolution(
        features, ops.constant(_weights(layer.weight)), [1, 1], [0, 0], [0, 0], [1, 1]
    )
    return ops.add(convolved, ops.constant(_weights(layer.bias).reshape(1, -1, 1, 1)))


def _prelu(features, layer: nn.PReLU):
    # One slope per channel (axis 1), as torch's PReLU applies it.
    return _opset().prelu(features, _opset().constant(_weights(layer.weight)))


def _max_pool(features, kernel: int, stride: int):
    # torch's ceil_mode: a last, partial window where the input does not divide evenly.
    strides, kernel_shape, no_padding = [stride, stride], [kernel, kernel], [0, 0]
    pooled = _opset().max_pool(
        features, strides, [1, 1], no_padding, no_padding, kernel_shape, "ceil_torch"
    )
    return pooled.output(0)  # the values (its second output is their indices)


def _dense(features, layer: nn.Linear):
    ops = _opset()
    multiplied = ops.matmul(features, ops.constant(_weights(layer.weight)), False, True)
    return ops.add(multiplied, ops.constant(_weights(layer.bias)))


def _caffe_flatten(features):
    """(B, C, H, W) -> (B, W * H * C), as `mtcnn_networks._caffe_flatten`."""
    ops = _opset()
    transposed = ops.transpose(features, ops.constant(np.array([0, 3, 2, 1], np.int64)))
    return ops.reshape(transposed, ops.constant(np.array([0, -1], np.int64)), True)
