"""The shared figures: panel grids and the examples they show."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from kedro_ad.visualization import Panel, examples_per_class, panel_figure


def test_examples_are_the_first_anomalous_image_of_each_class():
    classes = np.array(["b", "a", "b", "a", "c"])
    labels = np.array([1, 0, 1, 1, 0])
    assert examples_per_class(classes, labels, 6) == [3, 0]  # a, b; c has none
    assert examples_per_class(classes, labels, 1) == [3]


def test_panel_figure_rows_titles_labels_and_kinds():
    rng = np.random.default_rng(0)
    image = rng.random((8, 8, 3))
    mask = np.zeros((8, 8), bool)
    mask[2:5, 2:5] = True
    rows = [
        [
            Panel(image, "input", outline=mask),
            Panel(rng.random((8, 8)), "map"),
            Panel(mask, "mask", kind="mask"),
            Panel(image, "overlay", overlay=rng.random((8, 8))),
        ],
        [Panel(image, "input"), Panel(rng.random((8, 8)), "map", vmin=0, vmax=1)],
    ]
    fig = panel_figure(rows, ["first", "second"], "a title")
    assert len(fig.axes) == 2 * 4
    assert [ax.get_title() for ax in fig.axes[:4]] == [
        "input",
        "map",
        "mask",
        "overlay",
    ]
    assert fig.axes[0].get_ylabel() == "first" and fig.axes[4].get_ylabel() == "second"
    assert fig.axes[5].get_images()[0].get_clim() == (0, 1)
    assert fig.axes[2].get_images()[0].get_cmap().name == "gray"
    assert not fig.axes[6].get_images()  # the second row is shorter: blank
    plt.close(fig)
    with pytest.raises(ValueError, match="panel kind"):
        panel_figure([[Panel(mask, kind="nope")]], ["x"], "t")
    plt.close("all")
