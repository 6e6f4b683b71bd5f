"""`skyhive bench`: benchmarks of the real pipeline, each printing its report as text or JSON."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group()
def bench() -> None:
    """Benchmarks of the real pipeline on this machine."""


_json_option = click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")


def _resolve_broker(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """``auto`` as `skyhive up` resolves it: Mosquitto when installed, else amqtt."""
    from skyhive.embedded import EmbeddedError, choose_broker

    try:
        return choose_broker(value, _progress)
    except EmbeddedError as exc:
        raise click.BadParameter(str(exc)) from None


_broker_option = click.option(
    "--broker",
    type=click.Choice(["auto", "amqtt", "mosquitto"]),
    default="auto",
    show_default=True,
    callback=_resolve_broker,
    help="The broker, as `skyhive up` picks it (auto: Mosquitto when installed).",
)


def _progress(message: str) -> None:
    click.echo(message, err=True)


def _echo_json(report: object, **extra: object) -> None:
    """A benchmark's report (a dataclass) as one line of JSON, with ``extra`` fields."""
    import dataclasses

    import orjson

    assert dataclasses.is_dataclass(report) and not isinstance(report, type)
    click.echo(orjson.dumps({**dataclasses.asdict(report), **extra}).decode())


@bench.command("ingest")
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=1500,
    show_default=True,
    help="Target msg/s (0 = flat out).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=30,
    show_default=True,
    help="Seconds of load.",
)
@click.option("--drones", type=click.IntRange(1, 100_000), default=500, show_default=True)
@click.option(
    "--body-bytes",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Pad each reading to this many bytes of JSON (issue 14's reading is 330; 0 = unpadded, "
    "about 180).",
)
@click.option(
    "--baseline/--no-baseline",
    default=True,
    show_default=True,
    help="Then measure the seed's naive pipeline (insert_one + HSET + GEOADD + PUBLISH per "
    "message) at the same rate on a fresh stack, and report SkyHive / naive.",
)
@click.option(
    "--bus",
    type=click.Choice(["redis", "kafka"]),
    default="redis",
    show_default=True,
    help="The bus: Redis Streams, or Kafka (a tansu broker started for the run, memory "
    "storage; needs the test extra, as `make install` has it).",
)
@click.option(
    "--processors",
    type=click.IntRange(1, 16),
    default=1,
    show_default=True,
    help="Routine processors, one consumer group.",
)
@click.option(
    "--partitions",
    type=click.IntRange(1, 256),
    default=None,
    help="Partitions of the telemetry stream [1 for one processor on Redis, else 4].",
)
@click.option(
    "--redis",
    "redis_kind",
    type=click.Choice(["single", "cluster"]),
    default="single",
    show_default=True,
    help="One Redis, or a Redis Cluster of three masters started for the run (same binary).",
)
@_broker_option
@_json_option
def bench_ingest(
    rate: float,
    duration: float,
    drones: int,
    body_bytes: int,
    baseline: bool,
    bus: str,
    processors: int,
    partitions: int | None,
    redis_kind: str,
    broker: str,
    as_json: bool,
) -> None:
    """Push telemetry over MQTT through the whole pipeline; report rate, latency, loss and the
    CPU per 1,000 readings of each process, against the seed's naive pipeline."""
    from skyhive.bench.cpu import stack_total
    from skyhive.bench.ingest import run_ingest_bench
    from skyhive.bench.stack import BusChoice

    if partitions is None:
        partitions = 1 if bus == "redis" and processors == 1 else 4
    if bus == "redis" and processors > 1 and partitions == 1:
        raise click.BadParameter("several processors on Redis need --partitions > 1")
    report = run_ingest_bench(
        rate,
        duration,
        drones,
        broker,
        progress=_progress,
        body_bytes=body_bytes,
        bus=BusChoice(bus, partitions, redis_cluster=redis_kind == "cluster"),
        processors=processors,
    )
    naive, ratio = None, {}
    if baseline:
        from skyhive.bench.naive import ratios, run_naive_baseline

        naive = run_naive_baseline(rate, duration, drones, broker, body_bytes, _progress)
        ratio = ratios(report.cpu_ms_per_1000, report.sustained_rate, naive)
    if as_json:
        import dataclasses

        _echo_json(
            report,
            bench="ingest",
            zero_loss=report.zero_loss,
            body_bytes=body_bytes,
            stack_cpu_ms_per_1000=stack_total(report.cpu_ms_per_1000),
            baseline=dataclasses.asdict(naive) if naive else None,
            ratio=ratio or None,
        )
    else:
        lat = report.latency_ms
        click.echo(
            f"bus={report.bus} partitions={report.partitions} processors={report.processors} "
            f"redis={report.redis} "
            f"broker={report.broker} target={report.target_rate:g} msg/s drones={report.drones} "
            f"duration={report.duration_s:g}s body={body_bytes or 'unpadded'} bytes\n"
            f"published={report.published} stored={report.stored} unique={report.unique_in_history} "
            f"zero_loss={report.zero_loss}\n"
            f"sustained={report.sustained_rate:g} msg/s (drain after load {report.drain_s:g}s)\n"
            f"publish→live-state latency ms: p50={lat.get('p50')} p99={lat.get('p99')} "
            f"max={lat.get('max')} (samples={report.samples})\n"
            f"CPU ms per 1,000 readings: {_per_process(report.cpu_ms_per_1000)}; "
            f"the stack in all {stack_total(report.cpu_ms_per_1000):g}"
        )
        if naive is not None:
            cut = "" if naive.complete else f", cut off {naive.drain_s:g}s after the load"
            click.echo(
                f"baseline, the seed's naive pipeline (same rate, fresh stack): "
                f"stored={naive.stored} of {naive.published}{cut}; "
                f"sustained={naive.sustained_rate:g} msg/s\n"
                f"  CPU ms per 1,000 readings: {_per_process(naive.cpu_ms_per_1000)}; "
                f"the stack in all {naive.stack_cpu_ms_per_1000:g}\n"
                f"SkyHive / naive: CPU per reading x{ratio['cpu_per_reading']:g}, "
                f"sustained rate x{ratio['sustained_rate']:g}"
            )
    if not report.zero_loss:
        sys.exit(1)


def _per_process(costs: dict[str, float]) -> str:
    return ", ".join(f"{name} {ms:g}" for name, ms in sorted(costs.items(), key=lambda c: -c[1]))


def _pp(stats: dict[str, float]) -> str:
    return f"{stats.get('p50')}/{stats.get('p99')} ms"


@bench.command("alerts")
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=5000,
    show_default=True,
    help="Background telemetry, readings/s (issue 14's target: 5,000).",
)
@click.option("--duration", type=click.FloatRange(min=5), default=20, show_default=True)
@click.option("--drones", type=click.IntRange(1, 100_000), default=500, show_default=True)
@click.option(
    "--body-bytes",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Pad each background reading to this many bytes (0 = unpadded).",
)
@click.option(
    "--triggers",
    type=click.FloatRange(0.1, 100),
    default=5,
    show_default=True,
    help="Emergencies per second, each from a new drone.",
)
@_broker_option
@_json_option
def bench_alerts(
    rate: float,
    duration: float,
    drones: int,
    body_bytes: int,
    triggers: float,
    broker: str,
    as_json: bool,
) -> None:
    """Alert latency: MQTT publish of an emergency → webhook received, under load; and the CPU
    per 1,000 background readings of each process."""
    from skyhive.bench.alerts import run_alert_bench

    report = run_alert_bench(
        rate, duration, drones, triggers, broker, progress=_progress, body_bytes=body_bytes
    )
    if as_json:
        _echo_json(report, bench="alerts", target_met=report.target_met)
    else:
        lat = report.latency_ms
        click.echo(
            f"broker={report.broker} background={report.rate:g}/s offered, "
            f"{report.telemetry_per_s:g}/s ingested; triggered={report.triggered} "
            f"notified={report.notified}\n"
            f"publish → webhook (ms): p50={lat.get('p50')} p99={lat.get('p99')} "
            f"max={lat.get('max')}\n"
            f"  publish → telemetry bus p50/p99: {_pp(report.to_bus_ms)}; "
            f"→ alerts stream: {_pp(report.to_alert_ms)}; → webhook: {_pp(report.to_webhook_ms)}\n"
            f"target p99 < {report.target_p99_ms:g} ms: "
            f"{'met' if report.target_met else 'NOT met'}\n"
            f"CPU ms per 1,000 readings: {_per_process(report.cpu_ms_per_1000)}; "
            f"the stack in all {report.stack_cpu_ms_per_1000:g}"
        )
    if report.notified < report.triggered:
        sys.exit(1)


