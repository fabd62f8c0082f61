"""DiffusionAD's pure-PyTorch parts: Eq. 5, the losses, the segmenter, Algorithm 2."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from kedro_ad.models.diffusionad import (
    DiffusionAD,
    SegmentationUNet,
    binary_focal_loss,
    build_denoiser,
    build_scheduler,
    diffusionad_loss,
    image_scores,
    one_step_x0,
    sample_timesteps,
    top_k_for,
)


def _tiny(size=32, seed=0) -> DiffusionAD:
    torch.manual_seed(seed)
    unet = build_denoiser(
        size,
        block_out_channels=(8, 16),
        layers_per_block=1,
        attention_resolutions=(size // 2,),
        attention_head_dim=8,
        norm_num_groups=4,
    )
    return DiffusionAD(unet, SegmentationUNet(block_out_channels=(8, 16, 16)))


class _Oracle(torch.nn.Module):
    """A 'denoiser' that knows the noise: Eq. 5 must then give back x0 exactly."""

    def __init__(self, noise):
        super().__init__()
        self.noise = noise

    def forward(self, x_t, t):
        return type("Out", (), {"sample": self.noise})()


def test_schedule_is_the_papers_linear_one():
    s = build_scheduler()
    betas = s.betas.double()
    assert len(betas) == 1000
    assert betas[0].item() == pytest.approx(1e-4)
    assert betas[-1].item() == pytest.approx(2e-2)
    np.testing.assert_allclose(np.diff(betas.numpy()), (2e-2 - 1e-4) / 999, rtol=1e-4)


def test_one_step_x0_inverts_the_forward_process_with_the_true_noise():
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 3, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(3, 3, 8, 8, generator=g)
    t = torch.tensor([0, 150, 900])
    scheduler = build_scheduler()
    x0_hat, eps = one_step_x0(_Oracle(noise), scheduler, x0, t, noise, clip=False)
    torch.testing.assert_close(x0_hat, x0, atol=1e-4, rtol=0)
    torch.testing.assert_close(eps, noise)
    # a wrong noise estimate is amplified by sqrt(1 - a_t) / sqrt(a_t) (Eq. 5)
    a = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    x0_hat, _ = one_step_x0(_Oracle(noise + 0.1), scheduler, x0, t, noise, clip=False)
    torch.testing.assert_close(x0_hat - x0, -0.1 * ((1 - a) / a).sqrt().expand_as(x0))


def test_top_k_scales_with_area_and_scores_are_top_k_means():
    assert top_k_for(256, 256) == 50
    assert top_k_for(128, 128) == 12
    assert top_k_for(64, 64) == 3
    assert top_k_for(8, 8) == 1
    maps = torch.zeros(2, 4, 4)
    maps[0, 0, :3] = torch.tensor([0.9, 0.6, 0.3])
    torch.testing.assert_close(image_scores(maps, 2), torch.tensor([0.75, 0.0]))


def test_focal_loss_is_the_formula_and_reduces_to_bce():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 1, 5, 5, generator=g) * 3
    target = (torch.rand(2, 1, 5, 5, generator=g) > 0.7).float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    torch.testing.assert_close(binary_focal_loss(logits, target, 1.0, 0.0), bce)
    p = torch.sigmoid(logits)
    p_t = torch.where(target == 1, p, 1 - p)
    manual = (0.5 * (1 - p_t) ** 4 * -torch.log(p_t)).mean()
    torch.testing.assert_close(binary_focal_loss(logits, target), manual)


def test_focal_loss_is_torchvisions_on_binary_masks():
    """The paper's focal loss (Lin et al.) is defined on binary masks, which the
    paper and its code train on: there ours is torchvision's sigmoid_focal_loss."""
    from torchvision.ops import sigmoid_focal_loss

    g = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 1, 16, 16, generator=g) * 3
    target = (torch.rand(4, 1, 16, 16, generator=g) > 0.8).float()
    for alpha, gamma in ((0.5, 4.0), (0.5, 2.0)):
        theirs = sigmoid_focal_loss(logits, target, alpha, gamma, reduction="mean")
        torch.testing.assert_close(
            binary_focal_loss(logits, target, alpha, gamma), theirs
        )


def test_focal_loss_on_soft_masks_keeps_the_target_as_its_minimum():
    """DiffusionAD here trains on area-resized masks: edge pixels have targets in
    (0, 1). There the two forms differ; ours (the public code's, exp(-BCE) as p_t)
    is a rising function of the BCE, so it is lowest where p = t; torchvision's
    linear p_t pulls soft pixels towards 0 or 1."""
    from torchvision.ops import sigmoid_focal_loss

    logits = torch.linspace(-8, 8, 1601)
    p = torch.sigmoid(logits)
    for t in (0.1, 0.3, 0.7):
        target = torch.full_like(logits, t)
        ours = torch.stack(
            [binary_focal_loss(x[None], target[:1], 0.5, 4.0) for x in logits]
        )
        theirs = sigmoid_focal_loss(logits, target, 0.5, 4.0, reduction="none")
        assert abs(float(p[ours.argmin()]) - t) < 0.01
        assert abs(float(p[theirs.argmin()]) - t) > 0.09  # 0.006, 0.058, 0.942
    soft = torch.full((1, 1, 4, 4), 0.3)
    x = torch.ones_like(soft)  # p = 0.73 (at p = 0.5 both p_t are 0.5)
    assert not torch.allclose(
        binary_focal_loss(x, soft),
        sigmoid_focal_loss(x, soft, 0.5, 4.0, reduction="mean"),
    )


