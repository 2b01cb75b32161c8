"""Data no one here generated: UCI's wine recognition data, as scikit-learn ships it, through
preprocess -> train -> evaluate -> predict, with missing values marked as R and exports mark them.

The CSV export follows the rule stated in ``datasets/wine.yaml``: scikit-learn's column names,
magnesium and proline as integers, the class as class_0..class_2, and (row i, 0-based, in
scikit-learn's order) magnesium "NA" when i % 9 == 4, color_intensity empty when i % 13 == 7,
proline "n/a" when i % 17 == 11.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from datasets.spec import load_spec, spec_path
from lambdas.preprocess.pipeline import process_file
from training import local as training_local

INTEGERS = ("magnesium", "proline")
MISSING = {"magnesium": (9, 4, "NA"), "color_intensity": (13, 7, ""), "proline": (17, 11, "n/a")}


def export_wine(path: Path) -> list[dict[str, str]]:
    """scikit-learn's bundled wine data as an upload, missing values by the stated rule."""
    from sklearn.datasets import load_wine

    wine = load_wine()
    rows = []
    for i, (values, target) in enumerate(zip(wine.data, wine.target, strict=True)):
        row = {}
        for name, value in zip(wine.feature_names, values, strict=True):
            row[name] = str(int(value)) if name in INTEGERS else repr(float(value))
            every, at, marker = MISSING.get(name, (0, -1, ""))
            if every and i % every == at:
                row[name] = marker
        row["cultivar"] = str(wine.target_names[target])
        rows.append(row)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return rows


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("wine")
    export_wine(work / "wine.csv")
    return {"work": work, "csv": work / "wine.csv", "spec": spec_path("wine") or Path()}


def test_wine_runs_through_preprocess_train_evaluate_and_predict(wine, capsys):
    spec = load_spec(wine["spec"])
    work = wine["work"]
    # Preprocess: every row curated, the markers and empty fields read as missing
    outcome = process_file(wine["csv"], work / "curated", spec=spec, pii_key=None, workers=0)
    assert outcome.accepted, outcome.rejection
    assert (outcome.rows_in, outcome.rows_curated, outcome.rows_quarantined) == (178, 178, 0)
    table = pq.read_table(sorted((work / "curated").glob("*.parquet")))
    for name, (every, at, _) in MISSING.items():
        assert table.column(name).null_count == len(range(at, 178, every)), name
    assert table.column("magnesium").type == "int64"

    # Train, as a SageMaker training job would run train.py
    run = work / "run"
    assert training_local.main(["train", "--spec", str(wine["spec"]), "--data",
                                str(work / "curated"), "--out", str(run)]) == 0  # fmt: skip
    # Evaluate on the holdout: the 3-class model passes the spec's accuracy bar
    assert training_local.main(["evaluate", "--spec", str(wine["spec"]), "--data",
                                str(work / "curated"), "--challenger", str(run / "model.tar.gz"),
                                "--out", str(work / "eval")]) == 0  # fmt: skip
    evaluation = json.loads((work / "eval" / "evaluation.json").read_text())
    assert evaluation["verdict"] == "promote", evaluation["reason"]
    assert evaluation["holdout"]["rows"] > 20

    # Predict: the upload's own CSV, the target column left out, markers and all
    text = wine["csv"].read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    request = work / "request.csv"
    out = io.StringIO()
    fields = [k for k in rows[0] if k != "cultivar"]
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    request.write_text(out.getvalue())
    capsys.readouterr()
    assert training_local.main(["predict", "--model", str(run / "model.tar.gz"),
                                "--input", str(request)]) == 0  # fmt: skip
    predictions = json.loads(capsys.readouterr().out)["predictions"]
    assert len(predictions) == 178 and "id" not in predictions[0]
    assert {p["label"] for p in predictions} == {"class_0", "class_1", "class_2"}
    assert all(np.isclose(sum(p["probabilities"].values()), 1.0, atol=1e-4) for p in predictions)
    right = [p["label"] == r["cultivar"] for p, r in zip(predictions, rows, strict=True)]
    assert np.mean(right) > 0.9
