"""The local cloud's serving worker answers as SageMaker's XGBoost container does.

The worker runs as the local cloud runs it: a process of the project venv serving a model's
``code/inference.py`` over HTTP. A client error is the response ``output_fn`` returns (status and
body), never a 500; any exception a handler raises is a 500, as the container's transformer
makes it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
WORKER = REPO / "local" / "sluice_local" / "runners" / "serve_worker.py"
ROW = {
    "customer_id": "C1",
    "email": "ann@example.com",
    "signup_ts": "2024-01-01T10:30:00+01:00",
    "last_active_ts": "",
    "plan": "standard",
    "region": "us",
    "monthly_charges": 61.0,
    "tenure_months": 20,
    "support_calls": 1,
}


def _start(model_dir: Path, code_dir: Path, tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    ready = tmp / "ready"
    process = subprocess.Popen(
        [sys.executable, str(WORKER), "--model-dir", str(model_dir), "--code-dir", str(code_dir),
         "--program", "inference.py", "--ready-file", str(ready)],
        cwd=tmp, stdout=(tmp / "worker.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (ready.exists() and ready.read_text().strip()):
        assert process.poll() is None, (tmp / "worker.log").read_text()
        assert time.monotonic() < deadline, "worker did not start"
        time.sleep(0.05)
    return process, int(ready.read_text())


@pytest.fixture(scope="module")
def worker(churn_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    process, port = _start(churn_model, churn_model / "code", tmp_path_factory.mktemp("worker"))
    yield port
    process.terminate()
    process.wait(timeout=10)


def _post(port: int, body: str, content_type: str) -> tuple[int, str, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations",
        data=body.encode(),
        method="POST",
        headers={"Content-Type": content_type, "Accept": "*/*"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["Content-Type"], json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], json.loads(error.read())


def test_a_record_as_uploaded_is_answered_200_in_json(worker):
    status, media, answer = _post(worker, json.dumps({"instances": [ROW]}), "application/json")
    assert (status, media) == (200, "application/json")
    assert answer["predictions"][0]["id"] == "C1" and "model_version" in answer


def test_a_bad_record_is_answered_400_with_the_error_body(worker):
    bad = {**ROW, "plan": "gold", "churned": 0}
    status, media, answer = _post(worker, json.dumps({"instances": [bad]}), "application/json")
    assert (status, media) == (400, "application/json")
    assert answer["error"]["code"] == "invalid_input"
    assert [(d["instance"], d["field"]) for d in answer["error"]["details"]] == [
        (0, "plan"),
        (0, "churned"),
    ]
    assert "ann@example.com" not in json.dumps(answer)


def test_an_unsupported_content_type_is_answered_415(worker):
    status, _, answer = _post(worker, "<x/>", "application/xml")
    assert status == 415 and answer["error"]["code"] == "unsupported_media_type"


def test_the_worker_keeps_serving_after_client_errors(worker):
    for _ in range(3):
        _post(worker, "not json", "application/json")
    assert _post(worker, json.dumps({"instances": [ROW]}), "application/json")[0] == 200


@pytest.mark.parametrize(
    "raised",
    ["KeyError('boom')", "__import__('werkzeug.exceptions').exceptions.BadRequest('raised')"],
    ids=["a bug", "even an HTTPException"],
)
def test_an_exception_raised_by_a_handler_is_a_500(tmp_path, churn_model, raised):
    # Given handlers whose input_fn raises (the container's transformer re-raises any exception
    # from the module's handlers as its ClientError, which Flask answers with 500)
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text(
        "def model_fn(model_dir):\n    return None\n"
        f"def input_fn(body, content_type):\n    raise {raised}\n"
    )
    process, port = _start(churn_model, code, tmp_path)
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=b"{}", method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=30)
        assert info.value.code == 500
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_csv_answer_has_the_type_flask_gives_it(worker):
    # output_fn returns ("...", "text/csv"); Flask's Response adds the charset to text types
    header = ",".join(ROW) + "\n" + ",".join(str(v) for v in ROW.values()) + "\n"
    request = urllib.request.Request(
        f"http://127.0.0.1:{worker}/invocations",
        data=header.encode(),
        method="POST",
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        label, probability = response.read().decode().strip().split(",")
    assert label in ("0", "1") and 0 <= float(probability) <= 1
