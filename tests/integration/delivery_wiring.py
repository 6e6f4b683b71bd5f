"""The delivery services built on a test's clients, exactly as the workers build them."""

from __future__ import annotations

from skyhive.workers.dispatcher import build_dispatcher as dispatcher
from skyhive.workers.tracker import build_tracker as tracker

__all__ = ["dispatcher", "tracker"]
