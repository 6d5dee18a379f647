"""The received webhooks' list speaks the back office's language: its filters and columns
have translated titles (dj-stripe's would be its English field names: "Par created"), and
each row names the Stripe event it carried."""

import json
import re
from html import unescape

import pytest
from django.urls import reverse
from djstripe.models import WebhookEndpoint, WebhookEventTrigger

pytestmark = pytest.mark.django_db

LIST = reverse("admin:djstripe_webhookeventtrigger_changelist")


@pytest.fixture
def triggers():
    endpoint = WebhookEndpoint.objects.create(
        id="we_admin", livemode=False, url="https://photos.example.org/stripe/webhook/1/",
        enabled_events=["*"], status="enabled", secret="whsec_admin")
    paid = WebhookEventTrigger.objects.create(
        remote_ip="54.187.174.169", headers={}, webhook_endpoint=endpoint, valid=True, processed=True,
        body=json.dumps({"id": "evt_paid", "type": "payment_intent.succeeded", "livemode": False}))
    forged = WebhookEventTrigger.objects.create(
        remote_ip="203.0.113.9", headers={}, webhook_endpoint=endpoint, valid=False,
        body=json.dumps({"id": "evt_forged", "type": "charge.refunded", "livemode": False}))
    failed = WebhookEventTrigger.objects.create(
        remote_ip="54.187.174.169", headers={}, webhook_endpoint=endpoint, valid=True,
        exception="PaymentsNotConfigured: webhook evt_failed",
        body=json.dumps({"id": "evt_failed", "type": "charge.refund.updated", "livemode": False}))
    return paid, forged, failed


def texts(html: str, pattern: str) -> list[str]:
    return [" ".join(re.sub(r"<[^>]+>", " ", found).split()) for found in re.findall(pattern, html, re.S)]


def filter_titles(html: str) -> list[str]:
    return texts(html, r"<summary>(.*?)</summary>")


def column_titles(html: str) -> list[str]:
    table = re.search(r'<table id="result_list">.*?</thead>', html, re.S).group(0)
    return [title for title in texts(table, r'<th scope="col"[^>]*>(.*?)</th>') if title]


