"""A tiny CSV model for the Batch Transform tests: answers ``label,score`` per input line,
where score = the sum of the numbers of the line and label = score > 10. Rows with a field
``boom`` make it fail (HTTP 500), as a broken model would."""

import csv
import io


def model_fn(model_dir):
    return {"threshold": 10.0}


def input_fn(body, content_type):
    if content_type != "text/csv":
        raise ValueError(f"unsupported content type {content_type}")
    text = body.decode() if isinstance(body, bytes) else body
    return [row for row in csv.reader(io.StringIO(text)) if row]


def predict_fn(rows, model):
    if any("boom" in row for row in rows):
        raise RuntimeError("boom")
    return [(sum(float(v) for v in row), len(rows)) for row in rows]


def output_fn(prediction, accept):
    lines = [f"{int(score > 10.0)},{score},{batch}" for score, batch in prediction]
    return "\n".join(lines) + "\n", "text/csv"
