from dataclasses import dataclass, field
from datetime import date, time
from decimal import Decimal

from django.db import transaction

from events.models import Event, Race, StartListEntry

DEMO_EVENT_SLUG = "demo-10k-lyon"

_DEMO_EVENT = {
    "name": "10 km de Lyon (démo)",
    "name_en": "Lyon 10K (demo)",
    "date": date(2025, 10, 12),
    "location": "Lyon",
    "description": "Course de démonstration le long des quais du Rhône, pour essayer RacePhoto.",
    "description_en": "Demo race along the banks of the Rhône, to try RacePhoto out.",
    "is_published": True,
    # Every demo bib has three digits: shorter readings (a pin, a fold) are not bibs.
    "bib_min_length": 3,
    # The runners are made up, so selfie search can be tried on every one of them.
    "face_search": Event.FaceSearch.ON,
}

# (name, distance in km, start time, bibs)
_DEMO_RACES = [
    ("5 km", Decimal("5"), time(9, 0), range(101, 113)),
    ("10 km", Decimal("10"), time(10, 0), range(113, 131)),
]

# Fixed so that every install shows the same start list: bib 101 is always Camille Martin.
_DEMO_RUNNERS = [
    ("Camille", "Martin"), ("Lucas", "Bernard"), ("Léa", "Dubois"), ("Hugo", "Thomas"),
    ("Chloé", "Robert"), ("Louis", "Richard"), ("Manon", "Petit"), ("Gabriel", "Durand"),
    ("Emma", "Leroy"), ("Arthur", "Moreau"), ("Inès", "Simon"), ("Jules", "Laurent"),
    ("Sarah", "Lefebvre"), ("Nathan", "Michel"), ("Juliette", "Garcia"), ("Théo", "David"),
    ("Zoé", "Bertrand"), ("Raphaël", "Roux"), ("Alice", "Vincent"), ("Maxime", "Fournier"),
    ("Louise", "Morel"), ("Antoine", "Girard"), ("Clara", "André"), ("Paul", "Mercier"),
    ("Jeanne", "Dupont"), ("Mathis", "Lambert"), ("Anaïs", "Bonnet"), ("Quentin", "François"),
    ("Margaux", "Martinez"), ("Baptiste", "Faure"),
]
_DEMO_FIRST_BIB = 101


@dataclass
class DemoLoadResult:
    event: Event
    event_created: bool = False
    races_created: list[Race] = field(default_factory=list)
    runners_created: int = 0

    @property
    def created_anything(self) -> bool:
        return self.event_created or bool(self.races_created) or bool(self.runners_created)


def load_demo_event() -> DemoLoadResult:
    """Create the demo event, its races and start list; what already exists is left as is.

    Only missing rows are added, so an organiser who edited the demo in the
    admin does not lose their changes when the loader runs again.
    """
    with transaction.atomic():
        event, event_created = Event.objects.get_or_create(
            slug=DEMO_EVENT_SLUG, defaults=_DEMO_EVENT
        )
        result = DemoLoadResult(event=event, event_created=event_created)

        race_for_bib = {}
        for name, distance, start_time, bibs in _DEMO_RACES:
            race, created = Race.objects.get_or_create(
                event=event, name=name,
                defaults={"distance_km": distance, "start_time": start_time},
            )
            if created:
                result.races_created.append(race)
            race_for_bib.update({str(bib): race for bib in bibs})

        existing_bibs = set(event.start_list.values_list("bib", flat=True))
        missing = [
            StartListEntry(event=event, race=race_for_bib.get(str(bib)), bib=str(bib),
                           first_name=first_name, last_name=last_name)
            for bib, (first_name, last_name) in enumerate(_DEMO_RUNNERS, start=_DEMO_FIRST_BIB)
            if str(bib) not in existing_bibs
        ]
        StartListEntry.objects.bulk_create(missing)
        result.runners_created = len(missing)
    return result
