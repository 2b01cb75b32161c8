"""A stand-in churn model for the batch-scoring tests: reads headerless CSV records in the
column order the job's ``SLUICE_SCORING_COLUMNS`` names and answers ``label,probability``
per line, probability = tenure_months / 240 (rounded to 6 places), label = probability >= 0.5."""

import csv
import io
import os


def model_fn(model_dir):
    return os.environ["SLUICE_SCORING_COLUMNS"].split(",")


def input_fn(body, content_type):
    if content_type != "text/csv":
        raise ValueError(f"unsupported content type {content_type}")
    text = body.decode() if isinstance(body, bytes) else body
    return [row for row in csv.reader(io.StringIO(text)) if row]


def predict_fn(rows, columns):
    out = []
    for row in rows:
        record = dict(zip(columns, row, strict=True))
        probability = round(int(record["tenure_months"]) / 240, 6)
        out.append((int(probability >= 0.5), probability))
    return out


def output_fn(prediction, accept):
    return "".join(f"{label},{probability}\n" for label, probability in prediction), "text/csv"
