"""Calendar dates for data sets that publish only relative days.

Every imported patient's day 0 (ieee8023: the day its `offset` counts from, symptom onset or admission; Hannover:
the admission day) falls on one fixed anchor date, so the import is deterministic and the date itself says
nothing about the patient. Each kind of record gets a fixed time of day, so that on an image's day the vital signs
and labs come before the image and the note after it; a case's `as_of` (the image's day) shows all of that day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

DEFAULT_ANCHOR = date(2020, 3, 2)

RecordKind = Literal["vital-signs", "laboratory", "image", "note"]
TIME_OF_DAY: dict[RecordKind, time] = {
    "vital-signs": time(8, 0),
    "laboratory": time(9, 0),
    "image": time(10, 0),
    "note": time(11, 0),
}


@dataclass(frozen=True)
class Timeline:
    anchor: date = DEFAULT_ANCHOR

    def date_of(self, day: int) -> date:
        return self.anchor + timedelta(days=day)

    def instant(self, day: int, kind: RecordKind) -> str:
        """An ISO instant in UTC, as FHIR dateTime and instant both accept."""
        moment = datetime.combine(self.date_of(day), TIME_OF_DAY[kind], tzinfo=UTC)
        return moment.isoformat().replace("+00:00", "Z")


def birth_date_for_age(age: int, on: date) -> date:
    """A birth date that makes the patient `age` on `on` and for the year after it.

    The birthday falls on `on` itself: given the patient's first day, later images keep the stated age.
    """
    try:
        return on.replace(year=on.year - age)
    except ValueError:  # 29 February in a year without one
        return date(on.year - age, 2, 28)


def age_on(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
