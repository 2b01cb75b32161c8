"""Dataset specs: the typed contract behind ``datasets/<name>.yaml``.

A spec declares the columns of an upload (types, presence, nullability, PII, ranges, categories,
missing-value markers), the target and problem type, the engineered features, the split, and the
metric the quality gate uses. Ingestion, training, evaluation and serving all read the same spec
through this module, so it stays free of heavy dependencies: PyYAML when installed, JSON otherwise
(every JSON document is valid YAML). A spec is checked as strictly as the data: an unknown key at
any level is an error naming the file, the key and the nearest known key.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
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


#: the keys a spec may use, per level (anything else is an error naming the nearest of these)
TOP_KEYS = (
    "name", "version", "description", "id_column", "target", "columns", "unknown_columns",
    "max_bad_row_fraction", "na_values", "features", "split", "metric", "segments", "training",
    "retrain",
)  # fmt: skip
COLUMN_KEYS = (
    "name", "type", "required", "optional", "pii", "min", "max", "categories", "na_values",
    "feature",
)  # fmt: skip
TARGET_KEYS = ("column", "problem_type", "positive_class")
FEATURE_KEYS = ("name", "kind", "column", "start", "end")
SPLIT_KEYS = ("validation", "test")
METRIC_KEYS = ("name", "threshold", "margin", "max_segment_gap")
TRAINING_KEYS = ("window_days", "hyperparameters")
RETRAIN_KEYS = ("schedule", "cooldown_hours")
#: a run started by drift or quality waits this long after the previous one (spec default)
DEFAULT_COOLDOWN_HOURS = 24.0
#: EventBridge schedule expressions: ``cron(min hour day-of-month month day-of-week year)``
#: (six fields, one of the two day fields ``?``) or ``rate(N minute(s)|hour(s)|day(s))``
_CRON = re.compile(r"^cron\((\S+ ){5}\S+\)$")
_RATE = re.compile(r"^rate\(([1-9][0-9]*) (minute|minutes|hour|hours|day|days)\)$")


class SpecError(ValueError):
    """A dataset spec is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    #: the value may not be missing (empty, or one of the column's missing-value markers)
    required: bool = False
    #: the column may be absent from a file (then all missing); otherwise absent = rejected
    optional: bool = False
    pii: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[Any, ...] | None = None
    #: strings read as missing in this column; None = the spec's (typed columns only)
    na_values: tuple[str, ...] | None = None
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
class Retrain:
    """When the dataset is retrained besides its uploads (README, "Retraining policies").

    Drift and model-quality alarms start runs; ``cooldown_hours`` is how long after a run they
    started the next alarm waits (so a drifting stream does not start a run per window).
    ``schedule`` (an EventBridge expression) starts a run on a clock too. A run whose inputs
    are the serving model's ends at once as skipped, whatever started it.
    """

    schedule: str | None = None
    cooldown_hours: float = DEFAULT_COOLDOWN_HOURS


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
    retrain: Retrain = field(default_factory=Retrain)
    #: strings read as missing in typed columns, besides the empty field (always missing)
    na_values: tuple[str, ...] = ()

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

    def na_values_for(self, col: Column) -> tuple[str, ...]:
        """The markers read as missing in a column, besides the empty field.

        A column's own ``na_values`` wins; otherwise the spec's apply to typed columns (numbers,
        bools, timestamps, categories) and never to a string column, where ``NA`` may be a real
        value (a country code, a name).
        """
        if col.na_values is not None:
            return col.na_values
        return () if col.type == "string" else self.na_values

    @property
    def record_columns(self) -> tuple[str, ...]:
        """The fields of a prediction record: the declared columns minus the target."""
        return tuple(c.name for c in self.columns if c.name != self.target_column)

    def input_columns(self) -> tuple[str, ...]:
        """The declared columns the model's features come from (a prediction needs only these).

        The model's declared-column features, and the timestamp columns its engineered features
        are computed from, in spec order.
        """
        wanted = {f.name for f in self.model_features()}
        for feat in self.features:
            wanted.update(feat.sources)
        return tuple(c.name for c in self.columns if c.name in wanted)

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
        """A stable hash of the spec: recorded in manifests and model metadata.

        Everything but the retraining policy (``retrain``), which says when a model is trained,
        not what it is: changing a schedule must not make the serving model's inputs differ.
        """
        doc = self.to_dict()
        doc.pop("retrain", None)
        blob = json.dumps(doc, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def to_document(self) -> dict[str, Any]:
        """The spec as a spec file holds it: ``parse_spec(spec.to_document()) == spec``.

        Saved with a model as JSON (the serving container may lack PyYAML), so the model carries
        the record shape it was trained on.
        """
        doc: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "target": {"column": self.target_column, "problem_type": self.problem_type},
            "columns": [_column_document(c) for c in self.columns],
            "unknown_columns": self.unknown_columns,
            "max_bad_row_fraction": self.max_bad_row_fraction,
            "na_values": list(self.na_values),
            "features": [
                {k: v for k, v in asdict(f).items() if v is not None} for f in self.features
            ],
            "split": asdict(self.split),
            "metric": {k: v for k, v in asdict(self.metric).items() if v is not None},
            "segments": list(self.segments),
        }
        if self.training != Training():
            doc["training"] = asdict(self.training)
        if self.retrain != Retrain():
            doc["retrain"] = {k: v for k, v in asdict(self.retrain).items() if v is not None}
        if self.id_column is not None:
            doc["id_column"] = self.id_column
        if self.positive_class is not None:
            doc["target"]["positive_class"] = self.positive_class
        return doc


