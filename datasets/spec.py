"""Dataset specs: the typed contract behind ``datasets/<name>.yaml``.

A spec declares the columns of an upload (types, PII, ranges, categories), the target and problem
type, the engineered features, the split, and the metric the quality gate uses. Ingestion,
training, evaluation and serving all read the same spec through this module, so it stays free of
heavy dependencies: PyYAML when installed, JSON otherwise (every JSON document is valid YAML).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

ColumnType = Literal["string", "int", "float", "bool", "timestamp", "category"]
ProblemType = Literal["binary", "multiclass", "regression"]
FeatureKind = Literal["day_of_week", "hour", "month", "duration_days", "duration_hours"]
UnknownColumns = Literal["drop", "reject", "keep"]

COLUMN_TYPES: tuple[str, ...] = ("string", "int", "float", "bool", "timestamp", "category")
PROBLEM_TYPES: tuple[str, ...] = ("binary", "multiclass", "regression")
FEATURE_KINDS: tuple[str, ...] = ("day_of_week", "hour", "month", "duration_days", "duration_hours")
UNKNOWN_COLUMN_POLICIES: tuple[str, ...] = ("drop", "reject", "keep")

#: metrics each problem type may gate on; False marks "lower is better"
METRICS: dict[str, dict[str, bool]] = {
    "binary": {"roc_auc": True, "pr_auc": True, "accuracy": True, "f1": True, "logloss": False},
    "multiclass": {"accuracy": True, "macro_f1": True, "logloss": False},
    "regression": {"rmse": False, "mae": False, "r2": True},
}


class SpecError(ValueError):
    """A dataset spec is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    required: bool = False
    pii: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[Any, ...] | None = None
    #: None = decided by role (see DatasetSpec.model_features); True/False forces it
    feature: bool | None = None


@dataclass(frozen=True)
class Feature:
    """An engineered feature computed by ingestion from timestamp columns."""

    name: str
    kind: FeatureKind
    column: str | None = None
    start: str | None = None
    end: str | None = None

    @property
    def sources(self) -> tuple[str, ...]:
        if self.kind.startswith("duration"):
            return (cast(str, self.start), cast(str, self.end))
        return (cast(str, self.column),)


@dataclass(frozen=True)
class Metric:
    name: str
    threshold: float
    margin: float = 0.0
    #: binary problems: the largest gap across segments of positive-prediction rate or
    #: true-positive rate that the gate accepts (None = not checked)
    max_segment_gap: float | None = None

    @property
    def higher_is_better(self) -> bool:
        for metrics in METRICS.values():
            if self.name in metrics:
                return metrics[self.name]
        raise SpecError(f"unknown metric {self.name!r}")


@dataclass(frozen=True)
class Split:
    validation: float = 0.15
    test: float = 0.15


