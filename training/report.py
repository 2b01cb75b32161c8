"""The human-readable evaluation report: one self-contained HTML file with inline SVG plots."""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np

from training import metrics, svg
from training.schema import FeatureSchema

_STYLE = (
    "body{font-family:sans-serif;margin:24px;max-width:1000px}"
    "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;"
    "text-align:right}th{background:#f4f4f4}.promote{color:#1a7f37}.reject{color:#b42318}"
    "svg{margin:4px;border:1px solid #eee}"
)


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else escape(str(v))


def _metrics_table(doc: dict[str, Any]) -> str:
    models = [m for m in ("challenger", "champion") if doc.get(m)]
    names = list(doc["challenger"]["metrics"])
    head = "".join(f"<th>{m}</th>" for m in models)
    rows = "".join(
        f"<tr><th>{escape(n)}</th>"
        + "".join(f"<td>{_fmt(doc[m]['metrics'].get(n))}</td>" for m in models)
        + "</tr>"
        for n in names
    )
    return f"<table><tr><th>metric</th>{head}</tr>{rows}</table>"


def _confusion(name: str, cm: dict[str, Any]) -> str:
    labels = [escape(str(x)) for x in cm["labels"]]
    head = "".join(f"<th>pred {lab}</th>" for lab in labels)
    body = "".join(
        f"<tr><th>true {lab}</th>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>"
        for lab, row in zip(labels, cm["matrix"], strict=True)
    )
    return f"<h3>Confusion matrix: {name}</h3><table><tr><th></th>{head}</tr>{body}</table>"


def _segments(doc: dict[str, Any], metric: str) -> str:
    out = []
    for column, values in doc["challenger"]["segments"].items():
        champ = (doc.get("champion") or {}).get("segments", {}).get(column, {})
        rows = "".join(
            f"<tr><th>{escape(v)}</th><td>{seg['rows']}</td>"
            f"<td>{_fmt(seg['metrics'].get(metric))}</td>"
            f"<td>{_fmt(champ.get(v, {}).get('metrics', {}).get(metric))}</td></tr>"
            for v, seg in values.items()
        )
        out.append(
            f"<h3>By {escape(column)}</h3><table><tr><th>{escape(column)}</th><th>rows</th>"
            f"<th>challenger {metric}</th><th>champion {metric}</th></tr>{rows}</table>"
        )
    return "".join(out)


def _plots(y: np.ndarray, scores: dict[str, np.ndarray], schema: FeatureSchema) -> list[str]:
    problem = schema.problem_type
    if problem == "binary":
        yi = y.astype(np.int64)
        roc = [(n, *metrics.roc_curve(yi, s)) for n, s in scores.items()]
        pr = [(n, *metrics.pr_curve(yi, s)) for n, s in scores.items()]
        dist = [
            (f"{n}, true {schema.classes[c]}", s[yi == c])
            for n, s in scores.items()
            for c in (0, 1)
        ]
        return [
            svg.line_chart(roc, title="ROC", xlabel="false positive rate",
                           ylabel="true positive rate", diagonal=True),
            svg.line_chart(pr, title="Precision-recall", xlabel="recall", ylabel="precision"),
            svg.histogram(dist, title="Score distribution by true class",
                          xlabel="P(positive class)"),
        ]  # fmt: skip
    if problem == "multiclass":
        dist = [(n, s.max(axis=1)) for n, s in scores.items()]
        return [svg.histogram(dist, title="Top-class probability", xlabel="probability")]
    plots = [
        svg.scatter(y, s, title=f"Predicted vs actual: {n}", xlabel="actual", ylabel="predicted")
        for n, s in scores.items()
    ]
    residuals = [(n, s - y) for n, s in scores.items()]
    return [*plots, svg.histogram(residuals, title="Residuals", xlabel="predicted - actual")]


def render(
    doc: dict[str, Any], y: np.ndarray, scores: dict[str, np.ndarray], schema: FeatureSchema
) -> str:
    metric = doc["metric"]["name"]
    verdict = doc["verdict"]
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Evaluation: "
        f"{escape(doc['dataset'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Evaluation: {escape(doc['dataset'])} (spec v{doc['spec']['version']})</h1>",
        f"<h2 class='{verdict}'>{verdict.upper()}</h2><p>{escape(doc['reason'])}</p>",
        f"<p>Primary metric <b>{escape(metric)}</b>, threshold {doc['metric']['threshold']}, "
        f"margin {doc['metric']['margin']}; holdout of {doc['holdout']['rows']} rows.</p>",
        "<h2>Metrics</h2>",
        _metrics_table(doc),
        "<h2>Plots</h2>",
        *_plots(y, scores, schema),
        "<h2>Feature importance (share of total gain)</h2>",
    ]
    for name in ("challenger", "champion"):
        if doc.get(name):
            imp = doc[name]["feature_importance"]
            parts.append(svg.bar_chart(list(imp), list(imp.values()), title=name))
    for name in ("challenger", "champion"):
        if doc.get(name) and "confusion_matrix" in doc[name]:
            parts.append(_confusion(name, doc[name]["confusion_matrix"]))
    if doc["challenger"]["segments"]:
        parts += ["<h2>Segments</h2>", _segments(doc, metric)]
    parts.append("</body></html>\n")
    return "\n".join(parts)
