"""The columnar archive on disk: one Parquet file per table and day (pyarrow), in hive
partitions under the schema version, ``<root>/v1/<table>/date=YYYY-MM-DD/part-0.parquet``,
which DuckDB (``adapters/archive_sql.py``) and Spark (``jobs/fleet_kpis.py``) read as they are.

A file is written under a hidden temporary name in its folder, flushed to disk, then renamed
over the old one: a crash leaves the old file or the new, never half of one (engines skip
names starting with a dot). Rows come in file order and are written in row groups of a fixed
size, so the same rows make the same bytes: an export done again is byte-identical (its
checksum says so). The schema version is also in each file's key-value metadata
(``skyhive.schema_version``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from skyhive.domain.archive import (
    COLUMNS,
    PARTITION,
    SCHEMA_VERSION,
    VERSION_DIR,
    TableFile,
    epoch_ms,
)

FILE = "part-0.parquet"
ROW_GROUP = 65_536
VERSION_KEY = "skyhive.schema_version"
CENT = Decimal("0.01")
_DAY_DIR = re.compile(rf"^{PARTITION}=(\d{{4}}-\d{{2}}-\d{{2}})$")

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("ms", tz="UTC"),
    "decimal": pa.decimal128(12, 2),
}


def arrow_schema(table: str) -> pa.Schema:
    fields = [pa.field(name, ARROW_TYPES[kind]) for name, kind in COLUMNS[table]]
    return pa.schema(fields).with_metadata(
        {VERSION_KEY: str(SCHEMA_VERSION), "skyhive.table": table}
    )


def _value(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "timestamp":
        assert isinstance(value, datetime)
        return epoch_ms(value)  # exact milliseconds, whatever precision the datetime has
    if kind == "decimal":
        return Decimal(value).quantize(CENT)
    return value


def arrow_table(table: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    schema = arrow_schema(table)
    columns = [
        pa.array([_value(kind, r.get(name)) for r in rows], ARROW_TYPES[kind])
        for name, kind in COLUMNS[table]
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _row_groups(chunks: Iterable[Sequence[Mapping[str, Any]]]) -> Iterator[list[Mapping[str, Any]]]:
    """The rows of ``chunks`` in runs of exactly ``ROW_GROUP`` (the last one shorter)."""
    run: list[Mapping[str, Any]] = []
    for chunk in chunks:
        run.extend(chunk)
        while len(run) >= ROW_GROUP:
            yield run[:ROW_GROUP]
            run = run[ROW_GROUP:]
    if run:
        yield run


class ParquetArchive:
    def __init__(self, root: Path) -> None:
        self.root = root

    def table_dir(self, table: str) -> Path:
        return self.root / VERSION_DIR / table

    def path(self, table: str, day: date) -> Path:
        return self.table_dir(table) / f"{PARTITION}={day.isoformat()}" / FILE

    def write(
        self, table: str, day: date, chunks: Iterable[Sequence[Mapping[str, Any]]]
    ) -> TableFile:
        final = self.path(table, day)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{FILE}.{os.getpid()}.tmp")
        try:
            with pq.ParquetWriter(tmp, arrow_schema(table), compression="zstd") as writer:
                for rows in _row_groups(chunks):
                    writer.write_table(arrow_table(table, rows), row_group_size=ROW_GROUP)
            with tmp.open("rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(final.parent)
        found = self.read_back(table, day)
        assert found is not None
        return found

    def read_back(self, table: str, day: date) -> TableFile | None:
        path = self.path(table, day)
        if not path.is_file():
            return None
        meta = pq.ParquetFile(path).metadata
        version = (meta.metadata or {}).get(VERSION_KEY.encode())
        if version != str(SCHEMA_VERSION).encode():
            raise ValueError(f"{path}: schema version {version!r}, expected {SCHEMA_VERSION}")
        return TableFile(table, meta.num_rows, path.stat().st_size, sha256_of(path))

    def rows(self, table: str, day: date) -> int | None:
        path = self.path(table, day)
        return pq.ParquetFile(path).metadata.num_rows if path.is_file() else None

    def days(self) -> list[date]:
        folder = self.table_dir("telemetry")
        if not folder.is_dir():
            return []
        found = []
        for entry in folder.iterdir():
            m = _DAY_DIR.match(entry.name)
            if m and (entry / FILE).is_file():
                found.append(date.fromisoformat(m.group(1)))
        return sorted(found)

    def has(self, table: str) -> bool:
        """Whether ``table`` has a file of any day (a query over it needs one)."""
        folder = self.table_dir(table)
        return folder.is_dir() and any(folder.glob(f"{PARTITION}=*/{FILE}"))
