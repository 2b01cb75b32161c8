"""Dataset specs: what loads, what a spec rejects, and what the model sees."""

from __future__ import annotations

import copy
import json
import re
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


# ------------------------------------------------------------------ strict keys
@pytest.mark.parametrize(
    ("mutate", "where", "key", "nearest"),
    [
        (lambda d: d.update(max_bad_row_fracton=0.2), "churn.yaml", "max_bad_row_fracton",
         "max_bad_row_fraction"),
        (lambda d: d.update(id_colum="customer_id"), "churn.yaml", "id_colum", "id_column"),
        (lambda d: d["columns"][3].update(requird=True), "churn.yaml.columns[3] (signup_ts)",
         "requird", "required"),
        (lambda d: d["columns"][6].update(na_value=["NA"]), "churn.yaml.columns[6] (region)",
         "na_value", "na_values"),
        (lambda d: d["target"].update(positve_class=1), "churn.yaml.target", "positve_class",
         "positive_class"),
        (lambda d: d["split"].update(tset=0.1), "churn.yaml.split", "tset", "test"),
        (lambda d: d["metric"].update(treshold=0.9), "churn.yaml.metric", "treshold",
         "threshold"),
        (lambda d: d["features"][2].update(begin="signup_ts"),
         "churn.yaml.features[2] (days_active)", "begin", "end"),
    ],
    ids=["top", "top-2", "column", "column-2", "target", "split", "metric", "features"],
)  # fmt: skip
def test_a_misspelt_key_at_any_level_names_the_file_the_key_and_the_nearest_known_key(
    mutate: Any, where: str, key: str, nearest: str
) -> None:
    # Given a churn spec with one key misspelt
    doc = churn_doc()
    mutate(doc)
    # When it is parsed, Then it is refused, naming where, the key and the key it resembles
    with pytest.raises(SpecError) as excinfo:
        parse_spec(doc, source="churn.yaml")
    assert str(excinfo.value) == f"{where}: unknown key {key!r} (did you mean {nearest!r}?)"


def test_a_misspelt_top_level_key_in_a_file_is_refused_not_defaulted(tmp_path: Path) -> None:
    # The case from the issue: the typo used to load, and the default 0.05 silently applied
    text = CHURN.read_text().replace("max_bad_row_fraction: 0.05", "max_bad_row_fracton: 0.2")
    (tmp_path / "churn.yaml").write_text(text)
    with pytest.raises(SpecError, match=r"^churn\.yaml: unknown key 'max_bad_row_fracton' \("):
        load_spec(tmp_path / "churn.yaml")


# ------------------------------------------------------------------ presence and markers
def test_optional_and_na_values_are_read_per_column_and_per_spec() -> None:
    doc = churn_doc()
    doc["na_values"] = ["NA", "null"]
    doc["columns"][6].update(optional=True)  # region
    doc["columns"][7].update(na_values=["?"])  # monthly_charges: its own list wins
    doc["columns"][0].update(na_values=["NA"])  # customer_id: a string column may list one
    spec = parse_spec(doc)
    assert spec.column("region").optional and not spec.column("plan").optional
    assert spec.na_values_for(spec.column("plan")) == ("NA", "null")
    assert spec.na_values_for(spec.column("monthly_charges")) == ("?",)
    assert spec.na_values_for(spec.column("email")) == ()  # string columns: only their own
    assert spec.na_values_for(spec.column("customer_id")) == ("NA",)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["columns"][5].update(optional=True), "required and optional contradict"),
        (lambda d: d["columns"][10].update(required=False, optional=True),
         "the target cannot be optional"),
        (lambda d: d["columns"][0].update(required=False, optional=True),
         "the id column cannot be optional"),
        (lambda d: d.update(na_values="NA"), "na_values: expected a list of strings"),
        (lambda d: d["columns"][7].update(na_values=[1]), "na_values: expected a list of strings"),
        (lambda d: d.update(na_values=["NA", ""]), "the empty field is always missing"),
        (lambda d: d["columns"][6].update(optional="yes"), "optional: expected true or false"),
    ],
)  # fmt: skip
def test_presence_and_marker_settings_are_checked(mutate: Any, message: str) -> None:
    doc = churn_doc()
    mutate(doc)
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_spec(doc, source="churn.yaml")


def test_a_spec_round_trips_through_the_document_saved_with_a_model() -> None:
    doc = churn_doc()
    doc.update(na_values=["NA"])
    doc["columns"][6].update(optional=True, na_values=["none"])
    doc["target"]["positive_class"] = 1
    spec = parse_spec(doc)
    saved = json.loads(json.dumps(spec.to_document()))
    assert parse_spec(saved) == spec and parse_spec(saved).fingerprint == spec.fingerprint
    for name in ("churn", "wine"):
        declared = load_spec(SPECS_DIR / f"{name}.yaml")
        assert parse_spec(declared.to_document()) == declared


def test_a_prediction_needs_only_the_columns_the_models_features_come_from() -> None:
    spec = load_spec(CHURN)
    assert spec.record_columns == spec.column_names[:-1]  # all but the target
    assert spec.input_columns() == (
        "signup_ts", "last_active_ts", "plan", "region", "monthly_charges", "tenure_months",
        "support_calls",
    )  # fmt: skip


def test_the_retraining_policy_is_read_strictly_and_kept_out_of_the_fingerprint() -> None:
    # Given churn's policy (a weekly schedule and a day's cool-down)
    spec = load_spec(CHURN)
    assert spec.retrain.schedule == "cron(0 4 ? * MON *)"
    assert spec.retrain.cooldown_hours == 24
    # a spec without one gets no schedule and the default cool-down
    doc = churn_doc()
    del doc["retrain"]
    bare = parse_spec(doc)
    assert bare.retrain.schedule is None and bare.retrain.cooldown_hours == 24
    # the policy says when a model is trained, not what it is: the fingerprint ignores it
    assert bare.fingerprint == spec.fingerprint
    # and it round-trips through the document a model carries
    assert parse_spec(json.loads(json.dumps(spec.to_document()))) == spec
    doc["retrain"] = {"schedule": "rate(7 days)", "cooldown_hours": 0.5}
    assert parse_spec(doc).retrain.cooldown_hours == 0.5


@pytest.mark.parametrize(
    ("retrain", "message"),
    [
        ({"schedul": "rate(1 day)"}, "unknown key 'schedul' (did you mean 'schedule'?)"),
        ({"schedule": "every monday"}, "expected an EventBridge schedule expression"),
        ({"schedule": "cron(0 4 * * MON)"}, "expected an EventBridge schedule expression"),
        ({"schedule": "rate(2 day)"}, "write 'rate(1 day)' but 'rate(2 days)'"),
        ({"schedule": "rate(1 days)"}, "write 'rate(1 day)' but 'rate(2 days)'"),
        ({"cooldown_hours": -1}, "cooldown_hours: expected a number of hours >= 0"),
        ({"cooldown_hours": "1d"}, "cooldown_hours: expected a number of hours >= 0"),
    ],
)
def test_a_bad_retraining_policy_is_an_error_naming_the_field(
    retrain: dict[str, Any], message: str
) -> None:
    doc = churn_doc()
    doc["retrain"] = retrain
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_spec(doc, source="churn.yaml")
