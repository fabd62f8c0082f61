"""DiAD's networks, sampler and anomaly map, on tiny configurations."""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from kedro_ad.models.diad import (
    AnomalyMapper,
    DiffusionReconstructor,
    SemanticGuidedNetwork,
    SpatialFeatureFusion,
    build_latent_unet,
    build_pixel_unet,
    build_scheduler,
    gaussian_blur,
    pooled_max_score,
    trainable_parameters,
)
from kedro_ad.models.diad import autoencoder as ae

TINY = {
    "block_out_channels": (8, 16, 16, 16),
    "layers_per_block": 1,
    "norm_num_groups": 4,
}


def _unet(**kw):
    torch.manual_seed(0)
    return build_latent_unet(16, **{**TINY, **kw})


def _sg(unet, **kw):
    return SemanticGuidedNetwork.from_unet(
        unet, latent_factor=4, conditioning_widest=16, **kw
    )


def _perturb_zero_convs(sg):
    with torch.no_grad():
        for conv in [
            *sg.controlnet.controlnet_down_blocks,
            sg.controlnet.controlnet_mid_block,
        ]:
            conv.weight.fill_(0.1)
        # C's last convolution starts at zero too (ControlNet's hint block)
        sg.controlnet.controlnet_cond_embedding.conv_out.weight.fill_(0.01)


def _inputs(batch=2):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(batch, 4, 16, 16, generator=g)
    x = torch.rand(batch, 3, 64, 64, generator=g)
    return z, torch.tensor([500] * batch), x


def test_sg_copies_the_unet_encoder_and_starts_as_the_plain_unet():
    unet = _unet()
    sg = _sg(unet)
    for name, value in unet.down_blocks.state_dict().items():
        assert torch.equal(value, sg.controlnet.down_blocks.state_dict()[name])
    # four encoder blocks of three skip tensors each, as the paper groups them
    assert sg.groups == [1, 1, 2, 2, 3, 3, 4, 4]
    z, t, x = _inputs()
    context = torch.zeros(2, 1, unet.config.cross_attention_dim)
    down, mid = sg(z, t, x * 2 - 1, context)
    assert all(float(d.abs().max()) == 0 for d in down) and float(mid.abs().max()) == 0
    plain = unet(z, t, encoder_hidden_states=context).sample
    recon = DiffusionReconstructor(
        "diad",
        unet,
        build_scheduler(),
        ae.build_autoencoder((8, 16, 16), norm_num_groups=4),
        sg,
    )
    torch.testing.assert_close(recon.predict_noise(z, t, x), plain)


@pytest.mark.parametrize(
    ("blocks", "middle"), [((4,), True), ((3, 4), True), ((), True), ((4,), False)]
)
def test_only_the_connected_blocks_reach_the_sd_decoder(blocks, middle):
    unet = _unet()
    sg = _sg(unet, connect_blocks=blocks, connect_middle=middle)
    _perturb_zero_convs(sg)
    z, t, x = _inputs()
    down, mid = sg(z, t, x * 2 - 1, torch.zeros(2, 1, unet.config.cross_attention_dim))
    for d, g in zip(down, sg.groups, strict=True):
        assert (float(d.abs().max()) > 0) == (g in blocks), g
    assert (float(mid.abs().max()) > 0) == middle
    # the SG output depends on the pixel image x0 (the semantic guidance)
    down2, _ = sg(z, t, (1 - x) * 2 - 1, torch.zeros(2, 1, 32))
    if blocks:
        assert not torch.allclose(down[-1], down2[-1])


