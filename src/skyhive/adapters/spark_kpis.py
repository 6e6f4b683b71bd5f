"""The fleet KPIs on Spark SQL, over the Parquet archive as Spark reads it: the same SQL
(``domain/kpis.py``) as DuckDB runs (``adapters/archive_sql.py``), so the two agree on the
same archive. Used by the Spark job (``jobs/fleet_kpis.py``) and `skyhive bench kpis`;
pyspark comes with the test extra (Java: `make java`).

``archive`` is the archive's root as Spark reads it: a folder, ``hdfs://``, ``s3a://``...;
each table is ``<archive>/v1/<table>/`` with its ``date`` partitions. Only the driver runs
Python: the executors run Spark SQL.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark import SparkConf
from pyspark.sql import DataFrame, SparkSession

from skyhive.domain.archive import TABLES, VERSION_DIR
from skyhive.domain.kpis import BY_NAME, KPIS


def session(master: str | None = None, **config: str) -> SparkSession:
    """The active session (spark-submit's, or a caller's), else a new one; ``local[*]`` when
    nothing says where Spark runs. Its time zone is UTC, like the archive's."""
    builder = SparkSession.builder.appName("skyhive-fleet-kpis")
    if master or not SparkConf().contains("spark.master"):
        builder = builder.master(master or "local[*]")
    for key, value in {"spark.sql.session.timeZone": "UTC", **config}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def register(spark: SparkSession, archive: str) -> None:
    """A temporary view per archive table, named as the KPIs name them."""
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # the KPIs' hours and days are UTC
    root = archive.rstrip("/")
    for table in TABLES:
        path = f"{root}/{VERSION_DIR}/{table}"
        spark.read.option("basePath", path).parquet(path).createOrReplaceTempView(table)


def compute(spark: SparkSession, archive: str, names: Sequence[str] = ()) -> dict[str, DataFrame]:
    """Each KPI (all, or those named) as a DataFrame, in the KPI's own row order."""
    register(spark, archive)
    chosen = [BY_NAME[n] for n in names] or list(KPIS)
    return {k.name: spark.sql(k.sql) for k in chosen}
