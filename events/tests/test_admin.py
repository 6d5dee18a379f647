import pytest
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import UserFactory
from events.admin import START_LIST_INLINE_LIMIT
from events.models import Event
from events.tests.factories import EventFactory, RaceFactory, StartListEntryFactory

pytestmark = pytest.mark.django_db


def test_it_shows_the_event_changelist_to_a_superuser(admin_client):
    event = EventFactory(name="Trail de Fourvière")
    StartListEntryFactory.create_batch(2, event=event)

    response = admin_client.get(reverse("admin:events_event_changelist"))

    assert response.status_code == 200
    assert "Trail de Fourvière" in response.content.decode()
    assert response.context["cl"].result_list[0].runner_count == 2


def test_it_searches_events(admin_client):
    EventFactory(name="Trail de Fourvière")
    EventFactory(name="Semi de Villeurbanne")

    response = admin_client.get(reverse("admin:events_event_changelist"), {"q": "fourv"})

    assert [event.name for event in response.context["cl"].result_list] == ["Trail de Fourvière"]


def test_it_shows_the_event_add_form_to_a_superuser(admin_client):
    response = admin_client.get(reverse("admin:events_event_add"))

    assert response.status_code == 200
    assert "prepopulated" in response.content.decode()


def test_it_shows_the_event_change_form_with_races_and_start_list(admin_client):
    event = EventFactory()
    race = RaceFactory(event=event, name="Semi-marathon")
    RaceFactory(name="Course d'une autre épreuve")
    StartListEntryFactory(event=event, race=race, bib="42", last_name="Dupont")

    response = admin_client.get(reverse("admin:events_event_change", args=[event.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Semi-marathon" in html
    assert 'value="Dupont"' in html
    race_field = response.context["inline_admin_formsets"][1].formset.forms[0].fields["race"]
    assert [label for _, label in race_field.choices][1:] == [str(race)]


def test_it_limits_the_start_list_inline_and_links_to_the_full_list(admin_client):
    event = EventFactory()
    StartListEntryFactory.create_batch(START_LIST_INLINE_LIMIT + 5, event=event)

    response = admin_client.get(reverse("admin:events_event_change", args=[event.pk]))

    formset = response.context["inline_admin_formsets"][1].formset
    assert len(formset.forms) == START_LIST_INLINE_LIMIT
    changelist = reverse("admin:events_startlistentry_changelist")
    assert f"{changelist}?event__id__exact={event.pk}" in response.content.decode()


def test_it_saves_an_event_with_its_races_from_the_change_form(admin_client):
    event = EventFactory(name="Avant")
    data = {
        "name": "Après", "slug": event.slug, "date": event.date.isoformat(),
        "location": "Lyon", "description": "", "is_published": "on", "face_search": "on",
        "races-TOTAL_FORMS": "1", "races-INITIAL_FORMS": "0",
        "races-MIN_NUM_FORMS": "0", "races-MAX_NUM_FORMS": "1000",
        "races-0-name": "10 km", "races-0-distance_km": "10", "races-0-start_time": "09:30",
        "start_list-TOTAL_FORMS": "0", "start_list-INITIAL_FORMS": "0",
        "start_list-MIN_NUM_FORMS": "0", "start_list-MAX_NUM_FORMS": "1000",
    }

    response = admin_client.post(reverse("admin:events_event_change", args=[event.pk]), data)

    assert response.status_code == 302
    event.refresh_from_db()
    assert event.name == "Après"
    assert list(event.races.values_list("name", flat=True)) == ["10 km"]


def test_it_offers_only_matching_roles_as_organisers_and_photographers(admin_client):
    photographer = UserFactory(username="photo", role=User.Role.PHOTOGRAPHER)
    organiser = UserFactory(username="orga", role=User.Role.ORGANISER)
    runner = UserFactory(username="runner", role=User.Role.RUNNER)
    assigned_runner = UserFactory(username="assigned", role=User.Role.RUNNER)
    event = EventFactory()
    event.photographers.add(assigned_runner)

    response = admin_client.get(reverse("admin:events_event_change", args=[event.pk]))

    form = response.context["adminform"].form
    photographers = set(form.fields["photographers"].queryset)
    organisers = set(form.fields["organisers"].queryset)
    assert photographer in photographers and assigned_runner in photographers
    assert runner not in photographers and organiser not in photographers
    assert organiser in organisers
    assert runner not in organisers and photographer not in organisers


@pytest.mark.parametrize("url_name", ["admin:events_event_changelist", "admin:events_event_add",
                                      "admin:events_startlistentry_changelist"])
def test_it_sends_an_anonymous_user_to_the_login_page(client, url_name):
    url = reverse(url_name)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_it_sends_an_anonymous_user_from_a_change_form_to_the_login_page(client):
    event = EventFactory()

    response = client.get(reverse("admin:events_event_change", args=[event.pk]))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert Event.objects.filter(pk=event.pk).exists()


def test_it_searches_the_start_list_by_bib_and_name(admin_client):
    event = EventFactory()
    StartListEntryFactory(event=event, bib="777", last_name="Dupont")
    StartListEntryFactory(event=event, bib="778", last_name="Martin")
    url = reverse("admin:events_startlistentry_changelist")

    by_bib = admin_client.get(url, {"q": "777"}).context["cl"].result_list
    by_name = admin_client.get(url, {"q": "martin"}).context["cl"].result_list

    assert [entry.bib for entry in by_bib] == ["777"]
    assert [entry.bib for entry in by_name] == ["778"]


def test_it_filters_the_start_list_by_event(admin_client):
    event = EventFactory()
    StartListEntryFactory(event=event, bib="1")
    StartListEntryFactory(bib="2")

    response = admin_client.get(reverse("admin:events_startlistentry_changelist"),
                                {"event__id__exact": event.pk})

    assert [entry.bib for entry in response.context["cl"].result_list] == ["1"]


def test_it_shows_the_start_list_entry_change_form(admin_client):
    entry = StartListEntryFactory(race=RaceFactory())

    response = admin_client.get(reverse("admin:events_startlistentry_change", args=[entry.pk]))

    assert response.status_code == 200


def test_it_renders_a_long_start_list_inline_in_few_queries(admin_client,
                                                           django_assert_max_num_queries):
    event = EventFactory()
    RaceFactory.create_batch(2, event=event)
    StartListEntryFactory.create_batch(START_LIST_INLINE_LIMIT + 10, event=event)

    # Without sharing the race choices, each inline row queries the races again.
    with django_assert_max_num_queries(25):
        response = admin_client.get(reverse("admin:events_event_change", args=[event.pk]))

    assert response.status_code == 200
