"""Validate the samples table with great-expectations before any model sees it.

:func:`validate_manifest` runs an in-memory (ephemeral) GX context over the output
of :func:`kedro_ad.data.io.describe_files` and over a per-class summary, and returns
a JSON-serialisable report. :func:`check_report` turns a failed report into one
error line naming the first bad file and what is wrong with it.

GX never writes files or reaches the network here: the context keeps its stores in
memory, builds no Data Docs, and analytics are off (``GX_ANALYTICS_ENABLED`` and the
context's ``analytics_enabled``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

# GX reads this when it builds a context; set before great_expectations is imported.
os.environ["GX_ANALYTICS_ENABLED"] = "False"

DEFAULT_REPORT_PATH = "data/08_reporting/validation_report.json"
MAX_LISTED_FILES = 20
TRAIN_SPLITS = ("train", "val")
REQUIRED_COLUMNS = (
    "class",
    "split",
    "label",
    "image_path",
    "mask_path",
    "width",
    "height",
    "mode",
    "sha256",
    "image_ok",
    "image_error",
    "mask_width",
    "mask_height",
    "mask_binary",
    "mask_fraction",
    "mask_error",
)


class DataValidationError(ValueError):
    """The dataset failed validation; the message names the first bad file."""


@dataclass(frozen=True)
class _Check:
    """One expectation, and how to explain a row that breaks it."""

    key: str
    description: str
    column: str
    build: Callable[[], Any]  # returns the GX expectation
    detail: Callable[[pd.Series], str]


def _size(width: Any, height: Any) -> str:
    return f"{int(width)}x{int(height)}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _missing_mask_detail(row: pd.Series) -> str:
    expected = _text(row.get("expected_mask_path"))
    if expected:
        return f"anomalous image has no mask (expected {expected})"
    return "anomalous image has no mask"


def _manifest_checks() -> list[_Check]:
    """The expectations on the samples table, in the order they are reported."""
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    anomalous = Column("label") == 1
    both_readable = (Column("width") >= 0) & (Column("mask_width") >= 0)
    has_mask = Column("mask_width") >= 0
    return [
        _Check(
            "image_decodes",
            "Every image file exists and decodes completely",
            "image_ok",
            lambda: gxe.ExpectColumnValuesToBeInSet(
                column="image_ok", value_set=[True]
            ),
            lambda r: f"image file does not decode: {r['image_error']}",
        ),
        _Check(
            "mask_decodes",
            "Every mask file exists and decodes completely",
            "mask_error",
            lambda: gxe.ExpectColumnValuesToBeInSet(
                column="mask_error", value_set=[""]
            ),
            lambda r: f"mask {r['mask_path']} does not decode: {r['mask_error']}",
        ),
        _Check(
            "mask_present",
            "Every anomalous test image has a mask",
            "mask_path",
            lambda: gxe.ExpectColumnValuesToNotBeNull(
                column="mask_path",
                row_condition=anomalous & (Column("split") == "test"),
            ),
            _missing_mask_detail,
        ),
        _Check(
            "mask_size",
            "Every anomalous image's mask has the image's width and height",
            "image_size, mask_size",
            lambda: gxe.ExpectColumnPairValuesToBeEqual(
                column_A="image_size",
                column_B="mask_size",
                row_condition=anomalous & both_readable,
            ),
            lambda r: (
                "anomalous image has a mask of a different size (mask "
                f"{_size(r['mask_width'], r['mask_height'])}, image "
                f"{_size(r['width'], r['height'])})"
            ),
        ),
        _Check(
            "mask_binary",
            "Every mask is binary (background 0 and one defect level)",
            "mask_binary",
            lambda: gxe.ExpectColumnValuesToBeInSet(
                column="mask_binary", value_set=[True]
            ),
            lambda r: f"mask {r['mask_path']} is not binary (it has gray levels)",
        ),
        _Check(
            "mask_nonempty",
            "Every anomalous image's mask marks at least one defect pixel",
            "mask_fraction",
            lambda: gxe.ExpectColumnValuesToBeBetween(
                column="mask_fraction",
                min_value=0.0,
                strict_min=True,
                row_condition=anomalous & has_mask,
            ),
            lambda r: f"anomalous image has an empty mask {r['mask_path']}",
        ),
        _Check(
            "good_mask_empty",
            "Good images have no mask, or an empty one",
            "mask_fraction",
            lambda: gxe.ExpectColumnValuesToBeBetween(
                column="mask_fraction",
                min_value=0.0,
                max_value=0.0,
                row_condition=Column("label") == 0,
            ),
            lambda r: (
                f"good image has a non-empty mask {r['mask_path']} "
                f"({float(r['mask_fraction']):.1%} of its pixels)"
            ),
        ),
        _Check(
            "train_only_good",
            "Train and val splits hold only good images",
            "label",
            lambda: gxe.ExpectColumnValuesToBeInSet(
                column="label",
                value_set=[0],
                row_condition=Column("split").is_in(list(TRAIN_SPLITS)),
            ),
            lambda r: (
                f"{r['split']} image is labelled anomalous"
                + (f" ({r['defect_type']})" if _text(r.get("defect_type")) else "")
            ),
        ),
        _Check(
            "no_split_leak",
            "No image content (sha256) is in both train/val and test",
            "train_twin",
            lambda: gxe.ExpectColumnValuesToBeNull(
                column="train_twin", row_condition=Column("split") == "test"
            ),
            lambda r: f"test image has the same content as {r['train_twin']}",
        ),
    ]


def _class_check(min_train_images: int) -> _Check:
    import great_expectations.expectations as gxe

    return _Check(
        "class_train_images",
        f"Every class has at least {min_train_images} train images",
        "n_train",
        lambda: gxe.ExpectColumnValuesToBeBetween(
            column="n_train", min_value=min_train_images
        ),
        lambda r: (
            f"class '{r['class']}' has {int(r['n_train'])} train images "
            f"(at least {min_train_images} needed)"
        ),
    )


def _gx_context():
    """An in-memory GX context: no files, no Data Docs, no analytics, no bars."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _run_suite(
    context, name: str, frame: pd.DataFrame, checks: list[_Check], index_column: str
) -> dict[str, Any]:
    """Validate ``frame`` against ``checks``; return GX results keyed by check key."""
    import great_expectations as gx

    batch = (
        context.data_sources.add_pandas(name)
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe(name)
    )
    suite = context.suites.add(gx.ExpectationSuite(name=name))
    for check in checks:
        expectation = check.build()
        expectation.description = check.description
        expectation.meta = {"check": check.key}
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=suite)
    )
    result = definition.run(
        batch_parameters={"dataframe": frame},
        result_format={
            "result_format": "COMPLETE",
            "unexpected_index_column_names": [index_column],
        },
    )
    # GX does not keep the suite's order in its results; match them by meta.
    return {r.expectation_config.meta["check"]: r for r in result.results}