@bench.command("dispatch")
@click.option("--drones", type=click.IntRange(10, 20_000), default=1000, show_default=True)
@click.option(
    "--rate", type=click.FloatRange(min=1), default=100, show_default=True, help="Orders/s."
)
@click.option("--duration", type=click.FloatRange(min=1), default=8, show_default=True)
@click.option(
    "--telemetry-hz",
    type=click.FloatRange(0.05, 10),
    default=1.0,
    show_default=True,
    help="Telemetry rate per simulated drone.",
)
@click.option(
    "--background-rate",
    type=click.FloatRange(min=0),
    default=5000,
    show_default=True,
    help="Telemetry in all while the orders are posted, readings/s: the simulated fleet's "
    "(drones x Hz), topped up by a load generator (issue 14's target: 5,000; 0 = the fleet "
    "alone).",
)
@click.option(
    "--body-bytes",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Pad each of the load generator's readings to this many bytes (0 = unpadded).",
)
@_broker_option
@_json_option
def bench_dispatch(
    drones: int,
    rate: float,
    duration: float,
    telemetry_hz: float,
    background_rate: float,
    body_bytes: int,
    broker: str,
    as_json: bool,
) -> None:
    """Dispatch latency (order accepted → command published) with a live simulated fleet and
    background telemetry; and the CPU per 1,000 readings of each process."""
    from skyhive.bench.dispatch import run_dispatch_bench

    report = run_dispatch_bench(
        drones,
        rate,
        duration,
        progress=_progress,
        telemetry_hz=telemetry_hz,
        broker=broker,
        background_rate=background_rate,
        body_bytes=body_bytes,
    )
    if as_json:
        _echo_json(report, bench="dispatch", target_met=report.target_met)
    else:
        lat, inner = report.latency_ms, report.dispatcher_latency_ms
        click.echo(
            f"drones={report.drones} orders={report.orders} at {report.rate:g}/s "
            f"rejected={report.rejected} commanded={report.commanded} "
            f"double_booked={report.double_booked} "
            f"telemetry_ingested={report.telemetry_per_s:g}/s "
            f"(offered {max(report.background_rate, drones * telemetry_hz):g}/s)\n"
            f"order accepted → command received (ms): p50={lat.get('p50')} p99={lat.get('p99')} "
            f"max={lat.get('max')}\n"
            f"order accepted → assigned, in the dispatcher (ms): p50={inner.get('p50')} "
            f"p99={inner.get('p99')} max={inner.get('max')}\n"
            f"POST /api/v1/deliveries round trip (ms): p50={report.api_post_ms.get('p50')} "
            f"p99={report.api_post_ms.get('p99')}\n"
            f"target p99 < {report.target_p99_ms:g} ms: "
            f"{'met' if report.target_met else 'NOT met'}\n"
            f"CPU ms per 1,000 readings: {_per_process(report.cpu_ms_per_1000)}; "
            f"the stack in all {report.stack_cpu_ms_per_1000:g}"
        )
    if report.double_booked or report.commanded < report.orders:
        sys.exit(1)


