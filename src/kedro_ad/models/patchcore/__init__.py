"""PatchCore (Roth et al., CVPR 2022) through anomalib's own torch model.

Nothing of PatchCore is written here: :class:`PatchcoreSet` holds one
``anomalib.models.image.patchcore.torch_model.PatchcoreModel`` (its feature
extractor, 3x3 average pooling of the patches, k-center-greedy coreset, nearest-
neighbour patch scores, re-weighted image score and blurred map) and keeps one
memory bank per class, swapped in before each class's images are scored (anomalib's
model is one class at a time). The feature extractor anomalib builds
(``TimmFeatureExtractor``, timm ``features_only``) gets the project's offline
ImageNet weights (:func:`kedro_ad.models.backbones.load_pretrained`): anomalib's
default Wide-ResNet-50 cannot be downloaded here. Inputs are normalised as those
weights expect (anomalib's pre-processor would do it in its own Lightning path).

anomalib is an optional extra (``pip install -e ".[anomalib]"``): it is imported
only when a model is built, and its absence raises :class:`AnomalibMissingError`
with that command.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from kedro_ad.models.backbones import input_mean_std, load_pretrained
from kedro_ad.models.common import class_ids
from kedro_ad.models.maps import to_unit_images

logger = logging.getLogger(__name__)

INSTALL = 'pip install -e ".[anomalib]"'


class AnomalibMissingError(ImportError):
    """anomalib (the optional extra) is not installed."""


def anomalib_patchcore() -> type[nn.Module]:
    """anomalib's ``PatchcoreModel`` class, or a clear error naming the extra."""
    try:
        from anomalib.models.image.patchcore.torch_model import PatchcoreModel
    except ImportError as exc:
        raise AnomalibMissingError(
            f"patchcore: anomalib is not installed ({exc.msg}); PatchCore comes "
            f"from anomalib, an optional extra of this project: {INSTALL}"
        ) from None
    return PatchcoreModel


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """numpy's and torch's global generators seeded inside, restored after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            yield
    finally:
        np.random.set_state(state)


class PatchcoreSet(nn.Module):
    """anomalib's PatchCore with one memory bank per class.

    Attributes:
        model: anomalib's ``PatchcoreModel`` (its backbone frozen, eval mode).
        class_names: one memory bank per name, in this order.
        memory_banks: ``[M_c, D]`` coreset per class, after :meth:`fit`.
        backbone_settings: the ``backbone`` parameters block (name, layers, ...).
        weights_source: where the backbone's weights came from.
    """

    def __init__(
        self,
        backbone: Mapping[str, Any],
        class_names: Sequence[str],
        image_size: int,
        num_neighbors: int = 9,
    ) -> None:
        super().__init__()
        name = str(backbone.get("name", "tf_efficientnet_lite0"))
        self.model = anomalib_patchcore()(
            layers=[int(i) for i in backbone.get("layers", (2, 3))],
            backbone=name,
            pre_trained=False,  # anomalib would download; the weights come next
            num_neighbors=int(num_neighbors),
        ).eval()
        self.weights_source = load_pretrained(
            self.model.feature_extractor.feature_extractor, backbone
        )
        self.backbone_settings = dict(backbone)
        self.class_names = [str(c) for c in class_names]
        self.image_size = int(image_size)
        mean, std = input_mean_std(name)
        self.register_buffer("input_mean", torch.tensor(mean).view(1, 3, 1, 1), False)
        self.register_buffer("input_std", torch.tensor(std).view(1, 3, 1, 1), False)
        self.memory_banks: list[torch.Tensor] = []

    def class_ids(self, classes: Sequence[str] | np.ndarray | None, n: int):
        """Indices of ``classes`` in :attr:`class_names` (``None``: one-class model)."""
        return class_ids(classes, self.class_names, n, "patchcore")

    def _input(self, images: torch.Tensor) -> torch.Tensor:
        return (to_unit_images(images, self.image_size) - self.input_mean) / (
            self.input_std
        )

    @torch.no_grad()
    def fit(
        self,
        images_per_class: Sequence[torch.Tensor | np.ndarray],
        coreset_ratio: float,
        batch_size: int = 16,
        seed: int = 0,
    ) -> None:
        """A coreset memory bank per class from its training images (anomalib's
        embedding store and ``subsample_embedding``; its random projection and
        first centre come from numpy's and torch's global generators, seeded here
        and restored after)."""
        if len(images_per_class) != len(self.class_names):
            raise ValueError("patchcore: one image stack per class is needed")
        self.memory_banks = []
        for name, images in zip(self.class_names, images_per_class, strict=True):
            self.model.train()  # anomalib's model stores embeddings in train mode
            self.model.embedding_store.clear()
            for start in tqdm(
                range(0, len(images), batch_size), desc=f"PatchCore {name}", leave=False
            ):
                self.model(self._input(images[start : start + batch_size]))
            with _seeded(seed):
                self.model.subsample_embedding(float(coreset_ratio))
            self.memory_banks.append(self.model.memory_bank.clone())
            logger.info(
                "PatchCore %s: memory bank of %d patches x %d features",
                name,
                *self.memory_banks[-1].shape,
            )
        self.model.eval()

    @torch.no_grad()
    def forward(
        self, images: torch.Tensor, ids: torch.Tensor, batch_size: int = 16
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """anomalib's image scores ``[N]`` and maps ``[N, S, S]`` at image_size."""
        if not self.memory_banks:
            raise RuntimeError("patchcore: the model is not fitted")
        self.model.eval()
        scores = torch.zeros(len(images))
        maps = torch.zeros(len(images), self.image_size, self.image_size)
        for c, bank in enumerate(self.memory_banks):
            rows = torch.nonzero(ids == c).flatten()
            self.model.memory_bank = bank
            for start in range(0, len(rows), batch_size):
                chunk = rows[start : start + batch_size]
                out = self.model(self._input(images[chunk]))
                scores[chunk] = out.pred_score.reshape(-1).float()
                maps[chunk] = out.anomaly_map.reshape(len(chunk), *maps.shape[1:])
        return scores, maps


def patchcore_to_parts(model: PatchcoreSet, extra: Mapping[str, Any]) -> dict:
    """A fitted model as a model folder's dict: settings as JSON, banks as arrays."""
    parts = {
        "config": {
            "backbone": dict(model.backbone_settings),
            "class_names": list(model.class_names),
            "image_size": model.image_size,
            "num_neighbors": int(model.model.num_neighbors),
            "weights_source": model.weights_source,
        },
        **dict(extra),
    }
    for c, bank in enumerate(model.memory_banks):
        parts[f"memory_bank_{c}"] = bank.numpy().astype(np.float32)
    return parts


def patchcore_from_parts(parts: Mapping[str, Any]) -> PatchcoreSet:
    """Rebuild a fitted :class:`PatchcoreSet` from :func:`patchcore_to_parts`."""
    config = parts["config"]
    model = PatchcoreSet(
        config["backbone"],
        config["class_names"],
        config["image_size"],
        config["num_neighbors"],
    )
    model.memory_banks = [
        torch.as_tensor(np.asarray(parts[f"memory_bank_{c}"], dtype=np.float32))
        for c in range(len(model.class_names))
    ]
    return model.eval()