def test_the_filters_and_columns_have_french_titles(admin_client, triggers):
    html = admin_client.get(LIST, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert filter_titles(html) == ["Par date de réception", "Par signature valide",
                                   "Par traitement réussi"]
    assert column_titles(html) == ["Reçu le", "Événement Stripe", "Mode", "Résultat"]
    assert "created" not in " ".join(filter_titles(html) + column_titles(html))


def test_they_read_in_english_too(admin_client, triggers):
    html = admin_client.get(LIST, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert filter_titles(html) == ["By date received", "By valid signature", "By successful processing"]
    assert column_titles(html)[:3] == ["Received", "Stripe event", "Mode"]


def test_each_row_names_its_stripe_event_newest_first(admin_client, triggers):
    html = admin_client.get(LIST, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert html.index("evt_forged") < html.index("evt_paid")
    assert "payment_intent.succeeded<br><small>evt_paid</small>" in html and "charge.refunded" in html
    assert ">test</td>" in html  # the endpoint's mode, not its long URL


def test_each_row_says_what_became_of_it_with_its_error(admin_client, triggers):
    html = admin_client.get(LIST, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    outcomes = texts(html, r'<td class="field-outcome">(.*?)</td>')  # spaces collapsed
    assert outcomes == ["échoué PaymentsNotConfigured: webhook evt_failed",
                        "refusé : signature invalide", "traité"]


@pytest.mark.parametrize(("query", "shown", "hidden"), [
    ({"valid__exact": "0"}, "evt_forged", "evt_paid"),
    ({"processed__exact": "1"}, "evt_paid", "evt_failed"),
])
def test_the_renamed_filters_still_filter(admin_client, triggers, query, shown, hidden):
    html = admin_client.get(LIST, query, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert shown in html and hidden not in html


# --- A received webhook's own page ------------------------------------------------------


@pytest.fixture
def platform_admin_client(client):
    from accounts.models import User
    from accounts.tests.factories import UserFactory

    client.force_login(UserFactory(username="ada-admin", role=User.Role.ADMIN))
    return client


def labels(html: str) -> list[str]:
    """The form's labels, without their suffix (" :" in French)."""
    return [label.rstrip(" :\u00a0") for label in texts(html, r"<label[^>]*>(.*?)</label>")]


def page_of(trigger) -> str:
    return reverse("admin:djstripe_webhookeventtrigger_change", args=[trigger.pk])


def test_a_received_webhooks_page_reads_in_french(platform_admin_client, triggers):
    _paid, _forged, failed = triggers

    response = platform_admin_client.get(page_of(failed), HTTP_ACCEPT_LANGUAGE="fr")

    html = unescape(response.content.decode())
    assert labels(html) == ["Reçu le", "Événement Stripe", "Point de réception", "Résultat",
                            "Trace de l’erreur", "Version de dj-stripe", "Adresse de l’expéditeur",
                            "En-têtes", "Corps"]
    assert "Ce que Stripe a envoyé" in html
    assert "L’adresse IP d’où vient le webhook." in html
    # Named by its event, not by dj-stripe's "id=3, valid=True, processed=False".
    assert response.context["subtitle"] == "charge.refund.updated evt_failed"
    assert "\u203a charge.refund.updated evt_failed" in html  # the last breadcrumb
    for english in ("Remote ip", "Headers", "Body", "Djstripe version", "Webhook endpoint",
                    "IP address of the request client", "Traceback if an exception",
                    "The endpoint this webhook was received on", "The version of dj-stripe when",
                    "valid=True"):
        assert english not in html, english


def test_a_received_webhooks_page_reads_in_english_too(platform_admin_client, triggers):
    paid, _forged, _failed = triggers

    html = unescape(platform_admin_client.get(page_of(paid), HTTP_ACCEPT_LANGUAGE="en").content.decode())

    assert labels(html) == ["Received", "Stripe event", "Endpoint", "Outcome", "Traceback",
                            "Version of dj-stripe", "Sender's address", "Headers", "Body"]
    assert "The request's HTTP headers, Stripe's signature among them." in html


def test_a_received_webhook_without_an_event_is_named_by_its_number(platform_admin_client):
    trigger = WebhookEventTrigger.objects.create(remote_ip="203.0.113.9", headers={}, body="not json")

    response = platform_admin_client.get(page_of(trigger), HTTP_ACCEPT_LANGUAGE="fr")

    assert response.context["subtitle"] == f"Webhook reçu n°\u00a0{trigger.pk}"


# --- Its history and deletion pages, and the list's actions ------------------------------

# What dj-stripe's pages say in English: its name of a received webhook (its str(), "id=1,
# valid=True, processed=True") and its actions.
DJSTRIPE_ENGLISH = ("valid=True", "valid=False", "processed=True", "processed=False",
                    "Re-Sync", "Sync All Instances", "Successfully", "Skipped invalid trigger")


def action_choices(html: str) -> list[str]:
    return texts(html, r'<select name="action"[^>]*>(.*?)</select>')


def test_the_lists_actions_read_in_french(platform_admin_client, triggers):
    html = unescape(platform_admin_client.get(LIST, HTTP_ACCEPT_LANGUAGE="fr").content.decode())

    assert action_choices(html) == ["--------- Supprimer les webhooks reçus sélectionnés"]
    # Each row's tick box is labelled with the webhook's name.
    assert 'aria-label="Choisir cet objet pour une action - payment_intent.succeeded evt_paid"' in html
    assert [english for english in DJSTRIPE_ENGLISH if english in html] == []


@pytest.mark.parametrize("view", ["history", "delete"])
def test_a_received_webhooks_history_and_deletion_pages_name_its_event(platform_admin_client,
                                                                       triggers, view):
    paid, _forged, _failed = triggers
    url = reverse(f"admin:djstripe_webhookeventtrigger_{view}", args=[paid.pk])

    html = unescape(platform_admin_client.get(url, HTTP_ACCEPT_LANGUAGE="fr").content.decode())

    # (texts() makes a non-breaking space a space.)
    heading = {"history": "Historique des changements : payment_intent.succeeded evt_paid",
               "delete": "Voulez-vous vraiment supprimer l’objet webhook reçu « payment_intent.succeeded "
                         "evt_paid » ?"}[view]
    assert heading in " ".join(texts(html, r"<(?:h1|p)>(.*?)</(?:h1|p)>"))
    assert "\u203a payment_intent.succeeded evt_paid" in " ".join(texts(html, r'<div class="breadcrumbs">'
                                                                             r"(.*?)</div>"))
    assert [english for english in DJSTRIPE_ENGLISH if english in html] == []


def test_deleting_received_webhooks_names_them_by_their_event(platform_admin_client, triggers):
    paid, forged, failed = triggers
    chosen = {"action": "delete_selected", "_selected_action": [paid.pk, forged.pk]}

    question = platform_admin_client.post(LIST, chosen, HTTP_ACCEPT_LANGUAGE="fr")
    platform_admin_client.post(LIST, {**chosen, "post": "yes"}, HTTP_ACCEPT_LANGUAGE="fr")
    done = platform_admin_client.post(reverse("admin:djstripe_webhookeventtrigger_delete", args=[failed.pk]),
                                      {"post": "yes"}, HTTP_ACCEPT_LANGUAGE="fr", follow=True)

    html = unescape(question.content.decode())
    assert "payment_intent.succeeded evt_paid" in html and "charge.refunded evt_forged" in html
    assert [english for english in DJSTRIPE_ENGLISH if english in html] == []
    assert [" ".join(str(message).split()) for message in done.context["messages"]] == [
        "La suppression de 2 webhooks reçus a réussi.",
        "L’objet webhook reçu « charge.refund.updated evt_failed » a été supprimé avec succès."]
    assert not WebhookEventTrigger.objects.exists()
