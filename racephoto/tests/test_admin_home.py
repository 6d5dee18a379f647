"""The admin home's own links: sales for every member of staff, the model status for
platform admins only (its page answers 404 to anyone else)."""

import pytest
from django.urls import reverse

from events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def event():
    return EventFactory(slug="accueil-admin")


@pytest.mark.parametrize(("who", "sees_model_status"), [("photographer", False), ("owner", False),
                                                        ("admin", True)])
def test_the_admin_home_links_what_each_member_of_staff_may_open(client, people, who, sees_model_status):
    client.force_login(people[who])
    page = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:commerce_shop_own_sales") in page
    assert (reverse("model-status") in page) is sees_model_status
    if sees_model_status:
        assert client.get(reverse("model-status")).status_code == 200


def _apps(admin_client, language) -> dict[str, tuple[str, list[str]]]:
    response = admin_client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE=language)
    return {app["app_label"]: (str(app["name"]), [str(model["name"]) for model in app["models"]])
            for app in response.context["app_list"]}


def test_a_platform_admin_sees_stripes_webhooks_and_no_other_library_model(admin_client):
    apps = _apps(admin_client, "fr")

    # Of dj-stripe's forty-odd mirrors, only what receiving Stripe's webhooks needs.
    assert apps["djstripe"] == ("Paiements Stripe", ["Points de réception des webhooks",
                                                     "Webhooks reçus"])
    assert "django_celery_results" not in apps
    # Nor Django's groups: the role decides what a person may open (accounts/admin.py).
    assert set(apps) == {"account", "authtoken", "djstripe", "accounts", "events", "photos",
                         "commerce"}


def test_the_stripe_section_reads_in_english_too(admin_client):
    assert _apps(admin_client, "en")["djstripe"] == (
        "Stripe payments", ["Received webhooks", "Webhook endpoints"])


@pytest.mark.parametrize(("url", "status"), [
    ("/admin/djstripe/webhookendpoint/", 200), ("/admin/djstripe/webhookeventtrigger/", 200),
    ("/admin/djstripe/customer/", 404), ("/admin/djstripe/apikey/", 404),
    ("/admin/django_celery_results/taskresult/", 404)])
def test_only_the_kept_library_pages_open(admin_client, url, status):
    assert admin_client.get(url).status_code == status


def test_naming_the_stripe_models_needs_no_migration():
    from django.core.management import call_command

    # Raises SystemExit if the display names had reached the migration state.
    call_command("makemigrations", "djstripe", "--check", "--dry-run", verbosity=0)