def test_sff_adds_conv_blocks_of_every_finer_layer():
    torch.manual_seed(0)
    sff = SpatialFeatureFusion([8, 16], [16, 16, 16])
    low = [torch.randn(2, 8, 8, 8), torch.randn(2, 16, 8, 8)]
    high = [torch.randn(2, 16, 4, 4) for _ in range(3)]
    out = sff(low, high)
    expected = [
        h + sum(b(x) for b, x in zip(row, low, strict=True))
        for h, row in zip(high, sff.blocks, strict=True)
    ]
    for o, e in zip(out, expected, strict=True):
        torch.testing.assert_close(o, e)
        assert o.shape == (2, 16, 4, 4)
    assert isinstance(sff.blocks[0][0][1], torch.nn.InstanceNorm2d)
    bn = SpatialFeatureFusion([8], [16], norm="batch", activation="relu")
    assert isinstance(bn.blocks[0][0][1], torch.nn.BatchNorm2d)
    assert isinstance(bn.blocks[0][0][2], torch.nn.ReLU)
    with pytest.raises(ValueError, match="norm"):
        SpatialFeatureFusion([8], [16], norm="group")
    # the SFF block changes what SGEB4 sends: the fused block differs from the raw
    unet = _unet()
    with_sff, without = _sg(unet, sff=True), _sg(unet, sff=False)
    _perturb_zero_convs(with_sff)
    _perturb_zero_convs(without)
    z, t, x = _inputs()
    context = torch.zeros(2, 1, 32)
    assert not torch.allclose(
        with_sff(z, t, x, context)[0][-1], without(z, t, x, context)[0][-1]
    )
    torch.testing.assert_close(
        with_sff(z, t, x, context)[0][0], without(z, t, x, context)[0][0]
    )


def test_trainable_parts_follow_the_public_code_choice():
    unet = _unet()
    sg = _sg(unet)
    params = trainable_parameters(unet, sg, ["sg", "unet_decoder"])
    assert all(p.requires_grad for p in sg.parameters())
    assert all(p.requires_grad for p in unet.up_blocks.parameters())
    assert not any(p.requires_grad for p in unet.down_blocks.parameters())
    assert not any(p.requires_grad for p in unet.mid_block.parameters())
    n = sum(p.numel() for p in sg.parameters()) + sum(
        p.numel()
        for m in (unet.up_blocks, unet.conv_norm_out, unet.conv_out)
        for p in m.parameters()
    )
    assert sum(p.numel() for p in params) == n
    with pytest.raises(ValueError, match="unknown"):
        trainable_parameters(unet, sg, ["head"])