@bench.command("dashboard")
@click.option("--drones", type=click.IntRange(1, 20_000), default=1000, show_default=True)
@click.option(
    "--hz", type=click.FloatRange(0.1, 10), default=1.0, show_default=True, help="Per drone."
)
@click.option("--duration", type=click.FloatRange(min=5), default=30, show_default=True)
@click.option(
    "--screenshot", type=click.Path(dir_okay=False, path_type=Path), help="Save the page as PNG."
)
@_json_option
def bench_dashboard(
    drones: int, hz: float, duration: float, screenshot: Path | None, as_json: bool
) -> None:
    """The dashboard in headless Chromium with a simulated fleet: frame time and update lag."""
    from skyhive.bench.dashboard import run_dashboard_bench

    report = run_dashboard_bench(drones, hz, duration, progress=_progress, screenshot=screenshot)
    if as_json:
        _echo_json(report)
    else:
        frame, lag = report.frame_ms, report.lag_ms
        click.echo(
            f"drones={report.drones} at {report.hz:g} Hz for {report.duration_s:g}s: "
            f"{report.drones_on_map} on the map; {report.telemetry_per_s:g} readings/s ingested, "
            f"{report.updates_per_s:g} drone updates/s drawn in {report.redraws_per_s:g} "
            "redraws/s\n"
            f"frame time (ms): p50={frame.get('p50')} p99={frame.get('p99')} "
            f"max={frame.get('max')} (over 50 ms: {report.slow_frames_pct:g}%)\n"
            f"update lag, telemetry ts → drawn (ms): p50={lag.get('p50')} p99={lag.get('p99')} "
            f"max={lag.get('max')}\n"
            f"  of which applied by the processor → drawn (ms): {_pp(report.stream_lag_ms)}; "
            f"one redraw of the drones (ms): {_pp(report.draw_ms)}"
        )


