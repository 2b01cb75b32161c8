"""The SageMaker script-mode contract, as the XGBoost framework container runs user code.

Pure functions, no LocalStack imports: they turn a CreateTrainingJob request into the folders,
environment and command line a container would give the user's script.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESERVED_PREFIX = "sagemaker_"
HOST = "algo-1"


@dataclass(frozen=True)
class MlLayout:
    """The ``/opt/ml`` tree of one job, rooted in a local folder."""

    root: Path

    @property
    def input_config(self) -> Path:
        return self.root / "input" / "config"

    @property
    def input_data(self) -> Path:
        return self.root / "input" / "data"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def output_data(self) -> Path:
        return self.root / "output" / "data"

    @property
    def intermediate(self) -> Path:
        return self.root / "output" / "intermediate"

    @property
    def code(self) -> Path:
        return self.root / "code"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def channel(self, name: str) -> Path:
        return self.input_data / name

    def create(self) -> None:
        for path in (
            self.input_config,
            self.input_data,
            self.model,
            self.output_data,
            self.intermediate,
            self.code,
            self.checkpoints,
        ):
            path.mkdir(parents=True, exist_ok=True)


def decode_hyperparameters(raw: dict[str, str]) -> dict[str, Any]:
    """JSON-decode each value when it parses (the SDK JSON-encodes them), else keep the string."""
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            decoded[key] = json.loads(value)
        except (TypeError, ValueError):
            decoded[key] = value
    return decoded


def split_hyperparameters(raw: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(user hyperparameters, ``sagemaker_*`` framework settings), both decoded."""
    decoded = decode_hyperparameters(raw)
    user = {k: v for k, v in decoded.items() if not k.startswith(RESERVED_PREFIX)}
    framework = {k: v for k, v in decoded.items() if k.startswith(RESERVED_PREFIX)}
    return user, framework


def to_cli_args(hyperparameters: dict[str, Any]) -> list[str]:
    """Sorted keys, ``--key value`` (``-k`` for one-letter keys), value = ``str()`` of it."""
    args: list[str] = []
    for key in sorted(hyperparameters):
        flag = f"-{key}" if len(key) == 1 else f"--{key}"
        args += [flag, str(hyperparameters[key])]
    return args


def module_name(program: str) -> str:
    """``train.py`` runs as ``python -m train``."""
    name = program[:-3] if program.endswith(".py") else program
    return name.replace("/", ".")


def _env_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def training_environment(
    *,
    layout: MlLayout,
    job_name: str,
    region: str,
    hyperparameters: dict[str, Any],
    channels: list[str],
    program: str,
    submit_directory: str,
    num_cpus: int,
    input_data_config: dict[str, Any],
    resource_config: dict[str, Any],
) -> dict[str, str]:
    """The ``SM_*`` variables (and friends) the container sets for the user's script."""
    module = module_name(program)
    args = to_cli_args(hyperparameters)
    training_env: dict[str, Any] = {
        "channel_input_dirs": {name: str(layout.channel(name)) for name in sorted(channels)},
        "current_host": HOST,
        "framework_module": None,
        "hosts": [HOST],
        "hyperparameters": hyperparameters,
        "input_config_dir": str(layout.input_config),
        "input_data_config": input_data_config,
        "input_dir": str(layout.root / "input"),
        "job_name": job_name,
        "log_level": 20,
        "model_dir": str(layout.model),
        "module_dir": submit_directory,
        "module_name": module,
        "network_interface_name": "eth0",
        "num_cpus": num_cpus,
        "num_gpus": 0,
        "output_data_dir": str(layout.output_data),
        "output_dir": str(layout.output),
        "output_intermediate_dir": str(layout.intermediate),
        "resource_config": resource_config,
        "user_entry_point": program,
    }
    env = {
        "SM_HOSTS": _env_value([HOST]),
        "SM_NETWORK_INTERFACE_NAME": "eth0",
        "SM_HPS": _env_value(hyperparameters),
        "SM_USER_ENTRY_POINT": program,
        "SM_FRAMEWORK_PARAMS": "{}",
        "SM_RESOURCE_CONFIG": _env_value(resource_config),
        "SM_INPUT_DATA_CONFIG": _env_value(input_data_config),
        "SM_OUTPUT_DATA_DIR": str(layout.output_data),
        "SM_CHANNELS": _env_value(sorted(channels)),
        "SM_CURRENT_HOST": HOST,
        "SM_MODULE_NAME": module,
        "SM_LOG_LEVEL": "20",
        "SM_FRAMEWORK_MODULE": "",
        "SM_INPUT_DIR": str(layout.root / "input"),
        "SM_INPUT_CONFIG_DIR": str(layout.input_config),
        "SM_OUTPUT_DIR": str(layout.output),
        "SM_NUM_CPUS": str(num_cpus),
        "SM_NUM_GPUS": "0",
        "SM_MODEL_DIR": str(layout.model),
        "SM_MODULE_DIR": submit_directory,
        "SM_TRAINING_ENV": _env_value(training_env),
        "SM_USER_ARGS": _env_value(args),
        "SM_OUTPUT_INTERMEDIATE_DIR": str(layout.intermediate),
        "SAGEMAKER_JOB_NAME": job_name,
        "CURRENT_HOST": HOST,
        "SAGEMAKER_REGION": region,
        "TRAINING_JOB_NAME": job_name,
    }
    for name in channels:
        env[f"SM_CHANNEL_{name.upper()}"] = str(layout.channel(name))
    for key, value in hyperparameters.items():
        env[f"SM_HP_{key.upper()}"] = _env_value(value)
    return env


def failure_reason(command: list[str], exit_code: int, stderr_tail: str, limit: int = 1024) -> str:
    """FailureReason as the training toolkit reports a failing user script."""
    lines = [line for line in stderr_tail.splitlines() if line.strip()]
    message = lines[-1].strip() if lines else ""
    reason = (
        "AlgorithmError: ExecuteUserScriptError:\n"
        f"ExitCode {exit_code}\n"
        f'ErrorMessage "{message}"\n'
        f'Command "{" ".join(command)}", exit code: {exit_code}'
    )
    return reason[:limit]


def rewrite_opt_ml(value: str, root: Path) -> str:
    """``/opt/ml/...`` paths in a processing job's arguments point into the local tree."""
    if value == "/opt/ml" or value.startswith("/opt/ml/"):
        return str(root) + value[len("/opt/ml") :]
    return value


def cpu_count() -> int:
    return os.cpu_count() or 1
