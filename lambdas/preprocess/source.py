"""Reading an upload in bounded batches: CSV, gzip-compressed CSV or Parquet, told by content.

Every batch carries, for each row, the line a person sees it on in the file (1 = the header), so
quarantine reports point at the right place even after quoted values with line breaks, blank
lines and rows with the wrong number of fields (which the CSV parser hands to us separately).
For Parquet, "line" is the 1-based row number.

File-level problems raise ``Rejection`` with the reason; nothing here knows about the spec
beyond the header names it is asked to read.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from datasets.columns import arrow_bools, numpy_mask
from lambdas.preprocess.errors import Rejection, shorten

#: largest CSV row (and header) accepted: a row must fit in one parser block
BLOCK_BYTES = 16 << 20
_SNIFF_BYTES = 64 << 10
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_BOM = b"\xef\xbb\xbf"


@dataclass
class Batch:
    """Raw columns of consecutive rows and the line each row starts on."""

    columns: dict[str, pa.Array]
    lines: np.ndarray


@dataclass
class BadRecord:
    """A CSV record the parser could not split into the header's fields."""

    line: int
    fields: int
    expected: int


@dataclass
class Source:
    """An opened upload: its format, header and batches, plus what the parser set aside."""

    path: Path
    format: str
    header: list[str]
    bad_records: list[BadRecord] = field(default_factory=list)
    blank_lines: int = 0
    _batches: Iterator[Batch] | None = None

    def batches(self) -> Iterator[Batch]:
        assert self._batches is not None
        return self._batches


