"""Adapters: one module per technology. Only these modules import I/O client libraries."""
