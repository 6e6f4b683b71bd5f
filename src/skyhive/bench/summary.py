"""`make bench`'s summary: the JSON lines the benchmarks appended to a results file, as one
markdown table ready for docs/benchmarks.md ("Issue 14: cost per reading")."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

KINDS = ("ingest", "alerts", "dispatch", "api")


def read_results(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The benchmark reports in a results file (lines that are not a JSON object are skipped:
    a benchmark that failed before its report leaves none)."""
    out = []
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("bench") in KINDS:
            out.append(record)
    return out


def _n(value: object) -> str:
    """1234.5 → "1,234.5", 12.0 → "12"; anything missing → "n/a"."""
    if not isinstance(value, int | float):
        return "n/a"
    return f"{value:,.1f}".removesuffix(".0")


def _top(costs: Mapping[str, float], k: int = 4) -> str:
    ranked = sorted(costs.items(), key=lambda c: -c[1])[:k]
    return ", ".join(f"{name} {_n(ms)}" for name, ms in ranked)


def _met(ok: object) -> str:
    return "met" if ok else "**not met**"


def _ingest_rows(r: dict[str, Any]) -> list[str]:
    lat = r.get("latency_ms") or {}
    setting = (
        f"{_n(r.get('target_rate'))}/s offered, {_n(r.get('drones'))} drones, "
        f"{r.get('body_bytes') or 'unpadded'} B, {r.get('broker')}"
    )
    rows = [
        f"| ingest (SkyHive) | {setting} | sustained {_n(r.get('sustained_rate'))}/s, "
        f"zero loss {'yes' if r.get('zero_loss') else '**no**'}; publish → live state "
        f"p50 {_n(lat.get('p50'))} / p99 {_n(lat.get('p99'))} ms | "
        f"{_n(r.get('stack_cpu_ms_per_1000'))} | {_top(r.get('cpu_ms_per_1000') or {})} |"
    ]
    naive, ratio = r.get("baseline"), r.get("ratio")
    if naive:
        cut = "" if naive.get("complete") else f" (cut off {_n(naive.get('drain_s'))} s after)"
        rows.append(
            f"| ingest (the seed's naive pipeline) | same, fresh stack | sustained "
            f"{_n(naive.get('sustained_rate'))}/s, stored {_n(naive.get('stored'))} of "
            f"{_n(naive.get('published'))}{cut} | {_n(naive.get('stack_cpu_ms_per_1000'))} | "
            f"{_top(naive.get('cpu_ms_per_1000') or {})} |"
        )
    if ratio:
        rows.append(
            f"| ingest, SkyHive / naive | | sustained rate x{_n(ratio.get('sustained_rate'))} "
            f"| CPU per reading x{ratio.get('cpu_per_reading')} | |"
        )
    return rows


def _alerts_row(r: dict[str, Any]) -> str:
    lat = r.get("latency_ms") or {}
    setting = (
        f"{_n(r.get('rate'))}/s background ({_n(r.get('telemetry_per_s'))}/s ingested), "
        f"{r.get('broker')}"
    )
    return (
        f"| alerts | {setting} | publish → webhook p50 {_n(lat.get('p50'))} / p99 "
        f"{_n(lat.get('p99'))} ms, {r.get('notified')} of {r.get('triggered')} notified; "
        f"target p99 < {_n(r.get('target_p99_ms'))} ms {_met(r.get('target_met'))} | "
        f"{_n(r.get('stack_cpu_ms_per_1000'))} | {_top(r.get('cpu_ms_per_1000') or {})} |"
    )


def _dispatch_row(r: dict[str, Any]) -> str:
    lat = r.get("latency_ms") or {}
    setting = (
        f"{_n(r.get('rate'))} orders/s, {_n(r.get('drones'))} drones at "
        f"{_n(r.get('telemetry_hz'))} Hz, {_n(r.get('background_rate'))}/s background "
        f"({_n(r.get('telemetry_per_s'))}/s ingested)"
    )
    return (
        f"| dispatch | {setting} | accepted → command p50 {_n(lat.get('p50'))} / p99 "
        f"{_n(lat.get('p99'))} ms, {r.get('commanded')} of {r.get('orders')} commanded, "
        f"{r.get('double_booked')} double-booked; target p99 < "
        f"{_n(r.get('target_p99_ms'))} ms {_met(r.get('target_met'))} | "
        f"{_n(r.get('stack_cpu_ms_per_1000'))} | {_top(r.get('cpu_ms_per_1000') or {})} |"
    )


def _api_rows(r: dict[str, Any]) -> list[str]:
    rows = []
    for c in r.get("cases") or []:
        lat, cpu = c.get("latency_ms") or {}, c.get("cpu_ms_per_1000") or {}
        gen = next((n for n in cpu if n.startswith("load generator")), "load generator")
        rest = {n: v for n, v in cpu.items() if n not in (gen, "api") and v}
        target = ""
        if str(c.get("name", "")).endswith(", cached"):
            ok = lat.get("p99") is not None and lat["p99"] < r.get("target_cached_p99_ms", 25)
            target = f"; target p99 < {_n(r.get('target_cached_p99_ms'))} ms {_met(ok)}"
        rows.append(
            f"| API, {c.get('name')} | {_n(r.get('rate'))} requests/s offered, "
            f"{_n(c.get('achieved_rps'))}/s achieved, load by {r.get('generator')} | "
            f"p50 {_n(lat.get('p50'))} / p99 {_n(lat.get('p99'))} ms, {c.get('errors')} "
            f"errors{target} | per 1,000 requests: api {_n(cpu.get('api'))}, {gen} "
            f"{_n(cpu.get(gen))} | {_top(rest, 3)} |"
        )
    return rows


def summarize(records: list[dict[str, Any]], date: str, commit: str) -> str:
    """One markdown table of the last report of each kind (and which kinds are missing)."""
    last = {r["bench"]: r for r in records}
    lines = [
        f"Measured {date}, commit {commit}:",
        "",
        "| benchmark | settings | result | CPU ms per 1,000 readings, the stack | "
        "the costliest processes (ms per 1,000) |",
        "|---|---|---|---|---|",
    ]
    for kind in KINDS:
        r = last.get(kind)
        if r is None:
            lines.append(f"| {kind} | | **no report** (the benchmark failed: see its output) | | |")
        elif kind == "ingest":
            lines += _ingest_rows(r)
        elif kind == "alerts":
            lines.append(_alerts_row(r))
        elif kind == "dispatch":
            lines.append(_dispatch_row(r))
        else:
            lines += _api_rows(r)
    return "\n".join(lines) + "\n"
