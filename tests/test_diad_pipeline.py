"""The autoencoder + DiAD / LDM / DDPM pipelines end to end on tiny data and nets."""

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from kedro_ad.data.datasets import ModelFolderDataset
from kedro_ad.pipelines.autoencoder import create_pipeline as create_autoencoder
from kedro_ad.pipelines.diad import create_inference_pipeline, create_pipeline
from kedro_ad.pipelines.diad.nodes import predict_diad, predict_ldm

CONF = Path(__file__).parents[1] / "conf" / "base"
SIZE = 32
TINY_UNET = {
    "block_out_channels": [8, 16, 16],
    "layers_per_block": 1,
    "norm_num_groups": 4,
}


class _Kept(MemoryDataset):
    """A MemoryDataset the runner cannot release, so the test can read it after."""

    def _release(self) -> None:
        pass


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for cls, base in (("tex", 60), ("obj", 170)):
        for split, n in (("train", 6), ("val", 2), ("test", 4)):
            for i in range(n):
                img = np.clip(base + rng.normal(0, 10, (SIZE, SIZE, 3)), 0, 255)
                mask = np.zeros((SIZE, SIZE), bool)
                label = int(split == "test" and i >= 2)
                if label:
                    mask[8:16, 10:18] = True
                    img[mask] = 255 - base
                rows.append((img.astype(np.uint8), mask, label, cls, split))
    images, masks, labels, classes, splits = map(np.array, zip(*rows, strict=True))
    n = len(images)
    return {
        "images": images,
        "masks": masks,
        "labels": labels,
        "classes": classes,
        "splits": splits,
        "defect_types": np.where(labels == 1, "spot", "good"),
        "image_paths": np.array([f"img_{i}.png" for i in range(n)]),
    }


def _synthetic(arrays):
    val = np.flatnonzero(arrays["splits"] == "val")
    images = np.concatenate([arrays["images"][val]] * 2)
    masks = np.zeros(images.shape[:3], bool)
    masks[len(val) :, 4:12, 4:12] = True
    images[masks] = 0
    return {
        "images": images,
        "masks": masks,
        "labels": np.repeat([0, 1], len(val)),
        "classes": np.concatenate([arrays["classes"][val]] * 2),
        "source_index": np.concatenate([val, val]),
    }


