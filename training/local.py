"""Run the SageMaker scripts on this machine, the way SageMaker runs them.

    python -m training.local train --spec SPEC --data CURATED_DIR [CURATED_DIR ...] --out RUN_DIR
        [--hp name=value ...]                      -> RUN_DIR/model.tar.gz, RUN_DIR/output/
    python -m training.local evaluate --spec SPEC --data CURATED_DIR [...] --challenger MODEL_TAR
        [--champion MODEL_TAR] --out EVAL_DIR      -> EVAL_DIR/evaluation.json, report.html
    python -m training.local predict --model MODEL_TAR --input FILE.json|FILE.csv
                                                   -> the output_fn body on stdout

``predict`` takes records in the dataset's shape, as an upload holds them: a JSON body
``{"instances": [record, ...]}`` or the upload's CSV (header and rows; the target column left out).

``train`` lays out /opt/ml under a temporary folder (input/config/*.json, input/data/<channel>,
model, output, code = the sourcedir from ``training.package``), sets the SM_* variables and runs
``python -m train --name value ...`` there with only the sourcedir on PYTHONPATH, exactly as the
XGBoost container does; then packs the model folder into ``model.tar.gz``. Checkpoints live in
``RUN_DIR/checkpoints``, so re-running an interrupted command resumes it. ``evaluate`` does the
same for a processing job (/opt/ml/processing/...). ``predict`` calls the four handlers of
``inference.py`` in this process; a bad input exits 2 with one line per problem (instance and
field), as the endpoint's 400 body lists them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from training.artifacts import pack_dir
from training.package import build_sourcedir


def _decode(value: str) -> object:
    """SageMaker JSON-decodes hyperparameter values when they parse, else keeps the string."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def _script_args(hps: dict[str, object]) -> list[str]:
    args: list[str] = []
    for key in sorted(hps):
        args += [f"-{key}" if len(key) == 1 else f"--{key}", str(hps[key])]
    return args


def _link_channel(channel: Path, sources: list[Path]) -> None:
    channel.mkdir(parents=True, exist_ok=True)
    for i, src in enumerate(sources):
        (channel / f"part-{i}").symlink_to(src.resolve(), target_is_directory=True)


