"""Dataset specs: what loads, what a spec rejects, and what the model sees."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from datasets.spec import SPECS_DIR, SpecError, load_spec, parse_spec, spec_path

CHURN = SPECS_DIR / "churn.yaml"


def churn_doc() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(CHURN.read_text()))


def test_churn_spec_declares_the_documented_columns() -> None:
    spec = load_spec(CHURN)
    assert spec.column_names == (
        "customer_id", "email", "phone", "signup_ts", "last_active_ts", "plan", "region",
        "monthly_charges", "tenure_months", "support_calls", "churned",
    )  # fmt: skip
    assert spec.pii_columns == ("email", "phone")
    assert spec.timestamp_columns == ("signup_ts", "last_active_ts")
    assert spec.column("tenure_months").min == 0 and spec.column("tenure_months").max == 240
    assert spec.problem_type == "binary" and spec.classes == (0, 1)


def test_model_features_leave_out_id_target_pii_and_raw_timestamps() -> None:
    features = load_spec(CHURN).model_features()
    names = [f.name for f in features]
    assert names == [
        "plan", "region", "monthly_charges", "tenure_months", "support_calls",
        "signup_dow", "signup_hour", "days_active",
    ]  # fmt: skip
    assert features[0].kind == "categorical"
    assert features[0].categories == ("basic", "standard", "premium")


def test_feature_flag_overrides_the_role_of_a_column() -> None:
    doc = churn_doc()
    doc["columns"][7]["feature"] = False  # monthly_charges
    names = [f.name for f in parse_spec(doc).model_features()]
    assert "monthly_charges" not in names


def test_positive_class_is_last_in_binary_class_order() -> None:
    doc = churn_doc()
    doc["target"]["positive_class"] = 0
    assert parse_spec(doc).classes == (1, 0)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("target"), "missing required field 'target'"),
        (lambda d: d["target"].update(column="nope"), "'nope' is not a declared column"),
        (lambda d: d["target"].update(problem_type="ranking"), "'ranking' is not one of"),
        (lambda d: d["columns"][5].pop("categories"), "category column needs 'categories'"),
        (lambda d: d["columns"][10].update(categories=[0, 1, 2]), "exactly 2 categories"),
        (lambda d: d["columns"].append(dict(d["columns"][0])), "declared twice"),
        (lambda d: d["columns"][0].update(colour="red"), "unknown key 'colour'"),
        (lambda d: d["columns"][8].update(min=10, max=1), "min 10.0 is above max 1.0"),
        (lambda d: d["columns"][8].update(min="zero"), "expected a number"),
        (lambda d: d["metric"].update(name="rmse"), "'rmse' is not one of"),
        (lambda d: d["features"][0].update(column="plan"), "not a timestamp column"),
        (lambda d: d["features"].append({"name": "x", "kind": "hour"}), "missing required field"),
        (lambda d: d["features"][0].update(name="plan"), "clashes with a declared column"),
        (lambda d: d.update(unknown_columns="ignore"), "'ignore' is not one of drop, reject, keep"),
        (lambda d: d.update(max_bad_row_fraction=2), "between 0 and 1"),
        (lambda d: d.update(split={"validation": 0.6, "test": 0.5}), "sum below 1"),
        (lambda d: d.update(segments=["country"]), "'country' is not a declared column"),
        (lambda d: d.update(id_column="uuid"), "'uuid' is not a declared column"),
    ],
)
def test_invalid_specs_are_rejected_with_the_field_named(mutate: Any, message: str) -> None:
    doc = churn_doc()
    mutate(doc)
    with pytest.raises(SpecError) as excinfo:
        parse_spec(doc, source="churn.yaml")
    assert message in str(excinfo.value)
    assert str(excinfo.value).startswith("churn.yaml")


def test_unreadable_and_malformed_files_raise_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)


def test_spec_path_finds_declared_datasets_only() -> None:
    assert spec_path("churn") == CHURN
    assert spec_path("unknown") is None
    assert spec_path("../churn") is None
    assert spec_path("") is None


def test_fingerprint_is_stable_and_changes_with_the_spec() -> None:
    doc = churn_doc()
    assert parse_spec(doc).fingerprint == load_spec(CHURN).fingerprint
    doc["metric"]["threshold"] = 0.9
    assert parse_spec(doc).fingerprint != load_spec(CHURN).fingerprint


def test_metric_direction_follows_the_metric() -> None:
    doc = churn_doc()
    assert parse_spec(doc).metric.higher_is_better is True
    doc["metric"]["name"] = "logloss"
    assert parse_spec(doc).metric.higher_is_better is False
