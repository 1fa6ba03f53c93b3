"""The MAT model: structure equal to the authors' checkpoint, taps, pooling, losses, AGDA."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from deepfake_cli.model.augmentation import attention_guided_augment, soft_weight
from deepfake_cli.model.authors import AUTHORS_PREFIXES
from deepfake_cli.model.backbone import same_padding
from deepfake_cli.model.config import MATConfig
from deepfake_cli.model.losses import RegionalIndependenceLoss
from deepfake_cli.model.mat import MATDetector, build_detector, fake_probabilities
from deepfake_cli.model.pooling import attention_average, attention_pool
from deepfake_cli.model.step import mat_training_step

DATA = Path(__file__).parent / "data"


def authors_key(key: str) -> str:
    for theirs, ours in AUTHORS_PREFIXES.items():
        if key.startswith(ours):
            return theirs + key[len(ours) :]
    return key


def read_authors_table() -> dict[str, tuple[int, ...]]:
    rows = (DATA / "authors-mat-b4-state-dict.tsv").read_text().splitlines()[1:]
    table = {}
    for row in rows:
        key, shape, _dtype = row.split("\t")
        table[key] = tuple(int(size) for size in shape.strip("()").split(",") if size.strip())
    return table


def randomise_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Random BN statistics, so tests see BN layers that are not the identity."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)


def test_default_state_dict_matches_authors_checkpoint_table():
    model = build_detector()
    ours = {authors_key(key): tuple(value.shape) for key, value in model.state_dict().items()}
    assert ours == read_authors_table()


def test_default_configuration_is_the_released_one():
    config = MATConfig()
    assert (config.backbone, config.input_size, config.attention_tap, config.texture_tap) == (
        "efficientnet-b4",
        380,
        "b5",
        "b2",
    )
    assert config.num_attentions == 4 and config.hidden_dims == 256


@pytest.mark.slow
@pytest.mark.parametrize(
    ("legacy", "expected"),
    [
        (True, {"b0": 190, "b2": 95, "b3": 47, "b4": 23, "b5": 23, "b6": 11, "final": 11}),
        (False, {"b0": 190, "b2": 95, "b3": 48, "b4": 24, "b5": 24, "b6": 12, "final": 12}),
    ],
)
def test_b4_tap_sizes_at_380(legacy, expected):
    model = build_detector(MATConfig(legacy_padding=legacy)).eval()
    with torch.no_grad():
        taps = model.backbone.forward_taps(torch.zeros(1, 3, 380, 380))
        logits = model(torch.randn(1, 3, 380, 380))
    assert {name: taps[name].shape[-1] for name in expected} == expected
    assert taps["final"].shape[1] == 1792 and taps["b5"].shape[1] == 160
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()


def test_same_padding_is_tensorflow_same():
    # 380 input, 3x3 stride 2 -> output 190: total pad (190-1)*2+3-380 = 1, split 0/1.
    assert same_padding(380, 3, 2) == (0, 1, 0, 1)
    assert same_padding(95, 5, 2) == (2, 2, 2, 2)
    assert same_padding(11, 1, 1) == (0, 0, 0, 0)


def test_taps_stop_early_and_match_full_pass(tiny_config):
    model = build_detector(tiny_config).eval()
    images = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        everything = model.backbone.forward_taps(images)
        shallow = model.backbone.forward_taps(images, {"b2"})
    assert set(shallow) == {"b0", "b1", "b2"}
    assert torch.equal(shallow["b2"], everything["b2"])
    assert set(everything) == {"b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "final", "logits"}


def test_attention_pool_rows_have_unit_norm():
    generator = torch.Generator().manual_seed(0)
    features = torch.rand(3, 7, 10, 10, generator=generator)
    maps = torch.rand(3, 4, 5, 5, generator=generator)
    matrix = attention_pool(features, maps)
    assert matrix.shape == (3, 4, 7)
    torch.testing.assert_close(matrix.norm(dim=-1), torch.ones(3, 4))
    per_map = torch.rand(3, 4, 7, 10, 10, generator=generator)
    torch.testing.assert_close(attention_pool(per_map, maps).norm(dim=-1), torch.ones(3, 4))


def test_global_pooling_is_a_weighted_average():
    generator = torch.Generator().manual_seed(1)
    features = torch.rand(2, 5, 6, 6, generator=generator)
    weights = torch.rand(2, 1, 6, 6, generator=generator)
    pooled = attention_average(features, weights)
    expected = (features * weights).sum(dim=(2, 3)) / weights.sum(dim=(2, 3))
    torch.testing.assert_close(pooled, expected, rtol=1e-5, atol=1e-6)
    # A weighted average of a constant is that constant.
    constant = torch.full((2, 5, 6, 6), 3.0)
    torch.testing.assert_close(attention_average(constant, weights), torch.full((2, 5), 3.0))


def test_attention_maps_are_zero_on_the_border(tiny_config):
    model = build_detector(tiny_config).eval()
    with torch.no_grad():
        maps = model.forward_features(torch.randn(2, 3, 96, 96)).attention_maps
    assert (maps >= 0).all()
    # The authors' 24x24 mask with a 2-pixel zero border, nearest-resized to the map size:
    # at 6x6 that keeps the first row and column at zero.
    mask = torch.nn.functional.interpolate(model.attentions.mask, size=maps.shape[-2:])
    assert mask[0, 0, 0].sum() == 0 and mask[0, 0, :, 0].sum() == 0
    assert maps.masked_select(mask.expand_as(maps) == 0).abs().max() == 0
    assert (maps.masked_select(mask.expand_as(maps) == 1) > 0).all()


def unit_rows(batch: int, maps: int, features: int, seed: int) -> torch.Tensor:
    rows = torch.randn(batch, maps, features, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.normalize(rows, dim=-1)


def test_ril_centres_move_only_with_real_samples():
    loss = RegionalIndependenceLoss(num_attentions=3, num_features=8, alpha=0.05)
    descriptors = unit_rows(4, 3, 8, seed=0)
    loss(descriptors, torch.ones(4, dtype=torch.long), update_centers=True)  # all fake
    assert torch.count_nonzero(loss.feature_centers) == 0
    labels = torch.tensor([0, 1, 0, 1])
    loss(descriptors, labels, update_centers=True)
    # c' = c + alpha * mean over the batch of (V - c) * [real]; here c = 0.
    expected = 0.05 * (descriptors * (labels == 0).view(-1, 1, 1)).sum(dim=0) / 4
    torch.testing.assert_close(loss.feature_centers, expected)
    before = loss.feature_centers.clone()
    loss(descriptors, labels, update_centers=False)
    assert torch.equal(loss.feature_centers, before)


def test_ril_margins():
    # Two maps whose centres are 1.0 apart (> margin 0.8): the inter term is zero.
    loss = RegionalIndependenceLoss(num_attentions=2, num_features=2, alpha=1e-9)
    loss.feature_centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
    centres = loss.feature_centers.clone()

    def value(offset: float, label: int) -> float:
        descriptors = (centres + torch.tensor([0.0, offset])).unsqueeze(0)
        labels = torch.tensor([label])
        return float(loss(descriptors, labels, update_centers=False))

    distance = lambda offset: (2 * offset**2) ** 0.5  # noqa: E731 - Frobenius over both maps
    assert value(0.1, 0) == pytest.approx(0.0)  # real within 0.2: no loss
    assert value(0.3, 0) == pytest.approx(distance(0.3) - 0.2, abs=1e-5)  # real too far
    assert value(0.7, 1) == pytest.approx(0.0)  # fake ~0.99 away (>= 0.8): no loss
    assert value(0.3, 1) == pytest.approx(0.8 - distance(0.3), abs=1e-5)  # fake too close
    # Centres closer than the margin are pushed apart: (0.8 - 0.5) / (M * alpha).
    loss = RegionalIndependenceLoss(num_attentions=2, num_features=2, alpha=0.5)
    loss.feature_centers.copy_(torch.tensor([[0.0, 0.0], [0.5, 0.0]]))
    far_fake = torch.tensor([[[10.0, 0.0], [10.0, 0.0]]])
    inter = float(loss(far_fake, torch.tensor([1]), update_centers=False))
    assert inter == pytest.approx((0.8 - 0.5) / (2 * 0.5), abs=1e-5)


def test_agda_leaves_unattended_pixels_unchanged():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 64, 64)
    maps = torch.zeros(2, 4, 8, 8)
    maps[:, :, 2:5, 2:5] = 1.0  # attention only in one area
    augmented, chosen, weight = attention_guided_augment(images, maps, rng=random.Random(0))
    assert chosen.shape == (2,) and augmented.shape == images.shape
    untouched = (weight == 0).expand_as(images)
    assert untouched.any() and (~untouched).any()
    assert torch.equal(augmented[untouched], images[untouched])
    assert not torch.equal(augmented[~untouched], images[~untouched])


def test_agda_soft_weight_endpoints():
    zero = soft_weight(torch.zeros(1), threshold=0.5, zoom=4.0)
    one = soft_weight(torch.ones(1), threshold=0.5, zoom=4.0)
    assert float(zero) == pytest.approx(0.0, abs=1e-7)
    assert 0.5 < float(one) <= 1.0


def test_training_step_reaches_every_trainable_parameter(tiny_config):
    torch.manual_seed(0)
    model = build_detector(tiny_config).train()
    images = torch.randn(4, 3, 96, 96)
    labels = torch.tensor([0, 1, 0, 1])
    losses = mat_training_step(model, images, labels)
    assert set(losses) >= {"loss", "ce", "ril", "agda_ce", "match", "logits"}
    losses["loss"].backward()
    without_grad = [
        name
        for name, parameter in model.named_parameters()
        if parameter.requires_grad and (parameter.grad is None or parameter.grad.abs().sum() == 0)
    ]
    assert without_grad == []
    assert torch.count_nonzero(model.regional_loss.feature_centers) > 0


def test_backbone_variant_step_is_plain_cross_entropy(tiny_config):
    config = MATConfig(
        **{**tiny_config.to_dict(), "variant": "backbone", "ril_inner_margins": (0.2, -0.8)}
    )
    model = build_detector(config).train()
    losses = mat_training_step(model, torch.randn(2, 3, 96, 96), torch.tensor([0, 1]))
    assert set(losses) == {"loss", "ce", "logits"}
    assert not hasattr(model, "attentions")


def test_eval_forward_is_deterministic_and_probabilities_sum(tiny_config):
    model = build_detector(tiny_config)
    randomise_batchnorm(model)
    model.eval()
    images = torch.randn(3, 3, 96, 96)
    with torch.no_grad():
        first, second = model(images), model(images)
    assert torch.equal(first, second) and first.shape == (3, 2)
    probabilities = fake_probabilities(first)
    assert ((probabilities > 0) & (probabilities < 1)).all()


def test_unknown_configuration_is_refused():
    with pytest.raises(ValueError, match="unknown backbone"):
        MATConfig(backbone="resnet50")
    with pytest.raises(ValueError, match="unknown tap"):
        MATConfig(attention_tap="b9")


def test_model_is_an_nn_module_with_config(tiny_config):
    model = MATDetector(tiny_config)
    assert model.config == tiny_config
