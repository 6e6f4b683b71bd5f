"""The benchmarks' pure parts: wrk's result line, reading padding, CPU totals and ratios."""

from __future__ import annotations

import orjson
import pytest

from skyhive.bench.cpu import per_thousand, stack_total
from skyhive.bench.mqtt_load import PAD_OVERHEAD, pad_body
from skyhive.bench.naive import NaiveReport, ratios
from skyhive.bench.stack import REDIS_BUS, BusChoice, role_names
from skyhive.bench.summary import read_results, summarize
from skyhive.bench.wrk import SCRIPT, parse_wrk_output
from skyhive.domain.telemetry import parse_telemetry

# wrk 4.1's own summary, then the line the paced script prints from done()
WRK_STDOUT = """Running 35s test @ http://127.0.0.1:41234
  1 threads and 16 connections
skyhive-wrk-thread-done
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.35ms    1.20ms  20.90ms   97.10%
    Req/Sec   499.80     20.12   520.00     90.00%
  5000 requests in 10.70s, 4.12MB read
Requests/sec:    467.29
Transfer/sec:    394.10KB
skyhive-wrk-result {"scheduled":4,"answered":3,"unmatched":1,"hits":3,"misses":0,"other":0,\
"bad_status":0,"duration_s":10.012,"wrk_requests":5000,"socket_errors":{"connect":0,"read":0,\
"write":1,"timeout":0},"wrk_latency_us":{"p50":1100,"p99":16600,"max":20700},\
"latency_ms":[1.25,0.9,1e-05]}
"""


def test_the_paced_scripts_result_line_is_read_from_wrks_output() -> None:
    r = parse_wrk_output(WRK_STDOUT)
    assert (r.scheduled, r.answered, r.unmatched, r.hits, r.misses) == (4, 3, 1, 3, 0)
    assert r.duration_s == 10.012
    assert r.latency_ms == [1.25, 0.9, 1e-05]
    assert r.wrk_latency_us == {"p50": 1100, "p99": 16600, "max": 20700}
    assert r.socket_errors["write"] == 1
    assert r.errors == 2  # the unmatched response and the write error


def test_wrk_output_without_the_result_line_is_an_error_that_shows_it() -> None:
    with pytest.raises(ValueError, match="no skyhive-wrk-result line"):
        parse_wrk_output("Running 10s test @ http://127.0.0.1:1\nunable to connect\n")


def test_the_script_prints_what_the_parser_reads() -> None:
    assert "skyhive-wrk-result {" in SCRIPT and "skyhive-wrk-thread-done" in SCRIPT
    for name in ("scheduled", "answered", "unmatched", "hits", "misses", "latency_ms"):
        assert f'"{name}"' in SCRIPT
    assert "Authorization: Bearer" in SCRIPT  # the key from a file, not wrk's command line


@pytest.mark.parametrize("size", [330, 200, 178 + PAD_OVERHEAD])
def test_a_padded_reading_is_exactly_the_size_asked_and_still_valid_telemetry(size: int) -> None:
    body = orjson.dumps(
        {"drone_id": "bench-1", "seq": 7, "ts": 1_790_000_000_000, "battery_pct": 80.0}
    )
    padded = pad_body(body, size)
    assert len(padded) == size
    t = parse_telemetry(padded, "bench-1")
    assert t.seq == 7 and t.model_extra == {"pad": "x" * (size - len(body) - PAD_OVERHEAD)}


def test_padding_leaves_a_reading_alone_when_there_is_no_room() -> None:
    body = b'{"drone_id":"bench-1","seq":7}'
    assert pad_body(body, 0) == body
    assert pad_body(body, len(body) + PAD_OVERHEAD - 1) == body
    assert pad_body(b"{}", 100) == b"{}"


def test_cpu_per_thousand_and_the_stack_total_leave_out_the_load_generators() -> None:
    assert per_thousand(2.5, 5000) == 500.0
    assert per_thousand(1.0, 0) == 0.0
    costs = {
        "gateway": 80.0,
        "processor": 120.5,
        "load generator": 40.0,
        "load generator (wrk)": 9.0,
    }
    assert stack_total(costs) == 200.5


def test_skyhive_over_naive_ratios() -> None:
    naive = NaiveReport(
        broker="mosquitto",
        target_rate=7000,
        duration_s=30,
        drones=1000,
        published=210_000,
        stored=60_000,
        drain_s=15.0,
        sustained_rate=1400.0,
        complete=False,
        cpu_ms_per_1000={"naive consumer": 600.0, "load generator": 40.0},
        stack_cpu_ms_per_1000=1000.0,
    )
    r = ratios({"gateway": 100.0, "processor": 150.0, "load generator": 40.0}, 7000.0, naive)
    assert r == {
        "skyhive_stack_cpu_ms_per_1000": 250.0,
        "naive_stack_cpu_ms_per_1000": 1000.0,
        "cpu_per_reading": 0.25,
        "sustained_rate": 5.0,
    }


