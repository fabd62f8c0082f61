"""Project settings (Kedro reads this module on start-up)."""

import os

from kedro.config import OmegaConfigLoader

from kedro_ad.hooks import DistributedRunHook, InputErrorHook, RunTagsHook

# Telemetry and hub access stay off even when `kedro` is called outside the Makefile.
for _key, _value in {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "KEDRO_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
    "GX_ANALYTICS_ENABLED": "false",
}.items():
    os.environ.setdefault(_key, _value)

HOOKS = (RunTagsHook(), InputErrorHook(), DistributedRunHook())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {
        "parameters": ["parameters*", "parameters*/**", "**/parameters*"],
    },
}
