"""The pure parts of ``adapters/mongo_capabilities``: the bin expression's arithmetic and
reading an ``explain``. The expression itself runs only on a server with ``$dateTrunc``,
which this machine does not have (the embedded server ignores ``binSize``): here it is
evaluated by the semantics MongoDB documents for its four operators, to prove the shift
that aligns ``$dateTrunc``'s bins to the epoch, as ``domain/downsample.py`` aligns them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from skyhive.adapters.mongo_capabilities import DATE_TRUNC_ORIGIN_S, epoch_bins, index_in_plan


def evaluate(expr: Any, at_ms: int) -> int:
    """``expr`` on a document whose ``$at`` is ``at_ms``, dates as epoch milliseconds."""
    if expr == "$at":
        return at_ms
    [(op, args)] = expr.items()
    if op == "$add":
        return evaluate(args[0], at_ms) + args[1]
    if op == "$subtract":
        return evaluate(args[0], at_ms) - args[1]
    assert op == "$dateTrunc" and args["unit"] == "second", expr
    # Bins of binSize seconds counted from 2000-01-01T00:00:00Z (MongoDB's reference date).
    origin, size = DATE_TRUNC_ORIGIN_S * 1000, args["binSize"] * 1000
    return origin + (evaluate(args["date"], at_ms) - origin) // size * size


def test_bins_start_at_multiples_of_their_size_since_the_epoch() -> None:
    times = [
        datetime(2026, 11, 23, 12, 0, 6, 250000, tzinfo=UTC),
        datetime(2026, 11, 23, 23, 59, 59, 999000, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 58, tzinfo=UTC),  # before $dateTrunc's origin
    ]
    for seconds in (*range(1, 121), 599, 900, 3599, 3600):
        for t in times:
            ms = int(t.timestamp() * 1000)
            assert (
                evaluate(epoch_bins("$at", seconds), ms) == ms // 1000 // seconds * seconds * 1000
            )
    assert datetime(2000, 1, 1, tzinfo=UTC).timestamp() == DATE_TRUNC_ORIGIN_S


def test_the_index_a_plan_uses_on_mongodb_and_on_the_embedded_server() -> None:
    mongodb = {  # MongoDB 7: the classic plan tree (SBE nests it under queryPlan)
        "queryPlanner": {
            "winningPlan": {
                "queryPlan": {
                    "stage": "LIMIT",
                    "inputStage": {
                        "stage": "FETCH",
                        "inputStage": {"stage": "IXSCAN", "indexName": "status_created_id"},
                    },
                }
            }
        }
    }
    assert index_in_plan(mongodb) == "status_created_id"
    by_id = {"queryPlanner": {"winningPlan": {"stage": "IDHACK"}}}
    assert index_in_plan(by_id) == "_id_"
    scan = {"queryPlanner": {"winningPlan": {"stage": "COLLSCAN", "direction": "forward"}}}
    assert index_in_plan(scan) is None
    embedded = {
        "queryPlanner": {"winningPlan": [{"detail": "SEARCH d USING INDEX idx_d_v (<expr>=?)"}]}
    }
    assert index_in_plan(embedded) == "idx_d_v"
    embedded_scan = [{"detail": "SCAN x"}, {"detail": "SCAN json_each VIRTUAL TABLE INDEX 1:"}]
    assert index_in_plan({"queryPlanner": {"winningPlan": embedded_scan}}) is None
    assert index_in_plan({"queryPlanner": {"winningPlan": {"stage": "EOF"}}}) is None