def _exception_message(result) -> str | None:
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():  # keyed by metric when several metrics failed
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _entry(
    check: _Check,
    result,
    frame: pd.DataFrame,
    index_column: str,
    name_of: Callable[[pd.Series], str],
) -> dict[str, Any]:
    """One report entry: outcome, count and the first offending files explained."""
    error = _exception_message(result)
    listed = (result.result or {}).get("unexpected_index_list") or []
    files, details = [], []
    for item in listed[:MAX_LISTED_FILES]:
        row = frame.loc[item[index_column]]
        files.append(name_of(row))
        details.append(check.detail(row))
    entry = {
        "expectation": result.expectation_config.type,
        "description": check.description,
        "column": check.column,
        "success": bool(result.success),
        "unexpected_count": int((result.result or {}).get("unexpected_count") or 0),
        "unexpected_files": files,
        "details": details,
    }
    if error:
        entry["error"] = error
    return entry


def _manifest_frame(manifest: pd.DataFrame) -> pd.DataFrame:
    """The columns GX checks, plus derived ones (sizes, train twin of test images)."""
    frame = manifest.reset_index(drop=True).copy()
    frame["row_id"] = range(len(frame))
    frame = frame.set_index("row_id", drop=False)
    frame["label"] = frame["label"].astype("int64")
    frame["image_size"] = [
        _size(w, h) for w, h in zip(frame["width"], frame["height"], strict=True)
    ]
    frame["mask_size"] = [
        _size(w, h)
        for w, h in zip(frame["mask_width"], frame["mask_height"], strict=True)
    ]
    in_train = frame["split"].isin(TRAIN_SPLITS) & (frame["sha256"] != "")
    twins = dict(
        zip(
            frame.loc[in_train, "sha256"],
            frame.loc[in_train, "image_path"],
            strict=True,
        )
    )
    frame["train_twin"] = [
        twins.get(sha) if split == "test" and sha else None
        for sha, split in zip(frame["sha256"], frame["split"], strict=True)
    ]
    frame["train_twin"] = frame["train_twin"].astype(object)
    return frame


def _class_folder(cls: str, paths: Sequence[str]) -> str:
    """The folder of a class, for messages: the nearest ancestor named after it."""
    if not paths:
        return cls
    common = Path(os.path.commonpath([str(Path(p).parent) for p in paths]))
    for folder in (common, *common.parents):
        if folder.name == cls:
            return str(folder)
    return str(common)