def _env(code: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env["PYTHONPATH"] = str(code)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def train(spec: Path, data: list[Path], out: Path, hp_pairs: list[str]) -> int:
    hps: dict[str, object] = {}
    for pair in hp_pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            print(f"error: --hp expects name=value, got {pair!r}", file=sys.stderr)
            return 2
        hps[name] = _decode(value)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sluice-train-") as tmp:
        ml = Path(tmp) / "opt" / "ml"
        code = build_sourcedir(ml / "code")
        _link_channel(ml / "input" / "data" / "train", data)
        (ml / "input" / "data" / "spec").mkdir(parents=True)
        shutil.copy2(spec, ml / "input" / "data" / "spec" / spec.name)
        config = ml / "input" / "config"
        config.mkdir(parents=True)
        channels = ["spec", "train"]
        (config / "hyperparameters.json").write_text(
            json.dumps({k: json.dumps(v) for k, v in hps.items()})
        )
        (config / "inputdataconfig.json").write_text(
            json.dumps({c: {"TrainingInputMode": "File"} for c in channels})
        )
        (config / "resourceconfig.json").write_text(
            json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
        )
        for sub in ("model", "output/data", "output/intermediate"):
            (ml / sub).mkdir(parents=True)
        env = _env(
            code,
            {
                "SM_MODEL_DIR": str(ml / "model"),
                "SM_CHANNELS": json.dumps(channels, separators=(",", ":")),
                "SM_CHANNEL_TRAIN": str(ml / "input" / "data" / "train"),
                "SM_CHANNEL_SPEC": str(ml / "input" / "data" / "spec"),
                "SM_OUTPUT_DATA_DIR": str(ml / "output" / "data"),
                "SM_OUTPUT_DIR": str(ml / "output"),
                "SM_OUTPUT_INTERMEDIATE_DIR": str(ml / "output" / "intermediate"),
                "SM_INPUT_DIR": str(ml / "input"),
                "SM_INPUT_CONFIG_DIR": str(config),
                "SM_HPS": json.dumps(hps, sort_keys=True, separators=(",", ":")),
                **{f"SM_HP_{k.upper()}": str(v) for k, v in hps.items()},
                "SM_CURRENT_HOST": "algo-1",
                "SM_HOSTS": '["algo-1"]',
                "SM_NUM_CPUS": str(os.cpu_count() or 1),
                "SM_MODULE_NAME": "train",
                "SM_MODULE_DIR": str(code),
                "SM_USER_ARGS": json.dumps(_script_args(hps), separators=(",", ":")),
                "SLUICE_CHECKPOINT_DIR": str(out.resolve() / "checkpoints"),
            },
        )
        cmd = [sys.executable, "-m", "train", *_script_args(hps)]
        rc = subprocess.run(cmd, cwd=code, env=env, check=False).returncode
        if rc != 0:
            failure = f'ExecuteUserScriptError:\nCommand "{" ".join(cmd[1:])}" exited {rc}\n'
            (out / "failure").write_text(failure)
            print(f"error: training failed (exit {rc}); see the log above", file=sys.stderr)
            return 1
        (ml / "output" / "success").touch()
        pack_dir(ml / "model", out / "model.tar.gz")
        shutil.copytree(ml / "output" / "data", out / "output", dirs_exist_ok=True)
    print(f"model: {out / 'model.tar.gz'}", file=sys.stderr)
    return 0


def evaluate(
    spec: Path, data: list[Path], challenger: Path, champion: Path | None, out: Path
) -> int:
    with tempfile.TemporaryDirectory(prefix="sluice-evaluate-") as tmp:
        proc = Path(tmp) / "opt" / "ml" / "processing"
        code = build_sourcedir(proc / "input" / "code")
        _link_channel(proc / "input" / "data", data)
        inputs = {"challenger": challenger, "champion": champion, "spec": spec}
        for name, src in inputs.items():
            (proc / "input" / name).mkdir(parents=True)
            if src is not None:
                shutil.copy2(src, proc / "input" / name / src.name)
        output = proc / "output" / "evaluation"
        output.mkdir(parents=True)
        cmd = [
            sys.executable,
            str(code / "evaluate.py"),
            "--data", str(proc / "input" / "data"),
            "--challenger", str(proc / "input" / "challenger"),
            "--champion", str(proc / "input" / "champion"),
            "--spec-dir", str(proc / "input" / "spec"),
            "--output", str(output),
        ]  # fmt: skip
        rc = subprocess.run(cmd, cwd=code, env=_env(code, {}), check=False).returncode
        if rc != 0:
            print(f"error: evaluation failed (exit {rc}); see the log above", file=sys.stderr)
            return 1
        out.mkdir(parents=True, exist_ok=True)
        shutil.copytree(output, out, dirs_exist_ok=True)
    print(f"evaluation: {out / 'evaluation.json'}", file=sys.stderr)
    return 0


def predict(model: Path, input_file: Path) -> int:
    from datasets.record import FieldError
    from training import inference
    from training.artifacts import extract_model

    content_type = inference.CSV if input_file.suffix.lower() == ".csv" else inference.JSON
    try:
        body = input_file.read_bytes()
        with tempfile.TemporaryDirectory(prefix="sluice-model-") as tmp:
            loaded = inference.model_fn(str(extract_model(model, Path(tmp))))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    batch = inference.input_fn(body, content_type)
    if isinstance(batch, inference.ClientError):
        lines = [str(FieldError(**d)) for d in batch.details] or [str(batch)]
        print("\n".join(f"error: {line}" for line in lines), file=sys.stderr)
        return 2
    answer, _ = inference.output_fn(inference.predict_fn(batch, loaded), inference.JSON)
    print(answer)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.local",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="run train.py as a SageMaker training job would")
    p_train.add_argument("--spec", type=Path, required=True)
    p_train.add_argument("--data", type=Path, nargs="+", required=True)
    p_train.add_argument("--out", type=Path, required=True)
    p_train.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE")
    p_eval = sub.add_parser("evaluate", help="run evaluate.py as a processing job would")
    p_eval.add_argument("--spec", type=Path, required=True)
    p_eval.add_argument("--data", type=Path, nargs="+", required=True)
    p_eval.add_argument("--challenger", type=Path, required=True)
    p_eval.add_argument("--champion", type=Path, default=None)
    p_eval.add_argument("--out", type=Path, required=True)
    p_pred = sub.add_parser("predict", help="run inference.py's handlers on a request body")
    p_pred.add_argument("--model", type=Path, required=True)
    p_pred.add_argument("--input", type=Path, required=True)
    args = parser.parse_args(argv)

    for path in [*getattr(args, "data", []), getattr(args, "spec", None)]:
        if path is not None and not path.exists():
            print(f"error: {path}: no such file or directory", file=sys.stderr)
            return 2
    if args.command == "train":
        return train(args.spec, args.data, args.out, args.hp)
    if args.command == "evaluate":
        for path in (args.challenger, args.champion):
            if path is not None and not path.is_file():
                print(f"error: {path}: no such model archive", file=sys.stderr)
                return 2
        return evaluate(args.spec, args.data, args.challenger, args.champion, args.out)
    return predict(args.model, args.input)


if __name__ == "__main__":
    raise SystemExit(main())
