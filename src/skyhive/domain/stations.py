"""The BART stations the fleet flies from (facts shipped with the package)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class Station:
    code: str
    name: str
    lat: float
    lon: float
    pads: int = 4
    chargers: int = 2

    def to_document(self) -> dict[str, object]:
        """MongoDB document: GeoJSON point is [lon, lat]."""
        return {
            "_id": self.code,
            "name": self.name,
            "location": {"type": "Point", "coordinates": [self.lon, self.lat]},
            "pads": self.pads,
            "chargers": self.chargers,
        }


def parse_stations(text: str) -> list[Station]:
    rows = csv.DictReader(io.StringIO(text))
    return [
        Station(
            code=r["code"].strip(),
            name=r["name"].strip(),
            lat=float(r["latitude"]),
            lon=float(r["longitude"]),
        )
        for r in rows
    ]


@cache
def bart_stations() -> tuple[Station, ...]:
    text = resources.files("skyhive").joinpath("data/bart_stations.csv").read_text(encoding="utf-8")
    return tuple(parse_stations(text))
