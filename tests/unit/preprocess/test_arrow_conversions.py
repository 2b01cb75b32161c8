"""The numpy <-> Arrow conversions of the hot path, and that processing never imports pandas."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from datasets.columns import (
    arrow_bools,
    arrow_ints,
    arrow_number,
    arrow_values,
    numpy_mask,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("offset", [0, 1, 3, 8, 13])
def test_numpy_mask_matches_arrow_with_nulls_and_offsets(offset: int) -> None:
    rng = np.random.default_rng(offset)
    values = [None if v == 2 else bool(v) for v in rng.integers(0, 3, 101)]
    array = pa.array(values, pa.bool_()).slice(offset, 77)
    expected = np.array([bool(v) for v in array.to_pylist()])  # null -> False
    assert numpy_mask(array).tolist() == expected.tolist()
    assert numpy_mask(pa.array([], pa.bool_())).tolist() == []


def test_arrow_bools_and_ints_round_trip() -> None:
    mask = np.array([True, False, True] * 7 + [False])
    assert arrow_bools(mask).to_pylist() == mask.tolist()
    rows = np.array([5, 0, 9], dtype=np.intp)
    assert arrow_ints(rows).to_pylist() == [5, 0, 9]


def test_arrow_number_and_value_sets_match_pyarrows_inference() -> None:
    for value in (0, 240, -3, 0.5, 1e6):
        assert arrow_number(value).equals(pa.scalar(value))
    assert arrow_values(["basic", "premium"]).equals(pa.array(["basic", "premium"]))
    assert arrow_values([0, 1]).equals(pa.array([0, 1]))
    assert arrow_values([0.5, 1]).equals(pa.array([0.5, 1]))
    assert pc.is_in(pa.array(["x", "é"]), value_set=arrow_values(["é"])).to_pylist() == [
        False,
        True,
    ]


def test_processing_a_clean_file_does_not_import_pandas(tmp_path: Path) -> None:
    """pyarrow imports pandas (0.2 s) for pa.array/pa.scalar/to_numpy when it is installed."""
    upload = tmp_path / "churn.csv"
    lines = [
        "customer_id,email,phone,signup_ts,last_active_ts,plan,region,"
        "monthly_charges,tenure_months,support_calls,churned"
    ]
    lines += [
        f"C{i},u{i}@x.io,+1-555-{i:07d},2021-09-14T03:38:17Z,2025-09-02T11:30:40Z,"
        f"basic,eu,{i % 90}.5,{i % 200},{i % 4},{i % 2}"
        for i in range(20_000)
    ]
    upload.write_text("\n".join(lines) + "\n")
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from datasets.spec import load_spec\n"
        "from lambdas.preprocess.pipeline import process_file\n"
        "out = process_file(Path(sys.argv[1]), Path(sys.argv[2]),\n"
        "    spec=load_spec(Path('datasets/churn.yaml')), pii_key=b'k' * 16)\n"
        "assert out.accepted and out.rows_curated == 20_000, out\n"
        "print('pandas' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(upload), str(tmp_path / "out")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"