@dataclass(frozen=True)
class Training:
    """What the training pipeline trains on, and with which defaults."""

    #: train on uploads curated in the last N days only (None = every upload so far)
    window_days: int | None = None
    #: hyperparameter defaults of this dataset (a run's input may override them)
    hyperparameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelFeature:
    """One input of the model, in the order the model sees them."""

    name: str
    kind: Literal["numeric", "categorical"]
    categories: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    version: int
    target_column: str
    problem_type: ProblemType
    columns: tuple[Column, ...]
    metric: Metric
    description: str = ""
    id_column: str | None = None
    unknown_columns: UnknownColumns = "reject"
    max_bad_row_fraction: float = 0.05
    features: tuple[Feature, ...] = ()
    split: Split = field(default_factory=Split)
    segments: tuple[str, ...] = ()
    positive_class: Any = None
    training: Training = field(default_factory=Training)

    # ------------------------------------------------------------------ lookups
    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def pii_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.pii)

    @property
    def timestamp_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.type == "timestamp")

    @property
    def target(self) -> Column:
        return self.column(self.target_column)

    @property
    def classes(self) -> tuple[Any, ...]:
        """Class labels in model order (binary: negative first, positive last)."""
        if self.problem_type == "regression":
            return ()
        cats = self.target.categories or ()
        if self.problem_type == "binary" and self.positive_class is not None:
            return (*(c for c in cats if c != self.positive_class), self.positive_class)
        return tuple(cats)

    def model_features(self) -> tuple[ModelFeature, ...]:
        """The model's inputs: declared columns by role, then engineered features.

        A column is a feature unless it is the id, the target, PII, a raw timestamp or a free
        string; ``feature: true|false`` in the spec overrides that.
        """
        out: list[ModelFeature] = []
        for col in self.columns:
            by_role = not (
                col.name in (self.id_column, self.target_column)
                or col.pii
                or col.type in ("timestamp", "string")
            )
            if not (col.feature if col.feature is not None else by_role):
                continue
            if col.type in ("category", "string"):
                out.append(ModelFeature(col.name, "categorical", col.categories))
            else:
                out.append(ModelFeature(col.name, "numeric"))
        out.extend(ModelFeature(f.name, "numeric") for f in self.features)
        return tuple(out)

    # ------------------------------------------------------------------ identity
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def fingerprint(self) -> str:
        """A stable hash of the whole spec: recorded in manifests and model metadata."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# ---------------------------------------------------------------------- parsing
def _load_document(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    try:
        import yaml
    except ImportError:  # the SageMaker container may lack PyYAML; JSON specs still load
        return json.loads(text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from exc


def _require(doc: dict[str, Any], key: str, where: str) -> Any:
    if key not in doc or doc[key] is None:
        raise SpecError(f"{where}: missing required field {key!r}")
    return doc[key]


def _choice(value: Any, allowed: tuple[str, ...], where: str) -> Any:
    if value not in allowed:
        raise SpecError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _parse_column(raw: Any, where: str) -> Column:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected a mapping, got {raw!r}")
    known = {"name", "type", "required", "pii", "min", "max", "categories", "feature"}
    extra = sorted(set(raw) - known)
    if extra:
        raise SpecError(f"{where}: unknown field(s) {', '.join(extra)}")
    name = str(_require(raw, "name", where))
    where = f"{where} ({name})"
    ctype = _choice(_require(raw, "type", where), COLUMN_TYPES, f"{where}.type")
    cats = raw.get("categories")
    if cats is not None and (not isinstance(cats, list) or not cats):
        raise SpecError(f"{where}.categories: expected a non-empty list")
    if ctype == "category" and not cats:
        raise SpecError(f"{where}: a category column needs 'categories'")
    lo, hi = _number(raw.get("min"), f"{where}.min"), _number(raw.get("max"), f"{where}.max")
    if lo is not None and hi is not None and lo > hi:
        raise SpecError(f"{where}: min {lo} is above max {hi}")
    feature = raw.get("feature")
    return Column(
        name=name,
        type=ctype,
        required=bool(raw.get("required", False)),
        pii=bool(raw.get("pii", False)),
        min=lo,
        max=hi,
        categories=tuple(cats) if cats else None,
        feature=None if feature is None else bool(feature),
    )


def _parse_feature(raw: Any, where: str, columns: dict[str, Column]) -> Feature:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected a mapping, got {raw!r}")
    name = str(_require(raw, "name", where))
    where = f"{where} ({name})"
    kind = _choice(_require(raw, "kind", where), FEATURE_KINDS, f"{where}.kind")
    feat = Feature(name, kind, raw.get("column"), raw.get("start"), raw.get("end"))
    needed = ("start", "end") if kind.startswith("duration") else ("column",)
    for key in needed:
        src = _require(raw, key, where)
        if src not in columns or columns[src].type != "timestamp":
            raise SpecError(f"{where}.{key}: {src!r} is not a timestamp column of the spec")
    if name in columns:
        raise SpecError(f"{where}: the name clashes with a declared column")
    return feat


def parse_spec(doc: Any, source: str = "<spec>") -> DatasetSpec:
    """Validate a spec document (the parsed YAML) and return the typed spec."""
    if not isinstance(doc, dict):
        raise SpecError(f"{source}: expected a mapping at the top level")
    name = str(_require(doc, "name", source))
    raw_cols = _require(doc, "columns", source)
    if not isinstance(raw_cols, list) or not raw_cols:
        raise SpecError(f"{source}.columns: expected a non-empty list")
    columns = tuple(_parse_column(c, f"{source}.columns[{i}]") for i, c in enumerate(raw_cols))
    by_name: dict[str, Column] = {}
    for col in columns:
        if col.name in by_name:
            raise SpecError(f"{source}.columns: {col.name!r} is declared twice")
        by_name[col.name] = col

    target = _require(doc, "target", source)
    if not isinstance(target, dict):
        raise SpecError(f"{source}.target: expected a mapping with 'column' and 'problem_type'")
    target_col = str(_require(target, "column", f"{source}.target"))
    problem = _choice(
        _require(target, "problem_type", f"{source}.target"),
        PROBLEM_TYPES,
        f"{source}.target.problem_type",
    )
    if target_col not in by_name:
        raise SpecError(f"{source}.target.column: {target_col!r} is not a declared column")
    tcol = by_name[target_col]
    if problem == "regression" and tcol.type not in ("int", "float"):
        raise SpecError(f"{source}.target: a regression target must be int or float")
    if problem != "regression":
        n = len(tcol.categories or ())
        if problem == "binary" and n != 2:
            raise SpecError(f"{source}.target: a binary target needs exactly 2 categories")
        if problem == "multiclass" and n < 3:
            raise SpecError(f"{source}.target: a multiclass target needs 3 or more categories")
    positive = target.get("positive_class")
    if positive is not None and positive not in (tcol.categories or ()):
        raise SpecError(f"{source}.target.positive_class: {positive!r} is not a category")

    id_col = doc.get("id_column")
    if id_col is not None and id_col not in by_name:
        raise SpecError(f"{source}.id_column: {id_col!r} is not a declared column")

    raw_metric = _require(doc, "metric", source)
    if not isinstance(raw_metric, dict):
        raise SpecError(f"{source}.metric: expected a mapping with 'name' and 'threshold'")
    metric_name = _choice(
        _require(raw_metric, "name", f"{source}.metric"),
        tuple(METRICS[problem]),
        f"{source}.metric.name (for {problem})",
    )
    metric = Metric(
        name=metric_name,
        threshold=cast(float, _number(_require(raw_metric, "threshold", source), "threshold")),
        margin=cast(float, _number(raw_metric.get("margin", 0.0), f"{source}.metric.margin")),
        max_segment_gap=_number(
            raw_metric.get("max_segment_gap"), f"{source}.metric.max_segment_gap"
        ),
    )
    if metric.max_segment_gap is not None and not 0 <= metric.max_segment_gap <= 1:
        raise SpecError(f"{source}.metric.max_segment_gap: must be between 0 and 1")

    raw_split = doc.get("split") or {}
    split = Split(
        validation=float(raw_split.get("validation", 0.15)), test=float(raw_split.get("test", 0.15))
    )
    if not (0 < split.validation < 1 and 0 < split.test < 1 and split.validation + split.test < 1):
        raise SpecError(f"{source}.split: fractions must be in (0, 1) and sum below 1")

    fraction = float(doc.get("max_bad_row_fraction", 0.05))
    if not 0 <= fraction <= 1:
        raise SpecError(f"{source}.max_bad_row_fraction: must be between 0 and 1")

    features = tuple(
        _parse_feature(f, f"{source}.features[{i}]", by_name)
        for i, f in enumerate(doc.get("features") or [])
    )
    if len({f.name for f in features}) != len(features):
        raise SpecError(f"{source}.features: feature names must be unique")
    segments = tuple(doc.get("segments") or ())
    for seg in segments:
        if seg not in by_name:
            raise SpecError(f"{source}.segments: {seg!r} is not a declared column")

    training = _parse_training(doc.get("training"), f"{source}.training")
    return DatasetSpec(
        name=name,
        version=int(doc.get("version", 1)),
        description=str(doc.get("description", "")),
        id_column=id_col,
        target_column=target_col,
        problem_type=problem,
        positive_class=positive,
        columns=columns,
        unknown_columns=_choice(
            doc.get("unknown_columns", "reject"),
            UNKNOWN_COLUMN_POLICIES,
            f"{source}.unknown_columns",
        ),
        max_bad_row_fraction=fraction,
        features=features,
        split=split,
        metric=metric,
        segments=segments,
        training=training,
    )


def _parse_training(raw: Any, where: str) -> Training:
    """``training: {window_days: N, hyperparameters: {name: value}}`` (both optional)."""
    if raw is None:
        return Training()
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected a mapping")
    extra = sorted(set(raw) - {"window_days", "hyperparameters"})
    if extra:
        raise SpecError(f"{where}: unknown field(s) {', '.join(extra)}")
    days = raw.get("window_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 1):
        raise SpecError(f"{where}.window_days: expected a whole number of days >= 1")
    hps = raw.get("hyperparameters") or {}
    if not isinstance(hps, dict):
        raise SpecError(f"{where}.hyperparameters: expected a mapping of name: value")
    return Training(window_days=days, hyperparameters=dict(hps))


def load_spec(path: str | Path) -> DatasetSpec:
    """Load and validate ``datasets/<name>.yaml`` (or a JSON rendering of it)."""
    p = Path(path)
    try:
        doc = _load_document(p)
    except OSError as exc:
        raise SpecError(f"{p}: cannot read spec ({exc.strerror})") from exc
    except ValueError as exc:  # YAML errors are re-raised as ValueError, like JSON's
        raise SpecError(f"{p}: not valid YAML/JSON: {exc}") from exc
    return parse_spec(doc, source=p.name)


SPECS_DIR = Path(__file__).resolve().parent


def spec_path(dataset: str, specs_dir: Path = SPECS_DIR) -> Path | None:
    """The spec file of a dataset name, or None when the dataset is not declared."""
    if not dataset or "/" in dataset or dataset.startswith("."):
        return None
    for suffix in (".yaml", ".yml", ".json"):
        candidate = specs_dir / f"{dataset}{suffix}"
        if candidate.is_file():
            return candidate
    return None
