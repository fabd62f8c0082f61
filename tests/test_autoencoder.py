"""The KL autoencoder: shapes, training signal, loading a local pretrained one."""

import numpy as np
import pytest
import torch

from kedro_ad.models.diad import autoencoder as ae
from kedro_ad.pipelines.autoencoder.nodes import train_autoencoder

TINY = {"block_out_channels": (8, 16, 16), "norm_num_groups": 4}


def _images(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, size)
    base = (ramp[None, :] + ramp[:, None]) / 2
    return base.expand(n, 3, size, size) * 0.8 + 0.1 * torch.rand(
        n, 3, 1, 1, generator=g
    )


def test_f4_latents_and_image_range():
    torch.manual_seed(0)
    vae = ae.build_autoencoder(**TINY)
    assert ae.downsampling_factor(vae) == 4
    x = _images()
    z = ae.encode(vae, x)
    assert z.shape == (4, 4, 8, 8)
    out = ae.decode(vae, z)
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    vae.register_to_config(scaling_factor=ae.estimate_scaling_factor(vae, x))
    assert float(ae.encode(vae, x).std()) == pytest.approx(1.0, rel=1e-3)


def test_training_reduces_the_reconstruction_error():
    torch.manual_seed(0)
    vae = ae.build_autoencoder(**TINY)
    x = _images()
    opt = torch.optim.Adam(vae.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    first = float(ae.autoencoder_loss(vae, x, g)["l1"])
    for _ in range(40):
        loss = ae.autoencoder_loss(vae, x, g)
        loss["loss"].backward()
        opt.step()
        opt.zero_grad()
    assert float(loss["l1"]) < 0.5 * first
    assert set(loss) == {"loss", "l1", "kl"} and float(loss["kl"]) >= 0


def test_pretrained_folder_is_loaded_as_is(tmp_path):
    torch.manual_seed(1)
    vae = ae.build_autoencoder(**TINY)
    vae.register_to_config(scaling_factor=0.18215)
    vae.save_pretrained(tmp_path / "sd" / "vae")
    for path in (tmp_path / "sd", tmp_path / "sd" / "vae"):
        loaded = ae.load_autoencoder(path)
        for k, v in vae.state_dict().items():
            assert torch.equal(v, loaded.state_dict()[k])
    with pytest.raises(FileNotFoundError, match="no diffusers AutoencoderKL"):
        ae.load_autoencoder(tmp_path / "missing")
    # the node keeps a pretrained autoencoder untouched with max_steps 0
    rng = np.random.default_rng(0)
    arrays = {
        "images": rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8),
        "splits": np.array(["train"] * 4 + ["val"] * 2),
    }
    params = {
        "image_size": 32,
        "pretrained_path": str(tmp_path / "sd"),
        "rescale_latents": False,
        "training": {"max_steps": 0},
        "figure_images": 2,
    }
    model, history, figure = train_autoencoder(arrays, params)
    assert model["latent_factor"] == 4 and history == {}
    assert model["vae"].config.scaling_factor == pytest.approx(0.18215)
    for k, v in vae.state_dict().items():
        assert torch.equal(v, model["vae"].state_dict()[k])
    with pytest.raises(ValueError, match="multiple of"):
        train_autoencoder(arrays, {**params, "image_size": 36})