def _column_document(col: Column) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": col.name, "type": col.type}
    for key in ("required", "optional", "pii"):
        if getattr(col, key):
            doc[key] = True
    for key in ("min", "max", "feature"):
        if getattr(col, key) is not None:
            doc[key] = getattr(col, key)
    if col.categories is not None:
        doc["categories"] = list(col.categories)
    if col.na_values is not None:
        doc["na_values"] = list(col.na_values)
    return doc


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


def nearest(word: str, candidates: tuple[str, ...] | list[str]) -> str:
    """The candidate most like ``word`` (for "did you mean" messages)."""
    return max(
        candidates,
        key=lambda c: (difflib.SequenceMatcher(None, word.lower(), c.lower()).ratio(), -len(c)),
    )


def _mapping(raw: Any, where: str, known: tuple[str, ...]) -> dict[str, Any]:
    """``raw`` as a mapping whose keys are all known; an unknown key names the nearest one."""
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected a mapping with keys among {', '.join(known)}")
    for key in raw:
        if key not in known:
            raise SpecError(
                f"{where}: unknown key {key!r} (did you mean {nearest(str(key), known)!r}?)"
            )
    return raw


def _flag(raw: dict[str, Any], key: str, where: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise SpecError(f"{where}.{key}: expected true or false, got {value!r}")
    return value


def _markers(raw: dict[str, Any], where: str) -> tuple[str, ...] | None:
    value = raw.get("na_values")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where}.na_values: expected a list of strings, got {value!r}")
    if "" in value:
        raise SpecError(f"{where}.na_values: the empty field is always missing; list markers only")
    return tuple(dict.fromkeys(value))


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
    if isinstance(raw, dict) and isinstance(raw.get("name"), str):
        where = f"{where} ({raw['name']})"
    raw = _mapping(raw, where, COLUMN_KEYS)
    name = str(_require(raw, "name", where))
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
    required, optional = _flag(raw, "required", where), _flag(raw, "optional", where)
    if required and optional:
        raise SpecError(
            f"{where}: required and optional contradict each other (optional: the column may "
            "be absent from a file, and then its values are missing)"
        )
    return Column(
        name=name,
        type=ctype,
        required=required,
        optional=optional,
        pii=_flag(raw, "pii", where),
        min=lo,
        max=hi,
        categories=tuple(cats) if cats else None,
        na_values=_markers(raw, where),
        feature=None if feature is None else bool(feature),
    )


