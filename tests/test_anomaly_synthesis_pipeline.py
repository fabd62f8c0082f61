"""The anomaly_synthesis pipeline: validation rows only, seeded, a preview figure."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from PIL import Image

from kedro_ad.pipelines.anomaly_synthesis import create_pipeline
from kedro_ad.synthesis import TextureFolderError

SIZE = 32
PARAMS = {
    "seed": 0,
    "texture_dir": None,
    "anomalous_copies": 1,
    "texture_classes": ["wood"],
    "synthesis": {"beta_range": [0.2, 0.8], "perlin_scale_range": [0, 6]},
    "foreground": {"distance_threshold": 6.0},
    "preview": {"per_class": 3},
}


def _arrays():
    """Two classes (a texture, an object); 4 train, 3 val, 2 test rows each."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    disc = (yy**2 + xx**2 <= (SIZE / 4) ** 2)[..., None]
    rows = {k: [] for k in ("images", "classes", "splits", "labels")}
    for cls in ("wood", "widget"):
        for split, count in (("train", 4), ("val", 3), ("test", 2)):
            for _ in range(count):
                if cls == "wood":
                    image = rng.integers(90, 170, (SIZE, SIZE, 3))
                else:
                    image = np.where(disc, 200, 30) + rng.normal(0, 4, (SIZE, SIZE, 3))
                rows["images"].append(np.clip(image, 0, 255).astype(np.uint8))
                rows["classes"].append(cls)
                rows["splits"].append(split)
                rows["labels"].append(0)
    arrays = {key: np.array(value) for key, value in rows.items()}
    n = len(arrays["labels"])
    arrays["masks"] = np.zeros((n, SIZE, SIZE), dtype=bool)
    arrays["image_paths"] = np.array([f"img_{i}.png" for i in range(n)])
    arrays["defect_types"] = np.array(["good"] * n)
    return arrays


class _Kept(MemoryDataset):
    """A MemoryDataset the runner cannot release, so the test can read it after."""

    def _release(self) -> None:
        pass


def _run(arrays, params):
    catalog = DataCatalog(
        {
            "dataset_arrays": MemoryDataset(arrays),
            "params:anomaly_synthesis": MemoryDataset(params),
            "synthetic_validation": _Kept(copy_mode="assign"),
            "synthesis_preview": _Kept(copy_mode="assign"),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog.load("synthetic_validation"), catalog.load("synthesis_preview")


def test_pipeline_uses_validation_rows_only_and_draws_a_preview():
    arrays = _arrays()
    synthetic, figure = _run(arrays, PARAMS)
    val = np.flatnonzero(arrays["splits"] == "val")
    assert set(synthetic["source_index"].tolist()) == set(val.tolist())
    assert synthetic["labels"].tolist() == [0] * 6 + [1] * 6
    normal = synthetic["labels"] == 0
    np.testing.assert_array_equal(
        synthetic["images"][normal], arrays["images"][synthetic["source_index"][normal]]
    )
    np.testing.assert_array_equal(
        synthetic["classes"], arrays["classes"][synthetic["source_index"]]
    )
    has_defect = synthetic["masks"].reshape(12, -1).any(axis=1)
    np.testing.assert_array_equal(has_defect, synthetic["labels"] == 1)
    assert set(synthetic["anomaly_sources"][~normal]) == {"self"}
    # a preview row per class: the foreground column and three synthetic images
    assert isinstance(figure, plt.Figure)
    titles = [ax.get_title() for ax in figure.axes if ax.get_images()]
    assert len(titles) == 2 * (1 + 3)
    assert sum("foreground estimate" in t for t in titles) == 1
    assert sum("whole image" in t for t in titles) == 1
    plt.close(figure)

    # train and test rows never reach the output; the result is seeded
    changed = {key: value.copy() for key, value in arrays.items()}
    other = arrays["splits"] != "val"
    changed["images"][other] = 255 - changed["images"][other]
    again, figure = _run(changed, PARAMS)
    plt.close(figure)
    for key in synthetic:
        np.testing.assert_array_equal(synthetic[key], again[key])
    reseeded, figure = _run(arrays, {**PARAMS, "seed": 1})
    plt.close(figure)
    assert not np.array_equal(reseeded["images"], synthetic["images"])


def test_pipeline_pastes_textures_from_a_folder_and_names_a_bad_one(tmp_path):
    folder = tmp_path / "dtd" / "banded"
    folder.mkdir(parents=True)
    for i in range(2):
        stripes = np.zeros((40, 40, 3), dtype=np.uint8)
        stripes[:, i::4] = (250, 20, 20)
        Image.fromarray(stripes).save(folder / f"t{i}.png")
    synthetic, figure = _run(_arrays(), {**PARAMS, "texture_dir": str(tmp_path)})
    plt.close(figure)
    anomalous = synthetic["labels"] == 1
    wood = synthetic["classes"] == "wood"
    assert set(synthetic["anomaly_sources"][anomalous & wood]) == {"texture"}

    missing = tmp_path / "no_such_textures"
    with pytest.raises(TextureFolderError, match="no_such_textures"):
        _run(_arrays(), {**PARAMS, "texture_dir": str(missing)})