def detect_format(path: Path) -> str:
    """``csv``, ``csv.gz`` or ``parquet``, from the first bytes (the name may lie)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise Rejection("unreadable", f"cannot read the file: {exc.strerror}") from exc
    if not head:
        raise Rejection("empty_file", "the file is empty")
    if head.startswith(_GZIP_MAGIC):
        return "csv.gz"
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    if b"\0" in head:
        raise Rejection(
            "binary_file",
            "the file holds binary data (NUL bytes), not CSV text",
            expected="UTF-8 CSV, gzip-compressed CSV or Parquet",
        )
    return "csv"


def open_source(path: Path) -> Source:
    fmt = detect_format(path)
    if fmt == "parquet":
        return _open_parquet(path)
    return _open_csv(path, fmt)


# ---------------------------------------------------------------------------------------- CSV
def _stream(path: Path, fmt: str) -> pa.NativeFile:
    return pa.input_stream(str(path), compression="gzip" if fmt == "csv.gz" else None)


def _read_header(path: Path, fmt: str) -> list[str]:
    try:
        with _stream(path, fmt) as stream:
            head = stream.read(_SNIFF_BYTES)
            while b"\n" not in head and len(head) < BLOCK_BYTES:
                more = stream.read(_SNIFF_BYTES)
                if not more:
                    break
                head += more
    except (OSError, pa.ArrowInvalid) as exc:
        raise Rejection("bad_gzip", f"cannot decompress the file: {exc}") from exc
    if not head.strip():
        raise Rejection("empty_file", "the file has no header line (it is empty or blank)")
    if b"\0" in head:
        raise Rejection("binary_file", "the file holds binary data (NUL bytes), not CSV text")
    line = head.removeprefix(_BOM).split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejection(
            "not_utf8",
            f"the header is not valid UTF-8 (byte {line[exc.start]:#04x} at offset {exc.start})",
            line=1,
            expected="UTF-8 text",
        ) from exc
    names = next(csv.reader(io.StringIO(text)), [])
    if not names or not any(n.strip() for n in names):
        raise Rejection("empty_file", "the header line is empty", line=1)
    return names


def _check_header(names: list[str]) -> None:
    seen: dict[str, int] = {}
    for pos, name in enumerate(names, start=1):
        if not name.strip():
            raise Rejection(
                "bad_header", f"header field {pos} is empty", line=1, expected="a column name"
            )
        if name in seen:
            raise Rejection(
                "duplicate_columns",
                f"the header names {name!r} twice (fields {seen[name]} and {pos})",
                column=name,
                line=1,
                expected="unique column names",
            )
        seen[name] = pos


class _LineTracker:
    """Maps the parser's record numbers to the lines a person sees in the file.

    Arrow numbers records (1 = the header) and hands malformed ones to ``on_invalid`` with their
    number; a record spans several lines when a quoted value holds line breaks. Good rows are
    numbered by position, so each is moved down by the set-aside records before it.
    """

    def __init__(self) -> None:
        self.rows_seen = 0
        self.extra_lines = 0  # line breaks inside quoted values of the good rows seen so far
        self._numbers: list[int] = []  # record numbers of the set-aside records
        self._breaks: list[int] = []  # line breaks inside each of them
        self._pending: list[tuple[int, BadRecord]] = []
        self.bad_records: list[BadRecord] = []
        self.blank_lines = 0

    def on_invalid(self, row: pacsv.InvalidRow) -> str:
        text = row.text or ""
        self._numbers.append(row.number if row.number is not None else 0)
        self._breaks.append(text.count("\n"))
        if text.strip():
            bad = BadRecord(0, row.actual_columns, row.expected_columns)
            self.bad_records.append(bad)
            self._pending.append((len(self._numbers) - 1, bad))
        else:
            self.blank_lines += 1
        return "skip"

    def lines_for(self, newlines: np.ndarray) -> np.ndarray:
        """Lines of the next ``len(newlines)`` rows (``newlines``: line breaks inside each)."""
        n = len(newlines)
        index = np.arange(self.rows_seen, self.rows_seen + n, dtype=np.int64)
        within = np.concatenate(([0], np.cumsum(newlines, dtype=np.int64)))
        lines = index + 2 + self.extra_lines + within[:n]
        if self._numbers:
            numbers = np.array(self._numbers, dtype=np.int64)
            # good rows before each set-aside record, and set-aside records before each row
            good_before = numbers - np.arange(len(numbers)) - 2
            before = np.searchsorted(good_before, index, side="right")
            skipped_breaks = np.concatenate(([0], np.cumsum(self._breaks, dtype=np.int64)))
            lines += before + skipped_breaks[before]
            still: list[tuple[int, BadRecord]] = []
            for j, bad in self._pending:
                k = int(good_before[j]) - self.rows_seen
                if k > n:
                    still.append((j, bad))
                    continue
                bad.line = int(
                    numbers[j] + self.extra_lines + within[max(k, 0)] + skipped_breaks[j]
                )
            self._pending = still
        self.rows_seen += n
        self.extra_lines += int(within[-1])
        return lines

    def finish(self) -> None:
        """Place set-aside records that came after the last good row."""
        self.lines_for(np.zeros(0, dtype=np.int64))


def _newlines(columns: dict[str, pa.Array], n: int) -> np.ndarray:
    """Line breaks inside each row's values (only counted when a buffer holds one at all)."""
    total = np.zeros(n, dtype=np.int64)
    for array in columns.values():
        data = array.buffers()[2]
        if data is None or not (np.frombuffer(data, dtype=np.uint8) == 10).any():
            continue
        counts = pc.count_substring(array, "\n").fill_null(0)
        total += counts.to_numpy(zero_copy_only=False)
    return total


def _open_csv(path: Path, fmt: str) -> Source:
    header = _read_header(path, fmt)
    _check_header(header)
    tracker = _LineTracker()
    try:
        reader = pacsv.open_csv(
            _stream(path, fmt),
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES, use_threads=False),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=True,
                ignore_empty_lines=False,
                invalid_row_handler=tracker.on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.binary() for name in header},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except (OSError, pa.ArrowInvalid) as exc:
        raise _parse_rejection(exc, fmt, 1) from exc
    if reader.schema.names != header:
        raise Rejection(
            "bad_header",
            "the header could not be split into column names consistently "
            f"(read {shorten(reader.schema.names, 200)})",
            line=1,
        )
    source = Source(path=path, format=fmt, header=header)
    source._batches = _csv_batches(reader, header, tracker, source, fmt)
    return source


