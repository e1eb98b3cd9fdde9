"""Weather outlook for tour summaries, behind a small provider interface.

The default provider, :class:`ClimateTableProvider`, works offline from ``climate.yaml``
(monthly climate normals per location): it describes *typical* weather for the month,
never a forecast, and says so. A business with a forecast service can implement
:class:`WeatherProvider` and pass it to :func:`apps.safari.documents.summaries.load_summary_data`.
"""

from __future__ import annotations

import datetime as dt
import functools
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

    def outlook(self, place: str, day: dt.date) -> WeatherOutlook:
        """The outlook for ``place`` (free text: tour name, meeting point) on ``day``."""
        ...


class ClimateTableProvider:
    """Monthly climate normals from a YAML table (offline; typical weather, no forecast).

    Args:
        path: the table (default: the shipped ``climate.yaml``).
    """

    def __init__(self, path: Path = DEFAULT_CLIMATE) -> None:
        raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        self._locations: list[tuple[str, list[str], dict[int, list[Any]]]] = [
            (
                str(spec["name"]),
                [str(word).lower() for word in spec.get("match", [])],
                {int(m): list(v) for m, v in spec["months"].items()},
            )
            for spec in (raw.get("locations") or {}).values()
        ]
        default = raw["default"]
        self._default = (
            str(default["name"]),
            {int(m): list(v) for m, v in default["months"].items()},
        )

    def outlook(self, place: str, day: dt.date) -> WeatherOutlook:
        """The month's normals of the first location whose match words occur in ``place``."""
        text = place.lower()
        # Longest match words first, so "victoria falls" wins over a generic word.
        candidates = sorted(
            ((word, name, months) for name, words, months in self._locations for word in words),
            key=lambda c: -len(c[0]),
        )
        name, months = self._default
        for word, location, table in candidates:
            if word in text:
                name, months = location, table
                break
        high, low, rainy, description = months[day.month]
        return WeatherOutlook(name, int(high), int(low), int(rainy), str(description))


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