@bench.command("api")
@click.option(
    "--rate", type=click.FloatRange(min=1), default=500, show_default=True, help="Requests/s."
)
@click.option("--duration", type=click.FloatRange(min=1), default=10, show_default=True)
@click.option(
    "--generator",
    type=click.Choice(["auto", "wrk", "python"]),
    default="auto",
    show_default=True,
    help="The load generator: wrk (make wrk), or the Python fallback; auto = wrk if installed.",
)
@_json_option
def bench_api(rate: float, duration: float, generator: str, as_json: bool) -> None:
    """API read latency under waitress: customers and invoices, cached and uncached; the CPU
    per 1,000 requests of the server and of the load generator."""
    from skyhive.bench.api import run_api_bench

    report = run_api_bench(rate, duration, progress=_progress, generator=generator)
    if as_json:
        _echo_json(report, bench="api", target_met=report.target_met)
        return
    click.echo(
        f"{rate:g} requests/s, {duration:g} s per case (latency from the scheduled send); "
        f"load generator {report.generator}; "
        f"load average at the end {report.load_average[0]:.1f}"
    )
    for c in report.cases:
        lat = c.latency_ms
        wrk = f"; wrk from the send p50={c.wrk_latency_ms.get('p50')} " if c.wrk_latency_ms else ""
        wrk += f"p99={c.wrk_latency_ms.get('p99')}" if c.wrk_latency_ms else ""
        click.echo(
            f"  {c.name:<20} p50={lat.get('p50')} p99={lat.get('p99')} max={lat.get('max')} ms"
            f"  ({c.requests} requests, {c.achieved_rps:g}/s, hit={c.hits} miss={c.misses} "
            f"errors={c.errors}; in the server p50 <= {c.server_ms.get('p50_le')} "
            f"p99 <= {c.server_ms.get('p99_le')} ms{wrk})\n"
            f"  {'':<20} CPU ms per 1,000 requests: {_per_process(c.cpu_ms_per_1000)}"
            f"{'' if c.generator_cheaper else ' (the load generator cost MORE than the API)'}"
        )
    click.echo(
        f"target cached p99 < {report.target_cached_p99_ms:g} ms: "
        f"{'met' if report.target_met else 'NOT met'}"
    )


@bench.command("durability")
@click.option(
    "--what",
    type=click.Choice(["fsync", "broker-crash", "mosquitto-save", "all"]),
    default="all",
    show_default=True,
    help="Which measurement.",
)
@click.option(
    "--n",
    "n",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="Readings queued at the broker crash; Mosquitto's saves with 0, 4N and 20N queued.",
)
@click.option(
    "--fsync-seconds",
    type=click.FloatRange(min=0.1),
    default=3.0,
    show_default=True,
    help="Seconds per fsync row.",
)
@_json_option
def bench_durability(what: str, n: int, fsync_seconds: float, as_json: bool) -> None:
    """Bus writes with appendfsync everysec vs always; what a broker kill -9 loses; the CPU
    of Mosquitto's saves. Exits 1 if Mosquitto lost a backlog it had saved."""
    from skyhive.bench.durability import WHAT, format_report, run_durability_bench

    chosen = WHAT if what == "all" else (what,)
    report = run_durability_bench(chosen, n, fsync_seconds, progress=_progress)
    if as_json:
        _echo_json(report, mosquitto_kept_saved_backlog=report.mosquitto_kept_saved_backlog)
    else:
        click.echo(format_report(report))
    if not report.mosquitto_kept_saved_backlog:
        sys.exit(1)


