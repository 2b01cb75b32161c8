"""SageMaker processing job: challenger vs champion on the same holdout, and the gate's verdict.

    python3 evaluate.py [--data DIR] [--challenger DIR|TAR] [--champion DIR|TAR] [--spec FILE |
                        --spec-dir DIR] [--output DIR]

Paths default to environment variables, then to the processing layout:
``SLUICE_EVAL_DATA`` (/opt/ml/processing/input/data: curated data), ``SLUICE_EVAL_CHALLENGER``
(/opt/ml/processing/input/challenger: model.tar.gz), ``SLUICE_EVAL_CHAMPION``
(/opt/ml/processing/input/champion: model.tar.gz of the serving model; missing or empty = none),
``SLUICE_EVAL_SPEC_DIR`` (/opt/ml/processing/input/spec) and ``SLUICE_EVAL_OUTPUT``
(/opt/ml/processing/output/evaluation).

The holdout is the test share of the split the challenger recorded (a hash of the id column), so
both models are scored on rows neither trained on. Writes ``evaluation.json`` (NaN as null) and
``report.html``; prints ``challenger-<metric>=...;``, ``champion-<metric>=...;`` and
``promote=0|1;``. A rejection is a result, not a failure: the exit code is 0 either way.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datasets.spec import DatasetSpec, SpecError, load_spec
from training import metrics, report
from training.artifacts import LoadedModel, extract_model, load_model_dir
from training.data import (
    TEST,
    DataError,
    SplitConfig,
    assign_split,
    encode_target,
    load_curated,
    stored_columns,
)
from training.schema import encode_table

PROCESSING = Path("/opt/ml/processing")
EVALUATION_FORMAT = "sluice-evaluation/1"


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str


def decide(
    metric: str,
    higher_is_better: bool,
    threshold: float,
    margin: float,
    challenger: float,
    champion: float | None,
) -> Verdict:
    """The gate: the challenger must meet the threshold and beat the champion by the margin."""
    if math.isnan(challenger):
        return Verdict(False, f"the challenger's {metric} is undefined on the holdout")
    meets = challenger >= threshold if higher_is_better else challenger <= threshold
    if not meets:
        side = "below" if higher_is_better else "above"
        return Verdict(
            False, f"challenger {metric} {challenger:.4f} is {side} the threshold {threshold:g}"
        )
    if champion is None or math.isnan(champion):
        return Verdict(
            True,
            f"challenger {metric} {challenger:.4f} meets the threshold {threshold:g}; "
            "there is no champion to beat",
        )
    gain = challenger - champion if higher_is_better else champion - challenger
    if gain >= margin:
        return Verdict(
            True,
            f"challenger {metric} {challenger:.4f} beats the champion's {champion:.4f} "
            f"by {gain:.4f} (margin {margin:g})",
        )
    if gain < 0:
        return Verdict(
            False,
            f"the champion is better: {metric} {champion:.4f} vs the challenger's {challenger:.4f}",
        )
    return Verdict(
        False,
        f"challenger {metric} {challenger:.4f} is within the margin of the champion's "
        f"{champion:.4f} (gain {gain:.4f} < margin {margin:g})",
    )


def parse_args(argv: list[str] | None, env: dict[str, str]) -> argparse.Namespace:
    def default(var: str, sub: str) -> str:
        return env.get(var, str(PROCESSING / sub))

    p = argparse.ArgumentParser(prog="evaluate.py", description="Challenger vs champion.")
    p.add_argument("--data", default=default("SLUICE_EVAL_DATA", "input/data"))
    p.add_argument("--challenger", default=default("SLUICE_EVAL_CHALLENGER", "input/challenger"))
    p.add_argument("--champion", default=default("SLUICE_EVAL_CHAMPION", "input/champion"))
    p.add_argument("--spec", default=None, help="spec file; default: the one in --spec-dir")
    p.add_argument("--spec-dir", default=default("SLUICE_EVAL_SPEC_DIR", "input/spec"))
    p.add_argument("--output", default=default("SLUICE_EVAL_OUTPUT", "output/evaluation"))
    return p.parse_args(argv)


def _spec(args: argparse.Namespace) -> DatasetSpec:
    if args.spec:
        return load_spec(args.spec)
    folder = Path(args.spec_dir)
    found = sorted(p for p in folder.glob("*") if p.suffix in (".yaml", ".yml", ".json"))
    if len(found) != 1:
        raise SpecError(f"expected exactly one spec file in {folder} (found {len(found)})")
    return load_spec(found[0])


def _champion_path(path: str) -> Path | None:
    p = Path(path)
    if not p.exists() or (p.is_dir() and not any(p.iterdir())):
        return None
    return p


def _clean(value: Any) -> Any:
    """JSON without NaN/Infinity (Step Functions and most parsers reject them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _importance(model: LoadedModel) -> dict[str, float]:
    raw = model.booster.get_score(importance_type="total_gain")
    gain = {k: float(v) for k, v in raw.items() if isinstance(v, int | float)}
    total = sum(gain.values()) or 1.0
    return {name: gain.get(name, 0.0) / total for name in model.schema.names}


def score_model(
    model: LoadedModel, holdout: pa.Table, y: np.ndarray, spec: DatasetSpec
) -> tuple[dict[str, Any], np.ndarray]:
    """Everything evaluation.json says about one model, and its holdout scores."""
    scores = model.scores(encode_table(holdout, model.schema))
    problem = model.schema.problem_type
    result: dict[str, Any] = {
        "model": {
            k: model.metadata.get(k) for k in ("run_key", "created_at", "spec", "code", "device")
        },
        "metrics": metrics.compute(problem, y, scores),
    }
    result["primary"] = result["metrics"].get(spec.metric.name, float("nan"))
    if problem == "regression":
        result["residuals"] = metrics.residual_summary(y, scores)
    else:
        k = len(model.schema.classes)
        result["confusion_matrix"] = {
            "labels": list(model.schema.classes),
            "matrix": metrics.confusion_matrix(problem, y, scores, k),
        }
    segments: dict[str, Any] = {}
    for column in spec.segments:
        values = holdout.column(column)
        segments[column] = {}
        for value in pc.unique(pc.drop_null(values)).to_pylist():
            mask = np.asarray(pc.fill_null(pc.equal(values, value), False), dtype=bool)
            segments[column][str(value)] = {
                "rows": int(mask.sum()),
                "metrics": metrics.compute(problem, y[mask], scores[mask]),
            }
    result["segments"] = segments
    result["feature_importance"] = _importance(model)
    return result, scores


def run(args: argparse.Namespace) -> dict[str, Any]:
    spec = _spec(args)
    with tempfile.TemporaryDirectory(prefix="sluice-eval-") as tmp:
        return _run(args, spec, Path(tmp))


def _run(args: argparse.Namespace, spec: DatasetSpec, tmp: Path) -> dict[str, Any]:
    challenger = load_model_dir(extract_model(Path(args.challenger), tmp / "challenger"))
    champion_path = _champion_path(args.champion)
    champion = (
        load_model_dir(extract_model(champion_path, tmp / "champion")) if champion_path else None
    )
    split_doc = challenger.metadata.get("split")
    split = SplitConfig.from_dict(split_doc) if split_doc else SplitConfig.from_spec(spec)
    models = [m for m in (challenger, champion) if m is not None]
    columns, features = stored_columns(spec, [c for m in models for c in m.schema.names])
    columns += [spec.target_column, *spec.segments, *([split.column] if split.column else [])]
    data = load_curated([Path(args.data)], list(dict.fromkeys(columns)), features)
    in_test = assign_split(data.table, split) == TEST
    y, usable = encode_target(data.table, challenger.schema)
    mask = in_test & usable
    holdout = data.table.filter(pa.array(mask))
    y = y[mask]
    if y.size == 0:
        raise DataError("the holdout is empty: no labelled rows fall in the test share")

    doc: dict[str, Any] = {
        "format": EVALUATION_FORMAT,
        "dataset": spec.name,
        "spec": {"name": spec.name, "version": spec.version, "fingerprint": spec.fingerprint},
        "metric": {
            "name": spec.metric.name,
            "higher_is_better": spec.metric.higher_is_better,
            "threshold": spec.metric.threshold,
            "margin": spec.metric.margin,
        },
        "holdout": {"rows": int(y.size), "split": split.to_dict(), "data": data.files},
    }
    doc["challenger"], ch_scores = score_model(challenger, holdout, y, spec)
    scores = {"challenger": ch_scores}
    doc["champion"] = None
    if champion is not None:
        doc["champion"], scores["champion"] = score_model(champion, holdout, y, spec)
    verdict = decide(
        spec.metric.name,
        spec.metric.higher_is_better,
        spec.metric.threshold,
        spec.metric.margin,
        doc["challenger"]["primary"],
        doc["champion"]["primary"] if doc["champion"] else None,
    )
    doc.update(verdict="promote" if verdict.promote else "reject", promote=verdict.promote)
    doc["reason"] = verdict.reason
    doc = _clean(doc)

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "report.html").write_text(report.render(doc, y, scores, challenger.schema))
    for name in ("challenger", "champion"):
        if doc[name]:
            values = doc[name]["metrics"]
            print(" ".join(f"{name}-{k}={v};" for k, v in values.items() if v is not None))
    print(f"promote={int(verdict.promote)}; reason: {verdict.reason}", flush=True)
    return doc


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    args = parse_args(argv, env)
    try:
        run(args)
    except (SpecError, DataError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
