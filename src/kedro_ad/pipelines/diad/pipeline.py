"""DiAD, LDM or DDPM trained, scored and evaluated; and the one-node inference.

Each variant is its own namespace (``diad.*``, ``ldm.*``, ``ddpm.*``) with its own
parameters (``params:<variant>``). DiAD and LDM read ``autoencoder.model``. DiAD
trains in two nodes: the prior (``diad.prior``), then the SG network on it.
"""

from kedro.pipeline import Node, Pipeline

from kedro_ad.pipelines.evaluation import create_pipeline as create_evaluation

from . import nodes

VARIANTS = ("diad", "ldm", "ddpm")
TRAINED = ["model", "training_history", "figure_training", "figure_validation"]


def _check(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def create_pipeline(variant: str = "diad", **kwargs) -> Pipeline:
    """Training + test scoring (tag ``training``) + the shared evaluation."""
    _check(variant)
    latent = variant != "ddpm"
    ae = ["autoencoder.model"] if latent else []
    train = getattr(nodes, f"train_{variant}")
    score = nodes.score_test_split if latent else nodes.score_ddpm
    stages = []
    prior = []
    if variant == "diad":
        stages.append(
            Node(
                nodes.train_diad_prior,
                ["dataset_arrays", "autoencoder.model", "params:diad"],
                ["prior", "prior_history", "figure_prior_training"],
                name="train_diad_prior_node",
                tags=["training"],
            )
        )
        prior = ["prior"]
    stages += [
        Node(
            train,
            [
                "dataset_arrays",
                "synthetic_validation",
                *ae,
                *prior,
                f"params:{variant}",
                "params:checkpoint_rule",
            ],
            TRAINED,
            name=f"train_{variant}_node",
            tags=["training"],
        ),
        Node(
            score,
            ["model", *ae, "dataset_arrays", f"params:{variant}"],
            ["predictions", "figure_reconstructions"],
            name=f"score_{variant}_node",
            tags=["training"],
        ),
    ]
    method = Pipeline(
        stages,
        namespace=variant,
        inputs={"dataset_arrays", "synthetic_validation", *ae},
        parameters={f"params:{variant}", "params:checkpoint_rule"},
    )
    return method + create_evaluation(method=variant)


def create_inference_pipeline(variant: str = "diad") -> Pipeline:
    """``<variant>.images`` -> ``<variant>.inference_output`` (scores and maps)."""
    _check(variant)
    ae = ["autoencoder.model"] if variant != "ddpm" else []
    return Pipeline(
        [
            Node(
                getattr(nodes, f"predict_{variant}"),
                [f"{variant}.model", *ae, f"{variant}.images", f"params:{variant}"],
                f"{variant}.inference_output",
                name=f"predict_{variant}_node",
                tags=["inference"],
            )
        ]
    )