def _csv_batches(
    reader: pacsv.CSVStreamingReader,
    header: list[str],
    tracker: _LineTracker,
    source: Source,
    fmt: str,
) -> Iterator[Batch]:
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except (OSError, pa.ArrowInvalid) as exc:
            raise _parse_rejection(exc, fmt, tracker.rows_seen + 2) from exc
        columns = {name: batch.column(i) for i, name in enumerate(header)}
        columns = _decode_utf8(columns, tracker, batch.num_rows)
        lines = tracker.lines_for(_newlines(columns, batch.num_rows))
        # a line with no values at all is blank, not a row
        blank = _all_null(columns, batch.num_rows)
        if blank is not None:
            keep = arrow_bools(~blank)
            tracker.blank_lines += int(blank.sum())
            columns = {k: v.filter(keep) for k, v in columns.items()}
            lines = lines[~blank]
        source.bad_records, source.blank_lines = tracker.bad_records, tracker.blank_lines
        yield Batch(columns, lines)
    tracker.finish()
    source.bad_records, source.blank_lines = tracker.bad_records, tracker.blank_lines


def _all_null(columns: dict[str, pa.Array], n: int) -> np.ndarray | None:
    if any(a.null_count == 0 for a in columns.values()):
        return None
    mask = np.ones(n, dtype=bool)
    for array in columns.values():
        mask &= numpy_mask(array.is_null())
    return mask if mask.any() else None


def _decode_utf8(
    columns: dict[str, pa.Array], tracker: _LineTracker, n: int
) -> dict[str, pa.Array]:
    out: dict[str, pa.Array] = {}
    for name, array in columns.items():
        try:
            out[name] = array.cast(pa.string())
        except pa.ArrowInvalid:
            row = _first_bad_utf8(array)
            lines = tracker.lines_for(_newlines(columns, n))
            value = array[row].as_py()
            raise Rejection(
                "not_utf8",
                f"the value is not valid UTF-8 ({shorten(value)}); save the file as UTF-8",
                column=name,
                line=int(lines[row]),
                expected="UTF-8 text",
            ) from None
    return out


def _first_bad_utf8(array: pa.Array) -> int:
    lo, hi = 0, len(array)
    while hi - lo > 1:  # the first half that fails to decode holds the first bad value
        mid = (lo + hi) // 2
        try:
            array.slice(lo, mid - lo).cast(pa.string())
            lo = mid
        except pa.ArrowInvalid:
            hi = mid
    return lo


def _parse_rejection(exc: Exception, fmt: str, near_line: int) -> Rejection:
    text = str(exc).strip()
    lowered = text.lower()
    if fmt == "csv.gz" and any(w in lowered for w in ("gzip", "zlib", "compress", "truncated")):
        return Rejection(
            "bad_gzip",
            f"the gzip stream is damaged or truncated ({text})",
            expected="a complete gzip file",
            details={"rows_read_before": max(near_line - 2, 0)},
        )
    if "straddling" in text or "block" in text.lower():
        return Rejection(
            "row_too_long",
            f"a row longer than {BLOCK_BYTES >> 20} MiB (or an unclosed quote)",
            line=near_line,
            expected=f"rows under {BLOCK_BYTES >> 20} MiB and balanced quotes",
        )
    return Rejection("unparseable", f"the CSV cannot be parsed: {text.strip()}", line=near_line)


# ------------------------------------------------------------------------------------ Parquet
PARQUET_BATCH_ROWS = 128_000


def _open_parquet(path: Path) -> Source:
    try:
        pfile = pq.ParquetFile(str(path))
    except (OSError, pa.ArrowException) as exc:
        raise Rejection("unreadable", f"not a readable Parquet file: {exc}") from exc
    header = list(pfile.schema_arrow.names)
    _check_header(header)
    source = Source(path=path, format="parquet", header=header)
    source._batches = _parquet_batches(pfile, header)
    return source


def _parquet_batches(pfile: pq.ParquetFile, header: list[str]) -> Iterator[Batch]:
    first = 1
    try:
        for batch in pfile.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            columns = {name: _plain(batch.column(i)) for i, name in enumerate(header)}
            yield Batch(columns, np.arange(first, first + batch.num_rows, dtype=np.int64))
            first += batch.num_rows
    except (OSError, pa.ArrowException) as exc:
        raise Rejection(
            "unreadable", f"the Parquet data cannot be read: {exc}", line=first
        ) from exc


def _plain(array: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_large_string(array.type) or pa.types.is_string_view(array.type):
        array = array.cast(pa.string())
    return array
