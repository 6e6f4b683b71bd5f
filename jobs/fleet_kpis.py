"""The fleet KPIs with Spark, from SkyHive's Parquet archive: the same SQL as
`skyhive archive kpis` runs on DuckDB (``skyhive.domain.kpis``), so the two agree on the
same archive (``tests/integration/test_spark_kpis.py`` checks that they do).

    spark-submit jobs/fleet_kpis.py --archive DIR --out DIR [--format parquet|json]
    python jobs/fleet_kpis.py --archive DIR --out DIR      (Spark in local mode)

``--archive`` is the archive's root (``SKYHIVE_HISTORY__ARCHIVE_DIR``, default
``.skyhive/archive``), any path Spark reads (a folder, ``hdfs://``, ``s3a://``...); each table
is read from ``<archive>/v1/<table>/date=YYYY-MM-DD/`` with its ``date`` partition column.
Each KPI is written to ``<out>/<kpi>/`` as one file, replacing an earlier run's. The driver
needs the ``skyhive`` package (the KPIs' SQL; ``--py-files`` a wheel on a cluster); the
executors run only Spark SQL, no Python.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession

from skyhive.adapters.spark_kpis import compute, session
from skyhive.domain.kpis import BY_NAME

FORMATS = ("parquet", "json")


def write(results: dict[str, DataFrame], out: str, fmt: str) -> None:
    for name, frame in results.items():
        frame.coalesce(1).write.mode("overwrite").format(fmt).save(f"{out.rstrip('/')}/{name}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The fleet KPIs with Spark, from the archive.")
    parser.add_argument("--archive", required=True, help="the archive's root folder or URI")
    parser.add_argument("--out", required=True, help="where to write one folder per KPI")
    parser.add_argument("--format", choices=FORMATS, default="parquet")
    parser.add_argument("--kpi", action="append", choices=sorted(BY_NAME), default=[])
    parser.add_argument("--master", help="Spark master (default: spark-submit's, or local[*])")
    args = parser.parse_args(argv)
    owned = SparkSession.getActiveSession() is None  # else a caller's (a test's): left running
    spark = session(args.master)
    try:
        results = compute(spark, args.archive, args.kpi)
        write(results, args.out, args.format)
        for name in results:
            print(f"{name}: {args.out.rstrip('/')}/{name}")
    finally:
        if owned:
            spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
