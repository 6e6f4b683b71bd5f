"""A simulated drone's battery: what flying costs, and charging on a pad.

It follows the drone's registry spec, so the dispatcher's energy model holds: cruising costs
``pct_per_km`` per km; climbing, descending and hovering cost time on top, a few percent per
flight that the dispatcher's landing reserve absorbs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

HOVER_DRAIN_PCT_PER_S = 0.015  # climbing, descending, hovering; cruise drains per km instead
CHARGE_RATE_PCT_PER_S = (0.08, 0.15)  # roughly 7-14 minutes from 35 % to full
CHARGE_TAPER_ABOVE_PCT = 80.0  # constant-voltage phase: charging slows near full
CHARGE_TAPER_FACTOR = 0.5
CHARGE_TARGET_PCT = (95.0, 100.0)
MIN_TAKEOFF_PCT = 35.0
LANDING_RESERVE_PCT = 25.0  # an autonomous leg is affordable only if this much is left on landing
LOW_BATTERY_PCT = 15.0  # airborne below this: divert to the nearest station


@dataclass(slots=True)
class Battery:
    """Charge in percent, never below zero; ``target_pct`` is where the current charge stops."""

    pct: float
    charge_rate_pct_per_s: float
    pct_per_km: float  # cruise cost, from the spec the dispatcher plans with
    target_pct: float = 100.0

    @property
    def low(self) -> bool:
        return self.pct < LOW_BATTERY_PCT

    def leg_cost(self, distance_m: float, vertical_s: float) -> float:
        """Percent a whole leg uses: cruise drain by distance plus its climb and descent."""
        return self.pct_per_km * distance_m / 1000.0 + HOVER_DRAIN_PCT_PER_S * vertical_s

    def hover(self, airborne_s: float) -> None:
        """Climbing, descending or hovering for ``airborne_s``."""
        self.lose(HOVER_DRAIN_PCT_PER_S * airborne_s)

    def cruise(self, distance_m: float) -> None:
        self.lose(self.pct_per_km * distance_m / 1000.0)

    def lose(self, pct: float) -> None:
        self.pct = max(0.0, self.pct - pct)

    def start_charging(self, rng: random.Random) -> None:
        self.target_pct = rng.uniform(*CHARGE_TARGET_PCT)

    def charge(self, dt_s: float) -> bool:
        """Charge for ``dt_s``, slower above ``CHARGE_TAPER_ABOVE_PCT``; True once charged."""
        rate = self.charge_rate_pct_per_s
        if self.pct >= CHARGE_TAPER_ABOVE_PCT:
            rate *= CHARGE_TAPER_FACTOR
        self.pct = min(self.pct + rate * dt_s, 100.0)
        return self.pct >= self.target_pct