@bench.command("summary")
@click.argument("results", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--commit", default="", help="The commit measured (git rev-parse --short HEAD).")
@click.option("--date", "date_", default="", help="The date measured (default: today, UTC).")
def bench_summary(results: Path, commit: str, date_: str) -> None:
    """The JSON reports in RESULTS (as `make bench` appends them) as one markdown table, ready
    for docs/benchmarks.md."""
    from datetime import UTC, datetime

    from skyhive.bench.summary import read_results, summarize

    records = read_results(results.read_text(encoding="utf-8").splitlines())
    date_ = date_ or datetime.now(UTC).date().isoformat()
    click.echo(summarize(records, date_, commit or "unknown"), nl=False)


@bench.command("history")
@click.option("--drones", type=click.IntRange(1, 100_000), default=500, show_default=True)
@click.option("--readings", type=click.IntRange(1), default=60_000, show_default=True)
@_json_option
def bench_history(drones: int, readings: int, as_json: bool) -> None:
    """Archive readings (drones at 1 Hz) per reading, then in buckets; documents/s, CPU and
    bytes per reading."""
    from skyhive.bench.history import run_history_bench

    report = run_history_bench(drones, readings, progress=_progress)
    if as_json:
        _echo_json(report)
        return
    click.echo(f"{report.readings} readings of {report.drones} drones at 1 Hz")
    for r in report.runs:
        click.echo(
            f"{r.layout:>8}: {r.documents} documents, {r.documents_per_s:g} documents/s, "
            f"{r.readings_per_s:g} readings/s; CPU µs per reading: MongoDB-wire server "
            f"{r.server_us_per_reading:g}, archiver {r.archiver_us_per_reading:g}; bytes per "
            f"reading {r.bytes_per_reading:g} (SQLite files {r.file_bytes_per_reading:g}); "
            f"complete={r.complete}; drone-minutes summed up {r.rollup_minutes}"
        )


@bench.command("rebalance")
@click.option("--days", type=click.IntRange(1, 366), default=30, show_default=True)
@click.option("--training-days", type=click.IntRange(7, 366), default=28, show_default=True)
@click.option("--drones", type=click.IntRange(1, 10_000), default=60, show_default=True)
@click.option("--orders-per-day", type=click.FloatRange(1), default=1500.0, show_default=True)
@click.option(
    "--forecast",
    type=click.Choice(["prophet", "oracle", "naive"]),
    default="prophet",
    show_default=True,
    help="What the rebalancer is told: Prophet trained on the weeks before, the true rates, "
    "or the same hour a week before.",
)
@click.option("--seed", type=int, default=1, show_default=True)
@_json_option
def bench_rebalance(
    days: int,
    training_days: int,
    drones: int,
    orders_per_day: float,
    forecast: str,
    seed: int,
    as_json: bool,
) -> None:
    """A month of orders flown without and with rebalancing on forecast demand: orders that
    found no drone docked at their station and waited for one, and for how long."""
    from skyhive.bench.rebalance import run_rebalance_bench

    report = run_rebalance_bench(
        days,
        training_days,
        drones,
        orders_per_day,
        forecast,  # type: ignore[arg-type]  # click.Choice keeps to the Literal's values
        seed,
        progress=_progress,
    )
    if as_json:
        _echo_json(report)
        return
    click.echo(
        f"{report.days} days, {report.drones} drones, ~{report.orders_per_day:g} orders/day, "
        f"forecast {report.forecast} ({report.forecast_s:g} s), simulated in {report.simulate_s:g} s"
    )
    for label, figures in (
        ("without", report.without),
        ("with rebalancing", report.with_rebalancing),
    ):
        click.echo(
            f"{label:>17}: {figures['orders']:g} orders, {figures['waited']:g} waited for a drone "
            f"({figures['waited_share']:.1%}), mean wait {figures['mean_wait_s']:g} s, p90 "
            f"{figures['p90_wait_s']:g} s, cancelled {figures['cancelled']:g}, moves "
            f"{figures['moves']:g} ({figures['moved_km']:g} km)"
        )


@bench.command("forecast")
@click.option("--stations", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--days", type=click.IntRange(2, 366), default=30, show_default=True)
@_json_option
def bench_forecast(stations: int, days: int, as_json: bool) -> None:
    """One retrain of every station's demand forecast (Prophet: the held-out week, then the
    whole window) over synthetic seasonal orders per hour; wall and CPU time, MASE."""
    from skyhive.bench.forecast import run_forecast_bench

    report = run_forecast_bench(stations, days, progress=_progress)
    if as_json:
        _echo_json(report)
        return
    click.echo(
        f"{report.stations} stations x {report.days} days ({report.station_hours} station "
        f"hours, written in {report.seed_s:g} s): retrained in {report.retrain_s:g} s "
        f"(CPU {report.cpu_s:g} s), {report.per_station_s:g} s a station, {report.fits} fits "
        f"at {report.per_fit_s:g} s; {report.trained} trained, {report.skipped} without "
        f"history, {report.failed} failed; MASE median {report.mase_median}, max "
        f"{report.mase_max}"
    )


@bench.command("kpis")
@click.option(
    "--archive",
    "archive_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The archive's folder (SKYHIVE_HISTORY__ARCHIVE_DIR; default .skyhive/archive).",
)
@click.option("--repeats", type=click.IntRange(1, 100), default=3, show_default=True)
@click.option(
    "--spark-master",
    default="local[*]",
    show_default=True,
    help="Where Spark runs; 'none' to time DuckDB only (Spark needs the test extra and Java).",
)
@_json_option
def bench_kpis(archive_dir: Path, repeats: int, spark_master: str, as_json: bool) -> None:
    """The fleet KPI queries on DuckDB and on Spark over one archive: the median of REPEATS
    runs of each, and Spark's start-up."""
    from skyhive.bench.kpis import run_kpis_bench

    master = None if spark_master.lower() == "none" else spark_master
    try:
        report = run_kpis_bench(archive_dir, repeats, master, progress=_progress)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        _echo_json(report, duckdb_total_s=report.duckdb_total_s, spark_total_s=report.spark_total_s)
        return
    click.echo(f"{report.days} day(s), {report.readings} readings, median of {report.repeats}")
    for t in report.timings:
        spark = "-" if t.spark_s is None else f"{t.spark_s * 1000:.0f} ms"
        click.echo(f"{t.kpi:>24}: {t.rows} rows; DuckDB {t.duckdb_s * 1000:.0f} ms, Spark {spark}")
    spark_total = report.spark_total_s
    click.echo(
        f"{'total':>24}: DuckDB {report.duckdb_total_s:.2f} s, Spark "
        + (
            "-"
            if spark_total is None
            else f"{spark_total:.2f} s (start-up {report.spark_start_s:.1f} s)"
        )
    )


@bench.command("models")
@click.option("--drones", type=click.IntRange(1, 100_000), default=100, show_default=True)
@click.option("--minutes", type=click.FloatRange(1, 24 * 60), default=30.0, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.pass_context
@_json_option
def bench_models(ctx: click.Context, drones: int, minutes: float, seed: int, as_json: bool) -> None:
    """Readings per second through each enabled stream model (SKYHIVE_MODELS__ENABLED), and
    their decoding, in this process over simulated flights: no servers."""
    from skyhive.bench.models import run_models_bench
    from skyhive.cli.common import settings_of

    report = run_models_bench(drones, minutes, settings_of(ctx).models, seed, progress=_progress)
    if as_json:
        _echo_json(report)
        return
    click.echo(
        f"{report.readings} readings of {report.drones} drones at 1 Hz over {report.minutes:g} "
        f"min ({report.flying_share:.0%} in flight); decoding {report.decode_per_s:g} readings/s"
    )
    for r in report.runs:
        click.echo(
            f"{r.model:>15}: {r.readings_per_s:g} readings/s ({r.us_per_reading:g} µs a "
            f"reading), {r.findings} findings"
        )


@bench.command("mavlink")
@click.option("--vehicles", type=click.IntRange(1, 255), default=100, show_default=True)
@click.option("--seconds", type=click.IntRange(1, 3600), default=60, show_default=True)
@click.option("--signed", is_flag=True, help="Every vehicle signs its frames (MAVLink 2).")
@click.option(
    "--bus", "to_bus", is_flag=True, help="End to end: write the readings to the configured bus."
)
@click.pass_context
@_json_option
def bench_mavlink(
    ctx: click.Context, vehicles: int, seconds: int, signed: bool, to_bus: bool, as_json: bool
) -> None:
    """MAVLink frames decoded per second by one gateway process (decode, map, build and
    validate readings); with --bus, end to end to the bus of the configured servers (or a
    running `skyhive up`)."""
    from skyhive.bench.mavlink import run_mavlink_bench
    from skyhive.cli.common import settings_of
    from skyhive.wiring import Clients

    clients = Clients(settings_of(ctx)) if to_bus else None
    try:
        ingest = clients.ingest if clients is not None else None
        report = run_mavlink_bench(vehicles, seconds, signed, ingest, progress=_progress)
    finally:
        if clients is not None:
            clients.close()
    if as_json:
        _echo_json(report)
        return
    where = "to the bus" if report.to_bus else "decode + map + readings"
    click.echo(
        f"{report.frames} frames of {report.vehicles} vehicles over {report.seconds} s "
        f"({'signed' if report.signed else 'unsigned'}), {where}: {report.frames_per_s:g} "
        f"frames/s, {report.readings_per_s:g} readings/s ({report.readings} readings, "
        f"{report.refused} refused)"
    )
