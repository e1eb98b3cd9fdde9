"""Weather outlook for tour summaries, behind a small provider interface.

The default provider, :class:`ClimateTableProvider`, works offline from ``climate.yaml``
(monthly climate normals per location): it describes *typical* weather for the month,
never a forecast, and says so. A business with a forecast service can implement
:class:`WeatherProvider` and pass it to :func:`apps.safari.documents.summaries.load_summary_data`.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import yaml

__all__ = [
    "DEFAULT_CLIMATE",
    "ClimateTableProvider",
    "WeatherOutlook",
    "WeatherProvider",
    "clothing_advice",
    "default_provider",
]

DEFAULT_CLIMATE: Final = Path(__file__).parent / "climate.yaml"
EARTH_RADIUS_KM: Final = 6371.0
DEFAULT_RADIUS_KM: Final = 120.0


@dataclass(frozen=True, slots=True)
class WeatherOutlook:
    """What the weather will probably be like.

    Attributes:
        location: the place it is for (``Victoria Falls``).
        high_c: average (or forecast) daytime high, °C.
        low_c: average (or forecast) night-time low, °C.
        rainy_days: rainy days in the month (a normal) or 0/1 (a forecast).
        description: a few words (``dry and sunny, cold early mornings``).
        forecast: ``True`` for a real forecast, ``False`` for climate normals.
    """

    location: str
    high_c: int
    low_c: int
    rainy_days: int
    description: str
    forecast: bool = False

    def text(self) -> str:
        """One or two sentences for a customer, saying whether it is a forecast."""
        what = "Forecast" if self.forecast else "Typical weather for this time of year"
        line = (
            f"{what} in {self.location}: {self.description}, around {self.high_c}°C by day "
            f"and {self.low_c}°C at night"
        )
        if not self.forecast:
            line += f", about {self.rainy_days} rainy days in the month"
            line += ". (Long-term averages, not a forecast.)"
        else:
            line += "."
        return line


class WeatherProvider(Protocol):
    """Anything that gives a weather outlook for a place and a day."""

    def outlook(
        self, place: str, day: dt.date, *, coordinates: tuple[float, float] | None = None
    ) -> WeatherOutlook:
        """The outlook on ``day`` for the tour's place: ``coordinates`` (latitude,
        longitude) when the tour has them, else ``place`` (free text: the tour's name,
        meeting point and address, most telling first, one per line)."""
        ...


@dataclass(frozen=True, slots=True)
class _Location:
    name: str
    words: tuple[str, ...]
    months: dict[int, list[Any]]
    at: tuple[float, float] | None
    radius_km: float


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (latitude, longitude) points (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


class ClimateTableProvider:
    """Monthly climate normals from a YAML table (offline; typical weather, no forecast).

    Args:
        path: the table (default: the shipped ``climate.yaml``).
    """

    def __init__(self, path: Path = DEFAULT_CLIMATE) -> None:
        raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        self._locations = [
            _Location(
                name=str(spec["name"]),
                words=tuple(str(word).lower() for word in spec.get("match", [])),
                months={int(m): list(v) for m, v in spec["months"].items()},
                at=(float(spec["at"][0]), float(spec["at"][1])) if spec.get("at") else None,
                radius_km=float(spec.get("radius_km", DEFAULT_RADIUS_KM)),
            )
            for spec in (raw.get("locations") or {}).values()
        ]
        default = raw["default"]
        self._default = (
            str(default["name"]),
            {int(m): list(v) for m, v in default["months"].items()},
        )

    def outlook(
        self, place: str, day: dt.date, *, coordinates: tuple[float, float] | None = None
    ) -> WeatherOutlook:
        """The month's normals of the tour's location.

        With ``coordinates``: the nearest location within its radius (a tour far from
        every location gets the country's normals; its address's words are not trusted,
        a road named after another town would win). Without: the first line of ``place``
        that names a location, the longest name first within a line ("Victoria Falls"
        before "falls").
        """
        name, months = self._location(place, coordinates)
        high, low, rainy, description = months[day.month]
        return WeatherOutlook(name, int(high), int(low), int(rainy), str(description))

    def _location(
        self, place: str, coordinates: tuple[float, float] | None
    ) -> tuple[str, dict[int, list[Any]]]:
        if coordinates is not None:
            near = [
                (distance_km(coordinates, loc.at), loc)
                for loc in self._locations
                if loc.at is not None
            ]
            within = [(km, loc) for km, loc in near if km <= loc.radius_km]
            if within:
                _, nearest = min(within, key=lambda pair: pair[0])
                return nearest.name, nearest.months
            return self._default
        candidates = sorted(
            ((word, loc) for loc in self._locations for word in loc.words),
            key=lambda c: -len(c[0]),
        )
        for line in place.lower().splitlines():
            for word, loc in candidates:
                if word in line:
                    return loc.name, loc.months
        return self._default


@functools.cache
def default_provider() -> ClimateTableProvider:
    """The shipped climate table (read once)."""
    return ClimateTableProvider()


def clothing_advice(outlook: WeatherOutlook) -> str:
    """What to wear, derived from the outlook (layers for cold mornings, rain gear...)."""
    advice = ["neutral-coloured clothes (khaki, olive, beige; no bright colours or white)"]
    advice.append("comfortable closed walking shoes")
    if outlook.low_c <= 12:
        advice.append("a warm fleece or jacket, a beanie and gloves for the cold early morning")
    elif outlook.low_c <= 16:
        advice.append("a light jumper for the cool morning")
    if outlook.high_c >= 28:
        advice.append("light breathable layers, a wide-brimmed hat and sunscreen for the heat")
    else:
        advice.append("a hat and sunscreen")
    if outlook.rainy_days >= 5 or "spray" in outlook.description:
        advice.append("a rain jacket or poncho (and a dry bag for your phone)")
    return "Wear " + "; ".join(advice) + "."
