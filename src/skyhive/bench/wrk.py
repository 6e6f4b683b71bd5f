"""wrk (Debian's package, the original wrk: C, epoll) as the API benchmark's load generator.

Issue 14 asks for a load generator that costs less than the server it measures. Debian ships
the original wrk, which has no constant-rate option (that is wrk2, not packaged), so the Lua
script below paces it: wrk asks ``delay()`` before each request on a connection, and the script
answers with the time left until the next request's slot (slot *k* is due at
``t0 + k / rate``, whatever happened to the ones before). Each request carries its slot in
``X-Request-Id``, which the API echoes, so ``response()`` times it from its *scheduled* send
(or from the actual send, if wrk's millisecond timer fired early): a stalled server is not
hidden by the load slowing down (the Python generator's definition, open loop over at most
``connections`` requests in flight). wrk's own figures, timed from the
actual send, are reported beside them. The API key is read from a file (mode 600), never put on
the command line. The script prints one ``skyhive-wrk-result {json}`` line from ``done()``.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from skyhive.bench.cpu import CpuMeter
from skyhive.embedded import die_with_parent

RESULT_PREFIX = "skyhive-wrk-result "
THREAD_DONE = "skyhive-wrk-thread-done"
WRK = "load generator (wrk)"

SCRIPT = r"""
-- SkyHive's paced wrk script (src/skyhive/bench/wrk.py says why and how).
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } skyhive_timespec_t;
int clock_gettime(int clk_id, skyhive_timespec_t *tp);
]]
local ts = ffi.new("skyhive_timespec_t")
local function now()  -- CLOCK_MONOTONIC, seconds
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local threads, start_at = {}, nil
function setup(thread)
  if not start_at then start_at = now() + 0.5 end
  thread:set("idx", #threads)
  thread:set("t0", start_at)
  threads[#threads + 1] = thread
end

function init(args)
  rate = tonumber(os.getenv("SKYHIVE_WRK_RATE"))
  nthreads = tonumber(os.getenv("SKYHIVE_WRK_THREADS"))
  paths = {}
  for line in io.lines(os.getenv("SKYHIVE_WRK_PATHS")) do paths[#paths + 1] = line end
  local f = io.open(os.getenv("SKYHIVE_WRK_KEY_FILE"))
  local key = f:read("*l")
  f:close()
  head = " HTTP/1.1\r\nHost: " .. wrk.headers["Host"] .. "\r\nAuthorization: Bearer " .. key
    .. "\r\nX-Request-Id: skyhive-"
  queue, qhead, qtail, due_of, lat = {}, 1, 0, {}, {}
  next_k, answered, unmatched, hits, misses, other, bad, last = 0, 0, 0, 0, 0, 0, 0, 0
end

local function slots()  -- this thread's share: slots idx, idx + nthreads, ...
  if not mine then mine = math.floor((#paths - idx + nthreads - 1) / nthreads) end
  return mine
end

function delay()
  local k = next_k
  if k >= slots() then return 3600000 end  -- all sent: park the connection
  next_k = k + 1
  local due = t0 + (k * nthreads + idx) / rate
  qtail = qtail + 1
  queue[qtail] = k
  due_of[k] = due
  local wait = math.floor((due - now()) * 1000)  -- wrk's timers are in whole ms
  if wait < 0 then wait = 0 end
  return wait
end

function request()
  if qhead > qtail then  -- no slot claimed (wrk's check at start-up, or a resend after an error)
    return "GET " .. paths[1] .. head .. "unscheduled\r\n\r\n"
  end
  local k = queue[qhead]
  queue[qhead] = nil
  qhead = qhead + 1
  due_of[k] = math.min(due_of[k], now())  -- from the send when the timer fired early
  return "GET " .. paths[k * nthreads + idx + 1] .. head .. k .. "\r\n\r\n"
end

function response(status, headers, body)
  local t = now()
  local id = headers["X-Request-Id"]
  local k = id and tonumber(string.sub(id, 9))
  local due = k and due_of[k]
  if due then
    lat[#lat + 1] = math.floor((t - due) * 1e6 + 0.5) / 1000
    due_of[k] = nil
    answered = answered + 1
    last = t
  else
    unmatched = unmatched + 1
  end
  if status ~= 200 then
    bad = bad + 1
  else
    local cache = headers["X-Cache"]
    if cache == "hit" then hits = hits + 1
    elseif cache == "miss" then misses = misses + 1
    else other = other + 1 end
  end
  if answered >= slots() and not finished then
    finished = true
    io.stdout:write("skyhive-wrk-thread-done\n")
    io.stdout:flush()
  end
end

function done(summary, latency, requests)
  local n = {scheduled = 0, answered = 0, unmatched = 0, hits = 0, misses = 0, other = 0,
             bad = 0}
  local all, last_at = {}, start_at
  for _, t in ipairs(threads) do
    for name, _ in pairs(n) do
      if name ~= "scheduled" then n[name] = n[name] + (t:get(name) or 0) end
    end
    n.scheduled = n.scheduled + (t:get("next_k") or 0)
    last_at = math.max(last_at, t:get("last") or 0)
    for _, v in ipairs(t:get("lat") or {}) do all[#all + 1] = v end
  end
  local e = summary.errors
  io.write(string.format(
    'skyhive-wrk-result {"scheduled":%d,"answered":%d,"unmatched":%d,"hits":%d,"misses":%d,'
    .. '"other":%d,"bad_status":%d,"duration_s":%.3f,"wrk_requests":%d,'
    .. '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},'
    .. '"wrk_latency_us":{"p50":%d,"p99":%d,"max":%d},"latency_ms":[%s]}\n',
    n.scheduled, n.answered, n.unmatched, n.hits, n.misses, n.other, n.bad,
    last_at - start_at, summary.requests, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, table.concat(all, ",")))
end
"""


@dataclass
class WrkResult:
    scheduled: int  # requests given a slot (all of them, unless the run was cut off)
    answered: int  # responses matched to their slot
    hits: int
    misses: int
    other: int  # a 200 without X-Cache
    bad_status: int
    unmatched: int  # responses without a slot (a resend after a socket error)
    duration_s: float  # first slot → last response
    latency_ms: list[float] = field(default_factory=list)  # from each request's scheduled time
    wrk_latency_us: dict[str, int] = field(default_factory=dict)  # wrk's own, from the send
    socket_errors: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.bad_status + self.unmatched + sum(self.socket_errors.values())


def wrk_path() -> str | None:
    return shutil.which("wrk")


def parse_wrk_output(stdout: str) -> WrkResult:
    """The script's result line from wrk's standard output (wrk's own summary around it)."""
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            data = orjson.loads(line[len(RESULT_PREFIX) :])
            return WrkResult(
                scheduled=int(data["scheduled"]),
                answered=int(data["answered"]),
                hits=int(data["hits"]),
                misses=int(data["misses"]),
                other=int(data["other"]),
                bad_status=int(data["bad_status"]),
                unmatched=int(data["unmatched"]),
                duration_s=float(data["duration_s"]),
                latency_ms=[float(v) for v in data["latency_ms"]],
                wrk_latency_us={k: int(v) for k, v in data["wrk_latency_us"].items()},
                socket_errors={k: int(v) for k, v in data["socket_errors"].items()},
            )
    raise ValueError(f"no {RESULT_PREFIX.strip()} line in wrk's output:\n{stdout[-2000:]}")


def run_wrk(
    port: int,
    key: str,
    paths: list[str],
    rate: float,
    workdir: Path,
    meter: Mapping[str, int],
    connections: int = 16,
    threads: int = 1,
) -> tuple[WrkResult, dict[str, float]]:
    """GET ``paths`` in order at ``rate`` per second; the result, and the CPU seconds of wrk
    and of the ``meter`` processes over the run."""
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is not installed (make wrk)")
    workdir.mkdir(parents=True, exist_ok=True)
    script, paths_file, key_file = (workdir / n for n in ("paced.lua", "paths.txt", "key"))
    script.write_text(SCRIPT)
    paths_file.write_text("\n".join(paths) + "\n")
    key_file.touch(mode=0o600)
    key_file.write_text(key + "\n")
    env = {
        **os.environ,
        "SKYHIVE_WRK_RATE": repr(float(rate)),
        "SKYHIVE_WRK_THREADS": str(threads),
        "SKYHIVE_WRK_PATHS": str(paths_file),
        "SKYHIVE_WRK_KEY_FILE": str(key_file),
    }
    cap_s = math.ceil(len(paths) / rate * 3 + 30)  # wrk's -d: a bound, ended early on success
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{cap_s}s", "-T60s", "-s", str(script)]
    proc = subprocess.Popen(
        [*argv, f"http://127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=die_with_parent,
    )
    cpu = CpuMeter({**meter, WRK: proc.pid})
    cpu.start()
    lines: list[str] = []
    all_done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if sum(1 for x in lines if x.startswith(THREAD_DONE)) >= threads:
                all_done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    all_done.wait(cap_s)  # every slot answered (or wrk's own -d bound)
    used = cpu.stop()
    proc.send_signal(signal.SIGINT)  # wrk then prints its summary and runs done()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    reader.join(10)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    if proc.returncode not in (0, -signal.SIGINT):
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.strip()[-2000:]}")
    return parse_wrk_output("".join(lines)), used
