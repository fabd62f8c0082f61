"""The ``kedro-ad`` console script.

``kedro-ad predict PATHS... --model models:/kedro-ad-diad@champion --out DIR``
scores images and folders with a registered model (:mod:`kedro_ad.batch`):
``DIR/predictions.csv`` (path, score, decision, threshold, overlay),
``DIR/overlays/*.png`` and, when files were skipped, ``DIR/skipped.csv``.
The MLflow store is the project's (``conf/base/mlflow.yml``, from the current
folder up) unless ``MLFLOW_TRACKING_URI`` says otherwise.

Exit status: 0 when every image was scored, 1 when some were skipped (named on
stderr and in ``skipped.csv``) or none could be, 2 when nothing could start (no
input, a model URI that does not resolve): then one line says why.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

logger = logging.getLogger("kedro_ad")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kedro-ad", description="Industrial anomaly detection (kedro-ad)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict",
        help="score images with a registered model: CSV + overlay PNGs",
        description="Score image files and folders (walked recursively) with a "
        "registered model; write predictions.csv, overlays/ and skipped.csv "
        "under --out, nowhere else.",
    )
    predict.add_argument("paths", nargs="+", help="image files or folders")
    predict.add_argument(
        "--model",
        default="models:/kedro-ad-diad@champion",
        help="MLflow model URI (default: %(default)s)",
    )
    predict.add_argument("--out", required=True, help="output folder (created)")
    predict.add_argument("--batch-size", type=int, default=8)
    predict.add_argument(
        "--class",
        dest="class_name",
        default=None,
        help="the class of every image, for models that need one (ldm, ran, padim, "
        "mean_image with several classes)",
    )
    predict.add_argument("--no-progress", action="store_true")
    return parser


def _quiet() -> None:
    """Keep the libraries' INFO lines off the terminal (Kedro configures logging
    again when the model is loaded, hence called twice)."""
    for noisy in ("mlflow", "alembic", "kedro", "kedro_mlflow", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("py.warnings").setLevel(logging.ERROR)
    for module in ("kedro_ad.models", "kedro_ad.pipelines"):
        logging.getLogger(module).setLevel(logging.WARNING)


def predict(args: argparse.Namespace) -> int:
    """The ``predict`` command; returns the exit status."""
    from kedro_ad import batch

    files, missing = batch.collect_files(args.paths)
    for row in missing:
        logger.warning("skipped %s: %s", row["path"], row["reason"])
    if not files:
        raise batch.BatchError(
            f"no input files in {' '.join(args.paths)}"
            + (" (not found)" if missing else "")
        )
    store = batch.tracking_uri()
    import kedro.framework.project  # noqa: F401  (configures logging: then quiet it)

    _quiet()
    out = Path(args.out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        # the model's files are downloaded inside --out and removed after loading
        with tempfile.TemporaryDirectory(dir=out, prefix=".model-") as download:
            model = batch.load_model(args.model, store, Path(download))
    except batch.BatchError:
        if created:  # leave no trace of a command that could not start
            shutil.rmtree(out, ignore_errors=True)
        raise
    result = batch.score_files(
        model,
        files,
        out,
        batch_size=args.batch_size,
        class_name=args.class_name,
        progress=not args.no_progress,
    )
    result.skipped[:0] = missing
    predictions, skipped = batch.tables(result)
    predictions.to_csv(out / "predictions.csv", index=False)
    if len(skipped):
        skipped.to_csv(out / "skipped.csv", index=False)
    n_ng = int((predictions["decision"] == "NG").sum())
    logger.info(
        "%d images scored with %s (%d NG, %d OK), %d skipped; results in %s",
        len(predictions),
        args.model,
        n_ng,
        len(predictions) - n_ng,
        len(skipped),
        out / "predictions.csv",
    )
    return 0 if len(skipped) == 0 else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``kedro-ad``; one line on stderr for any error that stops it."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="kedro-ad: %(message)s")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # the served model is a kedro-mlflow PythonModel without type hints: not ours
    warnings.filterwarnings("ignore", message=".*type hints to the `predict` method")
    _quiet()
    from kedro_ad.batch import BatchError

    try:
        return predict(args)
    except BatchError as exc:
        print(f"kedro-ad {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
