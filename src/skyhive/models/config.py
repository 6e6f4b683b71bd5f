"""Settings of the stream models (``SKYHIVE_MODELS__*``): which run, how the runner batches and
saves them, and each shipped model's thresholds. Pure data, kept apart from the models
themselves so that reading the settings never imports a model's libraries (river)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class BatteryHealthConfig(BaseModel):
    """``SKYHIVE_MODELS__BATTERY_HEALTH__DRIFT_SHARE=0.25``, ... (``models/battery_health.py``
    explains each threshold)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    segment_km: float = Field(default=0.5, gt=0, le=50)
    baseline_km: float = Field(default=20.0, gt=0, le=10_000)
    window_km: float = Field(default=5.0, gt=0, le=1_000)
    drift_share: float = Field(default=0.25, gt=0, le=10)
    min_speed_mps: float = Field(default=3.0, ge=0, le=100)
    max_climb_mps: float = Field(default=0.5, gt=0, le=50)
    max_gap_s: float = Field(default=30.0, gt=0, le=3600)


class AnomalyConfig(BaseModel):
    """``SKYHIVE_MODELS__ANOMALY__THRESHOLD=10``, ... (``models/anomaly.py`` explains each)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: float = Field(default=10.0, gt=0)
    warmup: int = Field(default=120, ge=2)
    drivers: int = Field(default=3, ge=1, le=10)
    min_dt_s: float = Field(default=0.5, gt=0)
    max_gap_s: float = Field(default=30.0, gt=0, le=3600)
    drain_smoothing: float = Field(default=0.2, gt=0, le=1)


class ModelsConfig(BaseModel):
    """The ``models`` role: the plug-ins it runs (names in the ``skyhive.models`` entry point
    group), how many readings a batch takes, how often each model's per-drone state is saved
    (and its counters published), the shipped models' settings, and a third party's options
    by model name (``SKYHIVE_MODELS__OPTIONS='{"mine": {"limit": 3}}'``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: tuple[str, ...] = ("battery_health", "anomaly")
    batch_size: int = Field(default=500, ge=1, le=10_000)
    save_every_s: float = Field(default=15.0, gt=0, le=3600)
    battery_health: BatteryHealthConfig = BatteryHealthConfig()
    anomaly: AnomalyConfig = AnomalyConfig()
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def options_for(self, name: str) -> dict[str, Any]:
        """What the model called ``name`` is built with."""
        if name == "battery_health":
            return self.battery_health.model_dump()
        if name == "anomaly":
            return self.anomaly.model_dump()
        return dict(self.options.get(name, {}))
