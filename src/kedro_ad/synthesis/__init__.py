"""Anomaly synthesis (DiffusionAD Sec. 3.3): Perlin masks on the object, texture or
self-augmented content, blended with opacity beta (Eq. 9).

Typical use in a training loop::

    textures = load_textures(params["texture_dir"], size)        # None: self only
    objects = foreground_masks(train_images, texture_rows(classes, texture_classes))
    images, masks, labels = synthesize_batch(
        batch, rng, textures=textures, object_mask=objects[batch_rows]
    )
"""

from .augment import OPS, grid_shuffle, random_augment
from .foreground import DEFAULT_TEXTURE_CLASSES, foreground_masks, texture_rows
from .perlin import perlin_masks, perlin_noise
from .synthesize import blend, build_synthetic_set, synthesize_batch, texture_patches
from .textures import TextureFolderError, load_textures

__all__ = [
    "DEFAULT_TEXTURE_CLASSES",
    "OPS",
    "TextureFolderError",
    "blend",
    "build_synthetic_set",
    "foreground_masks",
    "grid_shuffle",
    "load_textures",
    "perlin_masks",
    "perlin_noise",
    "random_augment",
    "synthesize_batch",
    "texture_patches",
    "texture_rows",
]
