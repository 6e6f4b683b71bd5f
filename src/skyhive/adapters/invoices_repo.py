"""Invoices in MongoDB ``invoices``, and the revenue aggregations over them.

Money fields go through :class:`~skyhive.adapters.money.MoneyCodec` (``Decimal128`` or
cents); ``$sum`` adds either exactly, so the pipelines are the same on both servers and
their results are decoded by type. Each invoice line carries its pickup station and the month
it was delivered, so revenue by station or by month is a ``$unwind`` and a ``$group``, no
``$lookup`` and no date operators (the embedded server has only some of them).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pymongo import UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from skyhive.adapters.money import MoneyCodec, decode_money
from skyhive.adapters.mongo import Document, collection, find_page, restore_datetimes
from skyhive.adapters.read_cache import ReadCache
from skyhive.domain.billing import UNPAID, AlreadyPaid, Invoice

RESOURCE = "invoices"
DATE_FIELDS = ("invoice_date", "due_date", "created_at", "paid_at", "updated_at")
DUPLICATE_KEY = 11000


def _zero_if_none(value: object) -> Decimal:
    amount = decode_money(value)
    return amount if amount is not None else Decimal("0.00")


class InvoicesRepo:
    def __init__(self, db: Database[Document], money: MoneyCodec, cache: ReadCache) -> None:
        self._c = collection(db, "invoices")
        self._money = money
        self._cache = cache

    def _document(self, inv: Invoice, currency: str) -> Document:
        enc = self._money.encode
        return {
            "_id": inv.id,
            "customer_id": inv.customer_id,
            "period": inv.period,
            "invoice_date": inv.invoice_date,
            "due_date": inv.due_date,
            "currency": currency,
            "items": [
                {
                    "delivery_id": line.delivery_id,
                    "description": line.description,
                    "quantity": line.quantity,
                    "unit_price": enc(line.unit_price),
                    "total": enc(line.total),
                    "station": line.station,
                    "month": line.month,
                }
                for line in inv.items
            ],
            "subtotal": enc(inv.totals.subtotal),
            "tax": enc(inv.totals.tax),
            "total_amount": enc(inv.totals.total),
            "status": "pending",
            "created_at": inv.invoice_date,
        }

    def insert_new(self, invoices: list[Invoice], currency: str) -> set[str]:
        """Insert in one batch; an invoice whose id exists already is left as it is.
        Returns the ids inserted now."""
        if not invoices:
            return set()
        docs = [self._document(inv, currency) for inv in invoices]
        try:
            self._c.insert_many(docs, ordered=False)
            existing: set[int] = set()
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            existing = {int(e["index"]) for e in errors}
        created = {inv.id for i, inv in enumerate(invoices) if i not in existing}
        self._cache.invalidate(RESOURCE, created)
        return created

    def billed_deliveries(
        self, period: str, invoice_ids: list[str] | None = None
    ) -> dict[str, list[str]]:
        """Invoice id → the deliveries it bills, for the invoices of ``period`` (only
        ``invoice_ids`` if given)."""
        query: dict[str, Any] = {"period": period}
        if invoice_ids is not None:
            query["_id"] = {"$in": invoice_ids}
        docs = self._c.find(query, {"items": 1})
        return {str(d["_id"]): [str(i["delivery_id"]) for i in d.get("items", [])] for d in docs}

    def get(self, invoice_id: str) -> Document | None:
        doc = self._c.find_one({"_id": invoice_id})
        return restore_datetimes(doc, DATE_FIELDS) if doc else None

    def find(
        self,
        customer_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[Document]:
        """Newest first (then by id). ``before`` pages on: only the invoices after the one
        with that id in this order; it must be one of ``customer_id``'s when that is given
        (the last of a previous page always is), else :class:`~skyhive.adapters.mongo.UnknownCursor`."""
        query: dict[str, Any] = {}
        if customer_id:
            query["customer_id"] = customer_id
        if status:
            query["status"] = status
        owner = {"customer_id": customer_id} if customer_id else None
        docs = find_page(self._c, query, "invoice_date", limit, before, owner)
        return [restore_datetimes(d, DATE_FIELDS) for d in docs]

    def unpaid_count(self, customer_id: str) -> int:
        return self._c.count_documents({"customer_id": customer_id, "status": {"$in": UNPAID}})

    def pay(self, invoice_id: str, payment: dict[str, Any], at: datetime) -> Document | None:
        """Record the payment of an unpaid invoice; None if there is no such invoice.
        Raises :class:`AlreadyPaid`. Conditional on the status, so paying twice (even at
        once) records one payment."""
        res = self._c.update_one(
            {"_id": invoice_id, "status": {"$in": UNPAID}},
            {"$set": {"status": "paid", "paid_at": at, "updated_at": at, "payment": payment}},
        )
        if res.modified_count == 0:
            if self._c.find_one({"_id": invoice_id}, {"_id": 1}) is None:
                return None
            raise AlreadyPaid(invoice_id)
        self._cache.invalidate(RESOURCE, [invoice_id])
        return self.get(invoice_id)

    def mark_overdue(self, now: datetime) -> list[str]:
        """Pending invoices past their due date become ``overdue``; returns their ids."""
        due = {"status": "pending", "due_date": {"$lt": now}}
        ids = [str(d["_id"]) for d in self._c.find(due, {"_id": 1})]
        if ids:
            ops = [
                UpdateOne({"_id": i, "status": "pending"}, {"$set": {"status": "overdue"}})
                for i in ids
            ]
            self._c.bulk_write(ops, ordered=False)
            self._cache.invalidate(RESOURCE, ids)
        return ids

    # --- revenue ------------------------------------------------------------------------------

    def customer_revenue(self, customer_id: str) -> dict[str, Any]:
        """Billed to one customer: revenue (before tax), tax, total, paid, outstanding."""
        paid = {"$cond": [{"$eq": ["$status", "paid"]}, "$total_amount", 0]}
        rows = list(
            self._c.aggregate(
                [
                    {"$match": {"customer_id": customer_id}},
                    {
                        "$group": {
                            "_id": "$customer_id",
                            "revenue": {"$sum": "$subtotal"},
                            "tax": {"$sum": "$tax"},
                            "billed": {"$sum": "$total_amount"},
                            "paid": {"$sum": paid},
                            "invoices": {"$sum": 1},
                        }
                    },
                ]
            )
        )
        row = rows[0] if rows else {}
        amounts = {k: _zero_if_none(row.get(k)) for k in ("revenue", "tax", "billed", "paid")}
        return {
            **amounts,
            "outstanding": amounts["billed"] - amounts["paid"],
            "invoices": int(row.get("invoices", 0)),
        }

    def revenue_by(self, group_by: str) -> list[dict[str, Any]]:
        """Revenue (before tax) of the invoice lines by ``month`` or ``station``, with the
        number of invoices and lines; ordered by the group key."""
        rows = self._c.aggregate(
            [
                {"$unwind": "$items"},
                {
                    "$group": {
                        "_id": f"$items.{group_by}",
                        "revenue": {"$sum": "$items.total"},
                        "items": {"$sum": 1},
                        "invoice_ids": {"$addToSet": "$_id"},
                    }
                },
                {
                    "$project": {
                        "revenue": 1,
                        "items": 1,
                        "invoices": {"$size": "$invoice_ids"},
                    }
                },
                {"$sort": {"_id": 1}},
            ]
        )
        return [
            {
                group_by: r["_id"],
                "revenue": _zero_if_none(r["revenue"]),
                "invoices": int(r["invoices"]),
                "items": int(r["items"]),
            }
            for r in rows
        ]

    def top_customers(self, limit: int) -> list[dict[str, Any]]:
        """The customers with the most revenue (before tax), most first."""
        rows = self._c.aggregate(
            [
                {
                    "$group": {
                        "_id": "$customer_id",
                        "revenue": {"$sum": "$subtotal"},
                        "invoices": {"$sum": 1},
                    }
                },
                {"$sort": {"revenue": -1, "_id": 1}},
                {"$limit": limit},
            ]
        )
        return [
            {
                "customer_id": r["_id"],
                "revenue": _zero_if_none(r["revenue"]),
                "invoices": int(r["invoices"]),
            }
            for r in rows
        ]
