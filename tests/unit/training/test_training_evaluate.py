"""evaluate.py: the gate's verdict, evaluation.json and report.html."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from training_helpers import CHURN_SPEC

from training import evaluate


def _evaluate(tmp: Path, data: Path, challenger: Path, champion: Path | None, spec=CHURN_SPEC):
    out = tmp / "evaluation"
    argv = ["--spec", str(spec), "--data", str(data), "--challenger", str(challenger),
            "--champion", str(champion or tmp / "no-champion"), "--output", str(out)]  # fmt: skip
    assert evaluate.main(argv, environ={}) == 0
    return json.loads((out / "evaluation.json").read_text()), out


@pytest.mark.parametrize(
    ("challenger", "champion", "promote", "reason"),
    [
        (0.90, 0.92, False, "champion is better"),
        (0.903, 0.90, False, "within the margin"),
        (0.90, 0.90, False, "within the margin"),
        (0.91, 0.90, True, "beats the champion"),
        (0.79, None, False, "below the threshold"),
        (0.79, 0.70, False, "below the threshold"),
        (0.85, None, True, "no champion"),
        (float("nan"), None, False, "undefined"),
    ],
)
def test_verdict_for_a_higher_is_better_metric(challenger, champion, promote, reason):
    # Given roc_auc with threshold 0.80 and margin 0.005
    # When the gate compares challenger and champion
    verdict = evaluate.decide("roc_auc", True, 0.80, 0.005, challenger, champion)
    # Then it promotes only a challenger over the threshold that beats the champion by the margin
    assert verdict.promote is promote
    assert reason in verdict.reason


@pytest.mark.parametrize(
    ("challenger", "champion", "promote"),
    [(9.0, 10.0, True), (9.8, 10.0, False), (10.5, 10.0, False), (101.0, None, False)],
)
def test_verdict_for_a_lower_is_better_metric(challenger, champion, promote):
    # Given rmse with threshold 100 and margin 0.5
    verdict = evaluate.decide("rmse", False, 100.0, 0.5, challenger, champion)
    assert verdict.promote is promote


def test_better_challenger_is_promoted(tmp_path, churn_data, churn_model, weak_churn_model):
    # Given a strong challenger and a weak champion
    doc, _ = _evaluate(tmp_path, churn_data, churn_model, weak_churn_model)
    # Then both are scored on the same holdout and the challenger is promoted
    assert doc["verdict"] == "promote" and doc["promote"] is True
    assert doc["challenger"]["primary"] > doc["champion"]["primary"] + 0.005
    assert "beats the champion" in doc["reason"]


def test_worse_challenger_is_rejected(tmp_path, churn_data, churn_model, weak_churn_model):
    # Given a weak challenger against a strong champion
    doc, _ = _evaluate(tmp_path, churn_data, weak_churn_model, churn_model)
    # Then it is rejected because the champion is better
    assert doc["verdict"] == "reject"
    assert "champion is better" in doc["reason"]


def test_equal_challenger_is_rejected_within_margin(tmp_path, churn_data, churn_model):
    # Given the same model as challenger and champion
    doc, _ = _evaluate(tmp_path, churn_data, churn_model, churn_model)
    # Then the metrics are equal and the challenger does not clear the margin
    assert doc["challenger"]["primary"] == doc["champion"]["primary"]
    assert doc["verdict"] == "reject" and "within the margin" in doc["reason"]


def test_challenger_below_threshold_is_rejected(tmp_path, churn_data, churn_model):
    # Given a spec whose threshold no model reaches, and no champion
    strict = tmp_path / "churn.yaml"
    strict.write_text(CHURN_SPEC.read_text().replace("threshold: 0.80", "threshold: 0.99"))
    doc, _ = _evaluate(tmp_path, churn_data, churn_model, None, spec=strict)
    # Then the challenger is rejected for the threshold
    assert doc["champion"] is None
    assert doc["verdict"] == "reject" and "below the threshold 0.99" in doc["reason"]


def test_evaluation_json_holds_the_gate_inputs(tmp_path, churn_data, churn_model, weak_churn_model):
    # When evaluation runs
    doc, out = _evaluate(tmp_path, churn_data, churn_model, weak_churn_model)
    text = (out / "evaluation.json").read_text()
    # Then it is strict JSON with threshold, margin, confusion matrices and per-segment metrics
    assert "NaN" not in text
    assert doc["metric"] == {
        "name": "roc_auc", "higher_is_better": True, "threshold": 0.8, "margin": 0.005,
        "max_segment_gap": None,
    }  # fmt: skip
    matrix = doc["challenger"]["confusion_matrix"]["matrix"]
    assert sum(map(sum, matrix)) == doc["holdout"]["rows"]
    plan = doc["challenger"]["segments"]["plan"]
    assert set(plan) == {"basic", "standard", "premium"}
    assert sum(s["rows"] for s in plan.values()) == doc["holdout"]["rows"]
    assert set(doc["champion"]["segments"]) == {"plan", "region"}


def test_report_has_the_plots(tmp_path, churn_data, churn_model, weak_churn_model):
    # When evaluation runs
    _, out = _evaluate(tmp_path, churn_data, churn_model, weak_churn_model)
    html = (out / "report.html").read_text()
    # Then the report carries well-formed inline SVG plots and the verdict
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(svgs) >= 5  # ROC, PR, score distribution, two importance charts
    for chart in svgs:
        ET.fromstring(chart)
    for title in ("ROC", "Precision-recall", "Score distribution", "Feature importance"):
        assert title in html
    assert "PROMOTE" in html


def test_missing_challenger_fails_cleanly(tmp_path, churn_data, capsys):
    # When the challenger input holds no model
    (tmp_path / "empty").mkdir()
    argv = ["--spec", str(CHURN_SPEC), "--data", str(churn_data),
            "--challenger", str(tmp_path / "empty"), "--output", str(tmp_path / "out")]  # fmt: skip
    # Then evaluation exits 1 with a message, not a traceback
    assert evaluate.main(argv, environ={}) == 1
    assert "error:" in capsys.readouterr().err


def test_binary_evaluation_reports_per_segment_rates_and_their_largest_gap(
    tmp_path, churn_data, churn_model, weak_churn_model
):
    # When a binary challenger is evaluated
    doc, _ = _evaluate(tmp_path, churn_data, churn_model, weak_churn_model)
    # Then each segment has its positive-prediction and true-positive rate
    plan = doc["challenger"]["segments"]["plan"]
    assert all(0 <= s["positive_rate"] <= 1 for s in plan.values())
    # and the gaps across segments are the spread of those rates, the largest named
    gaps = doc["challenger"]["segment_gaps"]
    rates = [s["positive_rate"] for s in plan.values() if s["rows"] >= 10]
    assert gaps["positive_rate"]["plan"] == pytest.approx(max(rates) - min(rates))
    assert gaps["largest"] == max(
        *gaps["positive_rate"].values(), *gaps["true_positive_rate"].values()
    )
    assert gaps["where"]


def test_gate_rejects_a_segment_gap_above_the_specs_limit_before_comparing_to_the_champion():
    verdict = evaluate.decide("roc_auc", True, 0.8, 0.005, 0.95, 0.90, 0.42, 0.3)
    assert not verdict.promote
    assert "segment gap 0.4200" in verdict.reason and "limit 0.3" in verdict.reason
    # within the limit (or no limit) the champion comparison decides as before
    assert evaluate.decide("roc_auc", True, 0.8, 0.005, 0.95, 0.90, 0.2, 0.3).promote
    assert evaluate.decide("roc_auc", True, 0.8, 0.005, 0.95, 0.90, 0.9, None).promote


def test_a_champion_folder_without_a_model_means_no_champion(tmp_path):
    (tmp_path / "NONE").write_text("no champion")
    assert evaluate._champion_path(str(tmp_path)) is None