def _parse_feature(raw: Any, where: str, columns: dict[str, Column]) -> Feature:
    if isinstance(raw, dict) and isinstance(raw.get("name"), str):
        where = f"{where} ({raw['name']})"
    raw = _mapping(raw, where, FEATURE_KEYS)
    name = str(_require(raw, "name", where))
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
    doc = _mapping(doc, source, TOP_KEYS)
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

    target = _mapping(_require(doc, "target", source), f"{source}.target", TARGET_KEYS)
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
    for role, col_name in (("target", target_col), ("id column", id_col)):
        if col_name is not None and by_name[col_name].optional:
            raise SpecError(f"{source}.columns ({col_name}): the {role} cannot be optional")

    raw_metric = _mapping(_require(doc, "metric", source), f"{source}.metric", METRIC_KEYS)
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

    raw_split = _mapping(doc.get("split") or {}, f"{source}.split", SPLIT_KEYS)
    split = Split(
        validation=float(raw_split.get("validation", 0.15)), test=float(raw_split.get("test", 0.15))
    )
    if not (0 < split.validation < 1 and 0 < split.test < 1 and split.validation + split.test < 1):
        raise SpecError(f"{source}.split: fractions must be in (0, 1) and sum below 1")

    fraction = float(doc.get("max_bad_row_fraction", 0.05))
    if not 0 <= fraction <= 1:
        raise SpecError(f"{source}.max_bad_row_fraction: must be between 0 and 1")

    raw_features = doc.get("features") or []
    if not isinstance(raw_features, list):
        raise SpecError(f"{source}.features: expected a list of features")
    features = tuple(
        _parse_feature(f, f"{source}.features[{i}]", by_name) for i, f in enumerate(raw_features)
    )
    if len({f.name for f in features}) != len(features):
        raise SpecError(f"{source}.features: feature names must be unique")
    segments = tuple(doc.get("segments") or ())
    for seg in segments:
        if seg not in by_name:
            raise SpecError(f"{source}.segments: {seg!r} is not a declared column")

    training = _parse_training(doc.get("training"), f"{source}.training")
    retrain = _parse_retrain(doc.get("retrain"), f"{source}.retrain")
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
        retrain=retrain,
        na_values=_markers(doc, source) or (),
    )


def _parse_training(raw: Any, where: str) -> Training:
    """``training: {window_days: N, hyperparameters: {name: value}}`` (both optional)."""
    if raw is None:
        return Training()
    raw = _mapping(raw, where, TRAINING_KEYS)
    days = raw.get("window_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 1):
        raise SpecError(f"{where}.window_days: expected a whole number of days >= 1")
    hps = raw.get("hyperparameters") or {}
    if not isinstance(hps, dict):
        raise SpecError(f"{where}.hyperparameters: expected a mapping of name: value")
    return Training(window_days=days, hyperparameters=dict(hps))


def _parse_retrain(raw: Any, where: str) -> Retrain:
    """``retrain: {schedule: "cron(0 4 ? * MON *)", cooldown_hours: 24}`` (both optional)."""
    if raw is None:
        return Retrain()
    raw = _mapping(raw, where, RETRAIN_KEYS)
    schedule = raw.get("schedule")
    if schedule is not None:
        if not isinstance(schedule, str) or not (
            _CRON.match(schedule.strip()) or _RATE.match(schedule.strip())
        ):
            raise SpecError(
                f"{where}.schedule: expected an EventBridge schedule expression such as "
                f"'cron(0 4 ? * MON *)' or 'rate(7 days)', got {schedule!r}"
            )
        rate = _RATE.match(schedule.strip())
        if rate and (rate.group(1) == "1") != (not rate.group(2).endswith("s")):
            raise SpecError(
                f"{where}.schedule: {schedule!r}: write 'rate(1 day)' but 'rate(2 days)'"
            )
        schedule = schedule.strip()
    cooldown = raw.get("cooldown_hours", DEFAULT_COOLDOWN_HOURS)
    if isinstance(cooldown, bool) or not isinstance(cooldown, int | float) or cooldown < 0:
        raise SpecError(f"{where}.cooldown_hours: expected a number of hours >= 0")
    return Retrain(schedule=schedule, cooldown_hours=float(cooldown))


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
