"""The sample-data generator: shape, determinism, drift and dirt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest
import yaml

from datasets import generate
from datasets.spec import SPECS_DIR, load_spec

CHURN = load_spec(SPECS_DIR / "churn.yaml")


def read(path: Path) -> pa.Table:
    return pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in CHURN.column_names}, strings_can_be_null=True
        ),
    )


def make(tmp_path: Path, name: str = "c.csv", **kwargs: float) -> pa.Table:
    out = tmp_path / name
    assert generate.main(["churn", "--rows", "3000", "--out", str(out)] + [
        arg for k, v in kwargs.items() for arg in (f"--{k}", str(v))
    ]) == 0  # fmt: skip
    return read(out)


def test_writes_the_requested_rows_with_the_spec_header(tmp_path: Path) -> None:
    table = make(tmp_path)
    assert table.num_rows == 3000
    assert tuple(table.column_names) == CHURN.column_names


def test_clean_output_satisfies_the_spec(tmp_path: Path) -> None:
    table = make(tmp_path)
    for col in CHURN.columns:
        values = table[col.name]
        assert values.null_count == 0, col.name
        if col.categories:
            allowed = pa.array([str(c) for c in col.categories])
            assert pc.all(pc.is_in(values, value_set=allowed)).as_py(), col.name
        if col.type in ("int", "float"):
            numbers = values.cast(pa.float64())
            if col.min is not None:
                assert pc.min(numbers).as_py() >= col.min, col.name
            if col.max is not None:
                assert pc.max(numbers).as_py() <= col.max, col.name


def test_same_seed_same_file_other_seed_other_file(tmp_path: Path) -> None:
    a = make(tmp_path, "a.csv", seed=7)
    b = make(tmp_path, "b.csv", seed=7)
    c = make(tmp_path, "c.csv", seed=8)
    assert a.equals(b)
    assert not a.equals(c)


def test_drift_shifts_the_feature_distributions(tmp_path: Path) -> None:
    base = make(tmp_path, "base.csv")
    drifted = make(tmp_path, "drift.csv", drift=1.0)

    def mean(t: pa.Table, col: str, plan: str | None = None) -> float:
        if plan is not None:
            t = t.filter(pc.equal(t["plan"], plan))
        return float(np.mean(t[col].cast(pa.float64()).to_numpy()))

    def share(t: pa.Table, plan: str) -> float:
        return pc.sum(pc.equal(t["plan"], plan).cast(pa.int64())).as_py() / t.num_rows

    assert mean(drifted, "monthly_charges", "basic") > mean(base, "monthly_charges", "basic") + 5
    assert mean(drifted, "support_calls") > mean(base, "support_calls") * 1.5
    assert mean(drifted, "tenure_months") < mean(base, "tenure_months") * 0.8
    assert share(drifted, "basic") > share(base, "basic") + 0.08


def test_dirty_output_has_malformed_rows_and_missing_values(tmp_path: Path) -> None:
    table = make(tmp_path, dirty=0.1)
    plan = table["plan"].to_pylist()
    assert any(v not in (None, "basic", "standard", "premium") for v in plan)
    charges = table["monthly_charges"].to_pylist()
    assert any(v is None for v in charges)
    assert any(v is not None and not v.replace(".", "", 1).lstrip("-").isdigit() for v in charges)


def test_the_target_carries_a_learnable_signal(tmp_path: Path) -> None:
    table = make(tmp_path).to_pandas()
    churned = table["churned"].astype(int)
    calls = table["support_calls"].astype(int)
    tenure = table["tenure_months"].astype(int)
    assert churned[calls >= 3].mean() > churned[calls == 0].mean() + 0.2
    assert churned[tenure < 12].mean() > churned[tenure > 48].mean() + 0.2


def test_generic_specs_get_every_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = {
        "name": "iris", "target": {"column": "species", "problem_type": "multiclass"},
        "columns": [
            {"name": "petal", "type": "float", "min": 0, "max": 10},
            {"name": "colour", "type": "category", "categories": ["red", "blue"]},
            {"name": "species", "type": "category", "categories": ["a", "b", "c"]},
        ],
        "metric": {"name": "accuracy", "threshold": 0.5},
    }  # fmt: skip
    (tmp_path / "iris.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setattr(generate, "spec_path", lambda name: tmp_path / f"{name}.yaml")
    out = tmp_path / "iris.csv"
    assert generate.main(["iris", "--rows", "600", "--out", str(out)]) == 0
    table = pacsv.read_csv(out)
    assert sorted(set(table["species"].to_pylist())) == ["a", "b", "c"]


def test_an_undeclared_dataset_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate.main(["nope", "--rows", "1", "--out", str(tmp_path / "x.csv")]) == 2
    assert "dataset 'nope' is not declared" in capsys.readouterr().err