def test_ddim_with_an_oracle_noise_predictor_recovers_the_input():
    torch.manual_seed(0)
    unet = build_pixel_unet(
        16, block_out_channels=(8, 8), layers_per_block=1, norm_num_groups=4
    )
    recon = DiffusionReconstructor(
        "ddpm",
        unet,
        build_scheduler(beta_schedule="linear", beta_start=1e-4, beta_end=0.02),
    )
    images = torch.rand(2, 3, 16, 16)
    x0 = images * 2 - 1
    alphas = recon.scheduler.alphas_cumprod

    def oracle(z_t, t, *_):
        a = alphas[t].view(-1, 1, 1, 1)
        return (z_t - a.sqrt() * x0) / (1 - a).sqrt()

    recon.predict_noise = oracle
    assert recon.timesteps(999, 10) == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert recon.timesteps(600, 3) == [600, 400, 199]
    out = recon.reconstruct(
        images, t_start=999, num_steps=10, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(out, images, atol=1e-4, rtol=0)


@pytest.mark.parametrize("prediction_type", ["sample", "v_prediction", "epsilon"])
def test_every_parameterisation_reconstructs_with_an_oracle_network(prediction_type):
    """An oracle network output (x0, v or eps: the training target) must give the
    input back through DDIM, and the loss must be zero on it: the conversion of
    each parameterisation to the noise is right."""
    torch.manual_seed(0)
    unet = build_pixel_unet(
        16, block_out_channels=(8, 8), layers_per_block=1, norm_num_groups=4
    )
    recon = DiffusionReconstructor(
        "ddpm", unet, build_scheduler(prediction_type=prediction_type)
    )
    images = torch.rand(2, 3, 16, 16)
    x0 = images * 2 - 1
    alphas = recon.scheduler.alphas_cumprod

    def oracle(z_t, t, *_):
        a = alphas[t].view(-1, 1, 1, 1)
        noise = (z_t - a.sqrt() * x0) / (1 - a).sqrt()
        return recon.target(x0, noise, t)

    recon.network_output = oracle
    out = recon.reconstruct(
        images, t_start=999, num_steps=10, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(out, images, atol=1e-4, rtol=0)
    loss = recon.loss(x0, None, None, torch.Generator().manual_seed(1))
    assert float(loss["loss"]) < 1e-10
    with pytest.raises(ValueError, match="prediction_type"):
        build_scheduler(prediction_type="x0")


def test_loss_weights_count_the_weighted_cells_more():
    """A weight map multiplies each cell's squared error (a weighted mean)."""
    torch.manual_seed(0)
    unet = build_pixel_unet(
        8, block_out_channels=(8, 8), layers_per_block=1, norm_num_groups=4
    )
    recon = DiffusionReconstructor("ddpm", unet, build_scheduler())
    x0 = torch.rand(2, 3, 8, 8) * 2 - 1
    plain = recon.loss(x0, None, None, torch.Generator().manual_seed(3))
    ones = recon.loss(
        x0, None, None, torch.Generator().manual_seed(3), torch.ones(2, 1, 8, 8)
    )
    torch.testing.assert_close(plain["loss"], ones["loss"])
    w = torch.ones(2, 1, 8, 8)
    w[:, :, :4] = 11.0
    weighted = recon.loss(x0, None, None, torch.Generator().manual_seed(3), w)
    recon.network_output = lambda z_t, t, *_: torch.zeros_like(z_t)
    g = torch.Generator().manual_seed(3)
    torch.randint(0, 1000, (2,), generator=g)  # the loss draws the steps first
    noise = torch.randn(x0.shape, generator=g)
    error = noise**2  # epsilon target, zero output
    expected = (w * error).sum() / w.expand_as(error).sum()
    got = recon.loss(x0, None, None, torch.Generator().manual_seed(3), w)["loss"]
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(weighted["loss"], plain["loss"])


def test_copy_ratio_is_one_for_a_copy_and_zero_for_a_repair():
    from kedro_ad.models.diad import copy_ratio

    g = torch.Generator().manual_seed(0)
    clean = torch.rand(3, 3, 16, 16, generator=g)
    defective = clean.clone()
    masks = torch.zeros(3, 16, 16, dtype=torch.bool)
    masks[:, 4:8, 4:8] = True
    defective[:, :, 4:8, 4:8] = 1 - defective[:, :, 4:8, 4:8]
    assert copy_ratio(defective, clean, defective, clean, masks) == pytest.approx(1)
    assert copy_ratio(clean, clean, defective, clean, masks) == 0
    half = clean + 0.5 * (defective - clean)
    assert copy_ratio(half, clean, defective, clean, masks.numpy()) == pytest.approx(
        0.5
    )


def test_reconstruction_is_seeded_and_the_duplicate_branch_changes_nothing():
    unet = _unet()
    vae = ae.build_autoencoder((8, 16, 16), norm_num_groups=4)
    sg = _sg(unet)
    _perturb_zero_convs(sg)
    recon = DiffusionReconstructor("diad", unet, build_scheduler(), vae, sg).eval()
    x = torch.rand(2, 3, 64, 64)
    a = recon.reconstruct(x, num_steps=3, generator=torch.Generator().manual_seed(5))
    b = recon.reconstruct(
        x,
        num_steps=3,
        generator=torch.Generator().manual_seed(5),
        duplicate_guidance_branch=True,
    )
    assert a.shape == x.shape and 0 <= float(a.min()) and float(a.max()) <= 1
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    c = recon.reconstruct(x, num_steps=3, generator=torch.Generator().manual_seed(6))
    assert not torch.allclose(a, c)
    loss = recon.loss(recon.to_latent(x), x, None, torch.Generator().manual_seed(0))
    loss["loss"].backward()
    assert torch.isfinite(loss["loss"])
    assert sg.controlnet.controlnet_mid_block.weight.grad is not None


def test_class_conditioned_ldm_needs_classes():
    unet = _unet(num_class_embeds=3)
    vae = ae.build_autoencoder((8, 16, 16), norm_num_groups=4)
    recon = DiffusionReconstructor("ldm", unet, build_scheduler(), vae)
    x = torch.rand(2, 3, 64, 64)
    with pytest.raises(ValueError, match="class-conditioned"):
        recon.reconstruct(x, num_steps=2)
    ids = torch.tensor([0, 2])
    out = recon.reconstruct(
        x, ids, num_steps=2, generator=torch.Generator().manual_seed(0)
    )
    assert out.shape == x.shape
    with pytest.raises(ValueError, match="SG network"):
        DiffusionReconstructor("ldm", unet, build_scheduler(), vae, _sg(_unet()))


def test_gaussian_blur_matches_scipy_and_score_pools():
    rng = np.random.default_rng(0)
    maps = rng.random((2, 40, 40)).astype(np.float32)
    ours = gaussian_blur(torch.from_numpy(maps), 2.0).numpy()
    ref = gaussian_filter(maps, sigma=(0, 2.0, 2.0), mode="mirror")
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    flat = torch.full((1, 32, 32), 0.3)
    assert float(pooled_max_score(flat, 8, 8)) == pytest.approx(0.3)
    spot, block = torch.zeros(1, 32, 32), torch.zeros(1, 32, 32)
    spot[0, 10, 10] = 1.0
    block[0, 8:16, 8:16] = 0.2
    # a lone hot pixel scores below a coherent region of lower values
    assert float(pooled_max_score(spot, 8, 1)) < float(pooled_max_score(block, 8, 1))


def test_anomaly_map_finds_the_changed_region():
    from kedro_ad.models.backbones import build_backbone

    torch.manual_seed(0)
    mapper = AnomalyMapper(
        build_backbone(pretrained=False), sigma=1.0, pool_kernel=4, pool_rounds=1
    )
    x = torch.rand(2, 3, 64, 64)
    same_scores, same_maps = mapper(x, x.clone())
    assert float(same_maps.abs().max()) < 1e-4
    y = x.clone()
    y[1, :, 40:56, 8:24] = 1 - y[1, :, 40:56, 8:24]
    scores, maps = mapper(x, y)
    assert maps.shape == (2, 64, 64)
    assert float(scores[1]) > float(scores[0]) + 0.1
    inside = maps[1, 40:56, 8:24].mean()
    outside = maps[1, :32, 32:].mean()
    assert float(inside) > 3 * float(outside)
    mapper.feature_size = 128  # enlarged before the backbone: finer maps
    _, fine = mapper(x, y)
    assert fine.shape == (2, 128, 128)
    assert float(fine[1, 80:112, 16:48].mean()) > 3 * float(fine[1, :64, 64:].mean())


def test_sg_network_round_trips_through_save_pretrained(tmp_path):
    unet = _unet()
    sg = _sg(unet, connect_blocks=(3, 4), sff_norm="batch", sff_activation="relu")
    _perturb_zero_convs(sg)
    sg.eval()
    sg.save_pretrained(tmp_path / "sg")
    loaded = SemanticGuidedNetwork.from_pretrained(tmp_path / "sg").eval()
    assert loaded.connected == {3, 4}
    z, t, x = _inputs()
    context = torch.zeros(2, 1, 32)
    for a, b in zip(sg(z, t, x, context)[0], loaded(z, t, x, context)[0], strict=True):
        torch.testing.assert_close(a, b)
