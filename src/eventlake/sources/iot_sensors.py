"""IoT sensors: a fleet of devices per sensor type with baseline, drift, daily cycle and noise.

Rare genuine anomalies are labelled in the ``eventlake-anomaly`` header (valid data, for the
anomaly detectors to find): ``spike`` (a reading far off the baseline), ``stuck`` (the sensor
repeats one value for a while), ``dropout`` (the device goes silent for a while; the readings
that would have come are simply absent, the first one after it is labelled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from eventlake.sources.base import Event, Generator, event_id

# type -> (unit, baseline mean, baseline spread across devices, noise sd, daily amplitude)
SENSOR_TYPES = {
    "TEMPERATURE": ("C", 21.0, 3.0, 0.3, 2.0),
    "HUMIDITY": ("%RH", 45.0, 8.0, 1.0, 5.0),
    "PRESSURE": ("hPa", 1013.0, 4.0, 0.5, 1.0),
    "VIBRATION": ("mm/s", 2.0, 0.5, 0.15, 0.2),
    "CO2": ("ppm", 600.0, 80.0, 15.0, 120.0),
}
SITES = (
    ("plant-rotterdam", 51.92, 4.48),
    ("plant-lyon", 45.76, 4.84),
    ("dc-frankfurt", 50.11, 8.68),
    ("office-austin", 30.27, -97.74),
)
FIRMWARE = ("1.4.2", "1.5.0", "2.0.1")
P_SPIKE, P_STUCK, P_DROPOUT = 0.002, 0.0008, 0.0005
DAY_MS = 86_400_000


@dataclass(slots=True)
class _Device:
    id: str
    type: str
    baseline: float
    drift_per_day: float
    site: tuple[str, float, float]
    firmware: str
    battery: float | None
    stuck_left: int = 0
    stuck_value: float = 0.0
    silent: int = 0


class IotSensorsGenerator(Generator):
    name = "iot_sensors"
    key_field = "device_id"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # Genuine readings stay physically plausible: within the configured valid range.
        bounds = self.settings.sources.ranges.get(self.name, {}).get("value")
        self.value_min = None if bounds is None else bounds.min
        self.value_max = None if bounds is None else bounds.max
        types = list(SENSOR_TYPES)
        self.devices = []
        for i in range(self.settings.sources.devices):
            kind = types[i % len(types)]
            _, mean, spread, _, _ = SENSOR_TYPES[kind]
            self.devices.append(
                _Device(
                    id=f"dev-{kind.lower()[:4]}-{i:04d}",
                    type=kind,
                    baseline=self.rng.gauss(mean, spread),
                    drift_per_day=self.rng.gauss(0, 0.02 * spread),
                    site=self.rng.choice(SITES),
                    firmware=self.rng.choice(FIRMWARE),
                    battery=None if self.rng.random() < 0.4 else 100.0,
                )
            )

    def next_event(self) -> Event:
        now = self.event_time()
        while True:
            d = self.devices[self.rng.randrange(len(self.devices))]
            if d.silent > 0:
                d.silent -= 1
                continue
            break
        unit, _, _, noise, amplitude = SENSOR_TYPES[d.type]
        day_phase = 2 * math.pi * ((now % DAY_MS) / DAY_MS - 0.25)
        value = d.baseline + d.drift_per_day * (now / DAY_MS % 30) + amplitude * math.sin(day_phase)
        value += self.rng.gauss(0, noise)
        anomaly = None
        if d.stuck_left > 0:
            d.stuck_left -= 1
            value, anomaly = d.stuck_value, "stuck"
        else:
            r = self.rng.random()
            if r < P_SPIKE:
                # Quantities that cannot go below zero (ppm, %RH, mm/s) only spike upwards.
                sign = self.rng.choice((-1, 1)) if d.type in ("TEMPERATURE", "PRESSURE") else 1
                value += sign * self.rng.uniform(8, 15) * noise * 4
                anomaly = "spike"
            elif r < P_SPIKE + P_STUCK:
                d.stuck_left, d.stuck_value, anomaly = self.rng.randrange(5, 20), round(value, 2), "stuck"
                value = d.stuck_value
            elif r < P_SPIKE + P_STUCK + P_DROPOUT:
                d.silent, anomaly = self.rng.randrange(20, 60), "dropout"
        if self.value_min is not None:
            value = max(value, self.value_min)
        if self.value_max is not None:
            value = min(value, self.value_max)
        if d.battery is not None:
            d.battery = max(1.0, d.battery - 0.001)
        site, lat, lon = d.site
        record = {
            "event_id": event_id(self.rng),
            "event_time": now,
            "device_id": d.id,
            "sensor_type": d.type,
            "value": round(value, 3),
            "unit": unit,
            "battery_pct": None if d.battery is None else round(d.battery, 2),
            "firmware": d.firmware,
            "location": {"site": site, "lat": lat, "lon": lon},
        }
        return Event(key=d.id, value=record, anomaly=anomaly)
