"""``python -m lambdas.predict openapi [FILE]``: write the API's OpenAPI document (stdout
without FILE). ``make openapi`` writes ``docs/openapi.json``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambdas.predict")
    commands = parser.add_subparsers(dest="command", required=True)
    openapi = commands.add_parser("openapi", help="write the OpenAPI 3 document")
    openapi.add_argument("out", nargs="?", type=Path)
    args = parser.parse_args(argv)
    from lambdas.predict.openapi import render

    text = render()
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
