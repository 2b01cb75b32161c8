"""Tiny processing job for the integration tests: counts the rows of its input."""

import json
import pathlib
import sys

source = pathlib.Path(sys.argv[sys.argv.index("--input") + 1])
target = pathlib.Path(sys.argv[sys.argv.index("--output") + 1])
rows = sum(len(path.read_text().splitlines()) for path in source.glob("*.csv"))
(target / "evaluation.json").write_text(json.dumps({"rows": rows}))