def test_timesteps_stay_in_their_ranges_and_are_reproducible():
    ranges = [[0, 9], [500, 509]]
    t = sample_timesteps(4000, ranges, torch.Generator().manual_seed(0))
    assert set(t.tolist()) == set(range(10)) | set(range(500, 510))
    again = sample_timesteps(4000, ranges, torch.Generator().manual_seed(0))
    assert torch.equal(t, again)
    with pytest.raises(ValueError, match="ranges"):
        sample_timesteps(2, [[5, 1]])


def test_noise_loss_on_normal_samples_ignores_the_anomalous_ones():
    model = _tiny()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    masks = torch.zeros(4, 1, 32, 32)
    masks[2:, :, 8:16, 8:16] = 1

    def losses(labels, mode):
        g = torch.Generator().manual_seed(3)
        return diffusionad_loss(model, x, masks, labels, g, noise_loss_on=mode)

    all_anomalous = losses(torch.ones(4, dtype=torch.long), "normal")
    assert all_anomalous["noise_mse"].item() == 0.0
    assert losses(torch.ones(4, dtype=torch.long), "all")["noise_mse"].item() > 0.5
    # the normal-only loss is the mean over the normal rows of the per-row MSE
    mixed = losses(torch.tensor([0, 0, 1, 1]), "normal")
    everything = losses(torch.tensor([0, 0, 1, 1]), "all")
    assert mixed["noise_mse"].item() != pytest.approx(everything["noise_mse"].item())
    total = mixed["noise_mse"] + mixed["smooth_l1"] + 5 * mixed["focal"]
    torch.testing.assert_close(mixed["loss"], total)


def test_segmenter_shapes_round_trip_and_bad_sizes(tmp_path):
    seg = SegmentationUNet(block_out_channels=(4, 8, 8)).eval()
    x = torch.randn(2, 6, 16, 24)
    assert seg(x).shape == (2, 1, 16, 24)
    seg.save_pretrained(tmp_path)
    again = SegmentationUNet.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(again(x), seg(x))
    with pytest.raises(ValueError, match="divisible by 4"):
        seg(torch.randn(1, 6, 18, 16))


def test_inference_is_algorithm_2_and_reproducible():
    model = _tiny().eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    out = model(
        x, timesteps=(100, 200), top_k=5, generator=torch.Generator().manual_seed(0)
    )
    again = model(
        x, timesteps=(100, 200), top_k=5, generator=torch.Generator().manual_seed(0)
    )
    assert out.anomaly_map.shape == (3, 32, 32)
    assert out.reconstruction.shape == (3, 3, 32, 32)
    assert 0 <= out.anomaly_map.min() and out.anomaly_map.max() <= 1
    torch.testing.assert_close(out.anomaly_map, again.anomaly_map)
    torch.testing.assert_close(out.pred_score, image_scores(out.anomaly_map, 5))
    # the map is the mean of the per-lambda masks, each from its own noise draw
    g = torch.Generator().manual_seed(0)
    masks = []
    for lam in (100, 200):
        noise = torch.randn(x.shape, generator=g)
        t = torch.full((3,), lam)
        x0_hat, _ = one_step_x0(model.unet, model.scheduler, x * 2 - 1, t, noise)
        with torch.no_grad():
            masks.append(torch.sigmoid(model.segment(x * 2 - 1, x0_hat))[:, 0])
    torch.testing.assert_close(out.anomaly_map, (masks[0] + masks[1]) / 2)


@pytest.mark.slow
def test_a_tiny_model_learns_to_localise_pasted_squares():
    """Algorithm 1 end to end: after a few dozen steps the segmenter finds defects."""

    def batch(g, n=8):
        x = 0.3 + 0.05 * torch.randn(n, 3, 32, 32, generator=g)
        masks = torch.zeros(n, 1, 32, 32)
        labels = torch.zeros(n, dtype=torch.long)
        for i in range(n // 2, n):
            r, c = torch.randint(0, 24, (2,), generator=g).tolist()
            masks[i, :, r : r + 8, c : c + 8] = 1
            labels[i] = 1
        x = torch.where(masks.bool(), 1 - x, x)  # the defect: an inverted patch
        return x.clamp(0, 1), masks, labels

    torch.manual_seed(0)
    model = _tiny()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(5)
    for _ in range(60):
        x, masks, labels = batch(g)
        losses = diffusionad_loss(
            model, x, masks, labels, g, timestep_ranges=[[0, 299]]
        )
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
    model.eval()
    x, masks, labels = batch(torch.Generator().manual_seed(99), n=16)
    out = model(x, top_k=8, generator=torch.Generator().manual_seed(0))
    assert (
        roc_auc_score(masks.flatten().numpy(), out.anomaly_map.flatten().numpy()) > 0.95
    )
    assert roc_auc_score(labels.numpy(), out.pred_score.numpy()) > 0.95