def _class_frame(frame: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """One row per expected class with its train (+val) image count, 0 if absent."""
    counts = frame.loc[frame["split"].isin(TRAIN_SPLITS), "class"].value_counts()
    rows = []
    for cls in classes:
        paths = frame.loc[frame["class"] == cls, "image_path"].tolist()
        rows.append(
            {
                "class": cls,
                "n_train": int(counts.get(cls, 0)),
                "folder": _class_folder(cls, paths),
            }
        )
    return pd.DataFrame(rows, columns=["class", "n_train", "folder"]).set_index(
        "class", drop=False
    )


def _resolve_classes(manifest: pd.DataFrame, classes) -> list[str]:
    if classes is None or (isinstance(classes, str) and classes == "all"):
        return sorted(str(c) for c in manifest["class"].dropna().unique())
    if isinstance(classes, str):
        return [classes]
    return [str(c) for c in classes]


def validate_manifest(
    manifest: pd.DataFrame,
    classes: list[str] | str | None,
    min_train_images: int = 5,
) -> dict[str, Any]:
    """Check the described samples table and return a JSON-serialisable report.

    Expectations: every image and mask decodes; every anomalous image has a mask of
    its own size that marks some defect pixels; masks are binary; good images have
    no (or an empty) mask; train/val hold only good images; no image content is in
    both train/val and test; every class in ``classes`` ("all" or None: the classes
    in the table) has at least ``min_train_images`` train+val images (a class with
    none counts 0). Mixed image modes (grayscale, RGB) are reported, not failed.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in manifest.columns]
    if missing:
        raise ValueError(
            f"manifest lacks columns {missing}; run kedro_ad.data.io.describe_files "
            "on the samples table first"
        )
    import great_expectations as gx

    classes = _resolve_classes(manifest, classes)
    frame = _manifest_frame(manifest)
    class_frame = _class_frame(frame, classes)

    modes = {
        str(mode): int(n)
        for mode, n in frame.loc[frame["image_ok"], "mode"].value_counts().items()
    }
    if modes:
        logger.info(
            "Image modes found: %s; every image is converted to RGB when read",
            ", ".join(f"{mode} ({n})" for mode, n in sorted(modes.items())),
        )

    context = _gx_context()
    checks = _manifest_checks()
    class_check = _class_check(min_train_images)
    results = _run_suite(context, "manifest", frame, checks, "row_id")
    class_results = _run_suite(context, "classes", class_frame, [class_check], "class")

    entries = [
        _entry(c, results[c.key], frame, "row_id", lambda r: str(r["image_path"]))
        for c in checks
    ]
    entries.append(
        _entry(
            class_check,
            class_results[class_check.key],
            class_frame,
            "class",
            lambda r: str(r["folder"]),
        )
    )
    success = all(e["success"] for e in entries)
    report = {
        "success": success,
        "n_rows": len(frame),
        "classes": classes,
        "class_train_images": {
            str(c): int(n)
            for c, n in zip(class_frame["class"], class_frame["n_train"], strict=True)
        },
        "modes": modes,
        "expectations": entries,
        "gx_version": gx.__version__,
    }
    failed = [e for e in entries if not e["success"]]
    if failed:
        logger.warning(
            "Data validation: %d of %d expectations failed: %s",
            len(failed),
            len(entries),
            "; ".join(f"{e['description']} ({e['unexpected_count']})" for e in failed),
        )
    else:
        logger.info(
            "Data validation passed: %d expectations on %d images of %d classes",
            len(entries),
            len(frame),
            len(classes),
        )
    return report


def check_report(report: dict, report_path: str = DEFAULT_REPORT_PATH) -> None:
    """Raise :class:`DataValidationError` (one line) if the report has failures.

    The line names the first offending file, what is wrong with it and the failed
    expectation, then how many more problems the report at ``report_path`` holds.
    """
    failed = [e for e in report.get("expectations", []) if not e.get("success")]
    if report.get("success") and not failed:
        return
    problems = sum(max(int(e.get("unexpected_count") or 0), 1) for e in failed)
    if failed:
        first = failed[0]
        if first.get("unexpected_files"):
            what = f"{first['unexpected_files'][0]}: {first['details'][0]}"
        elif first.get("error"):
            what = f"{first['description']}: could not be checked: {first['error']}"
        else:
            what = first.get("description", "an expectation failed")
        what += f" [{first.get('expectation', '?')}]"
    else:
        what = "the report is marked failed"
    more = problems - 1
    tail = f"{more} more problem{'s' if more != 1 else ''}, " if more > 0 else ""
    raise DataValidationError(
        f"Data validation failed: {what}; {tail}full report in {report_path}"
    )
