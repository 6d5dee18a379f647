import datetime
from decimal import Decimal

import factory
from django.utils.text import slugify

from events.models import Event, Race, StartListEntry


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    name = factory.Sequence(lambda n: f"Course {n}")
    slug = factory.LazyAttribute(lambda event: slugify(event.name))
    date = factory.LazyFunction(lambda: datetime.date.today() + datetime.timedelta(days=30))
    location = "Lyon"
    description = "Une belle course."
    is_published = True
    # Most tests are about finding photos; privacy tests choose their setting themselves.
    face_search = Event.FaceSearch.ON


class RaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Race

    event = factory.SubFactory(EventFactory)
    name = factory.Sequence(lambda n: f"{n + 1} km")
    distance_km = Decimal("10")
    start_time = datetime.time(9, 30)


class StartListEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StartListEntry

    event = factory.SubFactory(EventFactory)
    race = None
    bib = factory.Sequence(lambda n: str(100 + n))
    first_name = "Camille"
    last_name = factory.Sequence(lambda n: f"Coureur{n}")