def test_the_summary_is_a_markdown_table_of_the_last_report_of_each_kind() -> None:
    ingest = {
        "bench": "ingest",
        "broker": "mosquitto",
        "target_rate": 7000.0,
        "drones": 1000,
        "body_bytes": 330,
        "sustained_rate": 6950.5,
        "zero_loss": True,
        "latency_ms": {"p50": 40.0, "p99": 120.0},
        "stack_cpu_ms_per_1000": 300.0,
        "cpu_ms_per_1000": {"gateway": 100.0, "processor": 200.0, "load generator": 30.0},
        "baseline": {
            "sustained_rate": 1390.0,
            "stored": 55_000,
            "published": 210_000,
            "complete": False,
            "drain_s": 15.0,
            "stack_cpu_ms_per_1000": 1200.0,
            "cpu_ms_per_1000": {"naive consumer": 600.0},
        },
        "ratio": {"cpu_per_reading": 0.25, "sustained_rate": 5.0},
    }
    alerts_old = {"bench": "alerts", "latency_ms": {"p99": 999.0}}
    alerts = {
        "bench": "alerts",
        "rate": 5000.0,
        "telemetry_per_s": 4990.0,
        "broker": "mosquitto",
        "latency_ms": {"p50": 30.0, "p99": 180.0},
        "notified": 85,
        "triggered": 85,
        "target_p99_ms": 250.0,
        "target_met": True,
        "stack_cpu_ms_per_1000": 310.0,
        "cpu_ms_per_1000": {"notifier": 10.0},
    }
    api = {
        "bench": "api",
        "rate": 500.0,
        "generator": "wrk",
        "target_cached_p99_ms": 25.0,
        "cases": [
            {
                "name": "customer, cached",
                "achieved_rps": 500.0,
                "latency_ms": {"p50": 1.1, "p99": 30.2},
                "errors": 0,
                "cpu_ms_per_1000": {"api": 1070.0, "load generator (wrk)": 90.0, "redis": 70.0},
            }
        ],
    }
    lines = [orjson.dumps(r).decode() for r in (ingest, alerts_old, alerts, api)]
    records = read_results(["results: x.jsonl", *lines, "{not json", '{"bench": "other"}'])
    assert [r["bench"] for r in records] == ["ingest", "alerts", "alerts", "api"]
    table = summarize(records, "2026-12-02", "abc1234").splitlines()
    assert table[0] == "Measured 2026-12-02, commit abc1234:"
    assert table[2].startswith("| benchmark |") and table[3] == "|---|---|---|---|---|"
    body = "\n".join(table[4:])
    assert "sustained 6,950.5/s, zero loss yes" in body
    assert "stored 55,000 of 210,000 (cut off 15 s after)" in body
    assert "CPU per reading x0.25" in body and "sustained rate x5" in body
    assert "p99 180 ms" in body and "999" not in body  # the last alerts report only
    assert "target p99 < 250 ms met" in body
    assert "| dispatch | | **no report**" in body
    assert "p99 30.2 ms, 0 errors; target p99 < 25 ms **not met**" in body
    assert "api 1,070, load generator (wrk) 90" in body
    assert all(line.startswith("|") and line.endswith("|") for line in table[2:])


def test_repeated_roles_get_names_of_their_own() -> None:
    roles = ("gateway", "processor", "processor", "archiver", "processor")
    assert role_names(roles) == ["gateway", "processor", "processor-2", "archiver", "processor-3"]


def test_a_bus_choice_is_what_the_roles_are_told() -> None:
    assert REDIS_BUS.env("") == {
        "SKYHIVE_BUS": "redis",
        "SKYHIVE_BUS_PARTITIONS": "1",
        "SKYHIVE_REDIS_CLUSTER": "false",
    }
    assert BusChoice("kafka", 4).env("127.0.0.1:9092") == {
        "SKYHIVE_BUS": "kafka",
        "SKYHIVE_BUS_PARTITIONS": "4",
        "SKYHIVE_REDIS_CLUSTER": "false",
        "SKYHIVE_KAFKA__BOOTSTRAP": "127.0.0.1:9092",
    }
    assert BusChoice("redis", 2, redis_cluster=True).env("")["SKYHIVE_REDIS_CLUSTER"] == "true"