def _params(tmp_path):
    ae = yaml.safe_load((CONF / "parameters_autoencoder.yml").read_text())[
        "autoencoder"
    ]
    ae.update(image_size=SIZE, val_images=4, figure_images=2)
    ae["model"] = {"block_out_channels": [8, 16, 16], "norm_num_groups": 4}
    ae["training"].update(
        max_steps=2,
        batch_size=2,
        validate_every=2,
        checkpoint_every=2,
        checkpoint_dir=str(tmp_path / "ae_ckpt"),
    )
    variants = yaml.safe_load((CONF / "parameters_diad.yml").read_text())
    variants = {k: v for k, v in variants.items() if not k.startswith("_")}
    tiny = dict(max_steps=2, batch_size=2, validate_every=1, checkpoint_every=1)
    for name, p in variants.items():
        p["image_size"] = SIZE
        p["model"].update(TINY_UNET)
        if "sg" in p:
            p["sg"].update(connect_blocks=[1, 3], conditioning_widest=16)
            p["prior"]["training"].update(
                tiny, checkpoint_dir=str(tmp_path / f"{name}_prior_ckpt")
            )
        p["inference"].update(num_steps=2, batch_size=8, t_start_candidates=[300, 900])
        p["backbone"]["pretrained"] = False
        p["figure_images"] = 2
        p["training"].update(tiny, checkpoint_dir=str(tmp_path / f"{name}_ckpt"))
    return ae, variants


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train the autoencoder and all three variants once (2 steps each)."""
    tmp_path = tmp_path_factory.mktemp("diad")
    arrays = _arrays()
    ae_params, variants = _params(tmp_path)
    datasets = {
        "dataset_arrays": MemoryDataset(arrays),
        "synthetic_validation": MemoryDataset(_synthetic(arrays)),
        "params:autoencoder": MemoryDataset(ae_params),
        "params:checkpoint_rule": MemoryDataset(None),
    }
    pipeline = create_autoencoder()
    for name, p in variants.items():
        datasets[f"params:{name}"] = MemoryDataset(p)
        pipeline += create_pipeline(variant=name).only_nodes_with_tags("training")
    outputs = [o for o in pipeline.all_outputs()]
    datasets.update({o: _Kept(copy_mode="assign") for o in outputs})
    catalog = DataCatalog(datasets)
    SequentialRunner().run(pipeline, catalog)
    return arrays, variants, catalog, tmp_path


@pytest.mark.parametrize("variant", ["diad", "ldm", "ddpm"])
def test_each_variant_scores_the_test_split(trained, variant):
    arrays, variants, catalog, tmp_path = trained
    pred = catalog.load(f"{variant}.predictions")
    test = np.flatnonzero(arrays["splits"] == "test")
    np.testing.assert_array_equal(pred["index"], test)
    assert pred["maps"].shape == (len(test), SIZE, SIZE)
    assert pred["maps"].dtype == np.float16 and np.isfinite(pred["scores"]).all()
    assert str(pred["method"]) == variant
    model = catalog.load(f"{variant}.model")
    assert model["kind"] == variant and model["steps_done"] == 2
    assert ("sg" in model) == (variant == "diad")
    assert model["class_conditioned"] == (variant == "ldm")
    history = catalog.load(f"{variant}.training_history")
    diagnostics = {"val_fidelity", "val_feature_distance", "val_copy_ratio"}
    assert {"loss", "val_score", "val_pixel_aupro", *diagnostics} <= set(history)
    # every validation sees the weights of its step (a pass kept from an earlier
    # step once made every checkpoint look like the first and kept the first)
    fidelity = [h["value"] for h in history["val_fidelity"]]
    assert len(fidelity) == 2 and fidelity[0] != fidelity[1]
    # t' and the map statistics come from the validation split
    assert model["inference"]["t_start"] in (300, 900)
    assert len(model["val_metrics_by_choice"]) == 2 * len(
        variants[variant]["anomaly_map"]["standardize"]
    )
    n_classes = len(model["class_names"])
    assert model["map_mean"].shape == model["map_std"].shape == (n_classes, 128, 128)
    assert "mean(image_auroc, pixel_aupro)" in str(pred["checkpoint_rule"])
    # checkpoints are cleared after a clean finish (nothing left to resume)
    assert not list((tmp_path / f"{variant}_ckpt").glob("checkpoint_*"))


def test_model_folders_round_trip_and_serve_any_image_size(trained, tmp_path):
    arrays, variants, catalog, _ = trained
    ae_folder = ModelFolderDataset(str(tmp_path / "autoencoder"))
    ae_folder.save(catalog.load("autoencoder.model"))
    folder = ModelFolderDataset(str(tmp_path / "diad"))
    folder.save(catalog.load("diad.model"))
    model, autoencoder = folder.load(), ae_folder.load()
    images = np.random.default_rng(3).integers(0, 255, (3, 48, 40, 3), dtype=np.uint8)
    out = predict_diad(model, autoencoder, images, variants["diad"])
    assert out["maps"].shape == (3, 48, 40) and out["scores"].shape == (3,)
    again = predict_diad(
        catalog.load("diad.model"),
        catalog.load("autoencoder.model"),
        images,
        variants["diad"],
    )
    np.testing.assert_allclose(out["scores"], again["scores"], rtol=1e-4, atol=1e-5)


def test_class_conditioned_ldm_asks_for_classes(trained):
    _, variants, catalog, _ = trained
    model, autoencoder = catalog.load("ldm.model"), catalog.load("autoencoder.model")
    images = np.zeros((2, SIZE, SIZE, 3), np.uint8)
    with pytest.raises(ValueError, match="class-conditioned"):
        predict_ldm(model, autoencoder, images, variants["ldm"])
    with pytest.raises(ValueError, match="unknown"):
        predict_ldm(
            model,
            autoencoder,
            {"images": images, "classes": ["tex", "zzz"]},
            variants["ldm"],
        )
    out = predict_ldm(
        model,
        autoencoder,
        {"images": images, "classes": ["tex", "obj"]},
        variants["ldm"],
    )
    assert out["maps"].shape == (2, SIZE, SIZE)


@pytest.mark.parametrize("variant", ["diad", "ldm", "ddpm"])
def test_inference_pipeline_is_one_tagged_node(variant):
    pipeline = create_inference_pipeline(variant=variant)
    assert len(pipeline.nodes) == 1 and pipeline.nodes[0].tags == {"inference"}
    assert pipeline.outputs() == {f"{variant}.inference_output"}
    expected = {f"{variant}.model", f"{variant}.images", f"params:{variant}"}
    if variant != "ddpm":
        expected.add("autoencoder.model")
    assert pipeline.inputs() == expected
    full = create_pipeline(variant=variant)
    assert f"{variant}.predictions" in full.all_outputs()
    assert all(n.namespace.startswith(variant) for n in full.nodes if "train" in n.name)


def test_config_copy_is_left_untouched(tmp_path):
    """The nodes must not mutate the parameters they are given (Kedro shares them)."""
    _, variants = _params(tmp_path)
    before = copy.deepcopy(variants)
    from kedro_ad.pipelines.diad.nodes import _build_sg, _build_unet

    for kind in ("diad", "ldm", "ddpm"):
        unet = _build_unet(kind, variants[kind], SIZE, 4, ["obj", "tex"])
    _build_sg(_build_unet("diad", variants["diad"], SIZE, 4, []), variants["diad"], 4)
    assert variants == before and unet is not None


def test_a_local_sd_unet_folder_initialises_unet_and_sg(tmp_path):
    """The paper environment's path: SD v1.5's unet/ (here a tiny stand-in)."""
    import torch

    from kedro_ad.models.diad import build_latent_unet
    from kedro_ad.pipelines.diad.nodes import _build_sg, _build_unet

    torch.manual_seed(3)
    sd = build_latent_unet(
        8, attention=True, cross_attention_dim=16, attention_head_dim=4, **TINY_UNET
    )
    sd.save_pretrained(tmp_path / "sd" / "unet")
    _, variants = _params(tmp_path)
    params = copy.deepcopy(variants["diad"])
    params["model"]["pretrained_unet_path"] = str(tmp_path / "sd")
    unet = _build_unet("diad", params, SIZE, 4, ["obj", "tex"])
    for key, value in sd.state_dict().items():
        assert torch.equal(value, unet.state_dict()[key])
    copied = _build_sg(unet, params, 4).controlnet.down_blocks.state_dict()
    for key, value in sd.down_blocks.state_dict().items():
        assert torch.equal(value, copied[key])
    params["model"]["pretrained_unet_path"] = str(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="no diffusers UNet2DConditionModel"):
        _build_unet("diad", params, SIZE, 4, ["obj", "tex"])


def test_same_seed_same_model_whatever_ran_before(tmp_path):
    """Initial weights come from the training seed, not from the state that earlier
    work left in torch's global generator: two runs give the same predictions."""
    import torch

    arrays = _arrays()
    ae_params, variants = _params(tmp_path)
    scores = []
    for before in (1, 2):
        torch.manual_seed(before)  # what other nodes or tests left behind
        torch.rand(before * 7)
        datasets = {
            "dataset_arrays": MemoryDataset(arrays),
            "synthetic_validation": MemoryDataset(_synthetic(arrays)),
            "params:autoencoder": MemoryDataset(ae_params),
            "params:checkpoint_rule": MemoryDataset(None),
            "params:diad": MemoryDataset(variants["diad"]),
        }
        pipeline = create_autoencoder() + create_pipeline(
            variant="diad"
        ).only_nodes_with_tags("training")
        datasets.update({o: _Kept(copy_mode="assign") for o in pipeline.all_outputs()})
        catalog = DataCatalog(datasets)
        SequentialRunner().run(pipeline, catalog)
        scores.append(catalog.load("diad.predictions")["scores"])
    np.testing.assert_array_equal(scores[0], scores[1])
