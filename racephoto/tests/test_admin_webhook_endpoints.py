"""dj-stripe's webhook endpoint pages in the back office's words (racephoto/admin.py): the
list, an endpoint's page, the "add" form and the deletion page read in French (and good
English), and still do what dj-stripe's do: an endpoint added, changed or deleted here is so
at Stripe too, and "sync from Stripe" reads endpoints back, for platform admins only."""

import json
import re
from html import unescape

import pytest
import stripe
from django.urls import reverse
from djstripe.models import WebhookEndpoint

from accounts.models import User
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LIST = reverse("admin:djstripe_webhookendpoint_changelist")
ADD = reverse("admin:djstripe_webhookendpoint_add")


@pytest.fixture
def platform_admin(client):
    client.force_login(UserFactory(username="ada-admin", role=User.Role.ADMIN))
    return client


@pytest.fixture
def endpoint():
    endpoint = WebhookEndpoint.objects.create(
        id="we_admin", livemode=False, enabled_events=["*"], status="enabled", secret="whsec_admin",
        url="https://photos.example.org/stripe/webhook/placeholder/", api_version="2024-04-10")
    path = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": endpoint.djstripe_uuid})
    endpoint.url = f"https://photos.example.org{path}"
    endpoint.metadata = {"djstripe_uuid": str(endpoint.djstripe_uuid)}
    endpoint.save()
    return endpoint


def page_of(endpoint) -> str:
    return reverse("admin:djstripe_webhookendpoint_change", args=[endpoint.pk])


def get(client, url, language="fr") -> str:
    response = client.get(url, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    return unescape(response.content.decode())


def texts(html: str, pattern: str) -> list[str]:
    return [" ".join(re.sub(r"<[^>]+>", " ", found).split()) for found in re.findall(pattern, html, re.S)]


def labels(html: str) -> list[str]:
    """The form's labels (read-only ones too), without their suffix (" :" in French)."""
    return [label.rstrip(" :\u00a0") for label in texts(html, r"<label[^>]*>(.*?)</label>")
            if label]


def fieldset_titles(html: str) -> list[str]:
    return texts(html, r'<h2 [^>]*class="fieldset-heading"[^>]*>(.*?)</h2>')


def notice(html: str) -> str:
    return " ".join(texts(html, r'<li class="warning">(.*?)</li>'))


# What dj-stripe's pages say in English, in labels, help texts, notices and actions.
DJSTRIPE_ENGLISH = (
    "Base url", "Enabled Events", "Djstripe", "Livemode", "Live mode", "Api version",
    "Endpoint configuration", "Advanced", "Listen to events on Connected accounts",
    "Any Changes made here", "created here will", "Proceed with", "View on Stripe Dashboard",
    "Null here indicates", "MUST be publicly", "The URL of the webhook endpoint",
    "Whether to create this endpoint", "Sets the base URL", "Clients can make requests",
    "The list of events", "A set of key/value pairs", "Controls the", "Verify Signature",
    "NOT RECOMMENDED", "Re-Sync", "Sync All Instances", "When disabled", "The datetime this",
    "A UUID specific",
)


def assert_no_djstripe_english(html: str):
    found = [english for english in DJSTRIPE_ENGLISH if english in html]
    assert found == []


def test_the_endpoint_list_reads_in_french(platform_admin, endpoint):
    html = get(platform_admin, LIST)

    table = re.search(r'<table id="result_list">.*?</thead>', html, re.S).group(0)
    assert [title for title in texts(table, r'<th scope="col"[^>]*>(.*?)</th>') if title] == [
        "Point de réception des webhooks", "Mode", "Compte Stripe", "Créé le", "Version de l’API"]
    assert texts(html, r'<option value="_[a-z_]+">(.*?)</option>') == [
        "Synchroniser depuis Stripe les points de réception sélectionnés",
        "Synchroniser depuis Stripe tous les points de réception"]
    assert ">test</td>" in html
    assert_no_djstripe_english(html)


def test_an_endpoints_page_reads_in_french(platform_admin, endpoint):
    html = get(platform_admin, page_of(endpoint))

    assert labels(html) == ["Identifiant Stripe", "Mode production", "Compte Stripe", "URL",
                            "Activé", "Adresse du site", "Événements envoyés", "Métadonnées",
                            "Version de l’API", "UUID du point de réception",
                            "Tolérance de signature (secondes)", "Vérification"]
    assert fieldset_titles(html) == ["Configuration du point de réception", "Options avancées"]
    assert notice(html) == "Les modifications enregistrées ici sont aussi faites chez Stripe."
    assert "Voir dans le tableau de bord Stripe" in html
    assert "L’adresse à laquelle Stripe envoie les webhooks." in html
    assert re.search(r'<option value="verify_signature" selected>Vérifier sa signature</option>', html)
    assert_no_djstripe_english(html)


def test_the_add_endpoint_form_reads_in_french(platform_admin):
    html = get(platform_admin, ADD)

    assert labels(html) == ["Compte Stripe", "Mode production", "Adresse du site",
                            "Événements des comptes connectés", "Métadonnées", "Version de l’API",
                            "Événements envoyés", "Tolérance de signature (secondes)",
                            "Vérification"]
    assert fieldset_titles(html) == ["Configuration du point de réception", "Options avancées"]
    assert notice(html) == ("Le point de réception ajouté ici est aussi créé chez Stripe, qui lui "
                            "enverra alors ses webhooks.")
    assert "Laissez vide pour utiliser la clé Stripe du site (STRIPE_SECRET_KEY)." in html
    assert_no_djstripe_english(html)


def test_the_endpoint_pages_read_in_english_too(platform_admin, endpoint):
    add = get(platform_admin, ADD, "en")
    change = get(platform_admin, page_of(endpoint), "en")

    assert labels(add) == ["Stripe account", "Live mode", "Site address",
                           "Events of connected accounts", "Metadata", "API version", "Events sent",
                           "Signature tolerance (seconds)", "Verification"]
    assert labels(change)[:6] == ["Stripe ID", "Live mode", "Stripe account", "URL", "Enabled",
                                  "Site address"]
    assert fieldset_titles(change) == ["Endpoint configuration", "Advanced options"]
    assert notice(change) == "Changes saved here are also made at Stripe."
    for html in (add, change):
        assert "Djstripe" not in html and "Base url" not in html and "Enabled Events" not in html


def test_the_deletion_page_says_stripe_deletes_it_too(platform_admin, endpoint):
    html = get(platform_admin, reverse("admin:djstripe_webhookendpoint_delete", args=[endpoint.pk]))

    assert notice(html) == ("Ce point de réception est aussi supprimé chez Stripe, qui cesse de "
                            "lui envoyer des webhooks.")
    assert "deleted from Stripe" not in html and "Loading" not in html


# --- What dj-stripe's pages do, kept ----------------------------------------------------

def form_data(**changes) -> dict:
    return {"base_url": "https://photos.example.org", "enabled_events": ["*"], "metadata": "{}",
            "api_version": "", "djstripe_tolerance": "300",
            "djstripe_validation_method": "verify_signature", **changes}


@pytest.fixture
def stripe_api(monkeypatch):
    """dj-stripe's calls to Stripe, answered as Stripe would (localstripe has no webhook
    endpoints): what was asked, by call."""
    asked = {"create": [], "update": [], "delete": []}

    def create(cls, **kwargs):
        asked["create"].append(kwargs)
        return {"id": "we_created", "object": "webhook_endpoint", "livemode": False,
                "created": 1767225600, "url": kwargs["url"], "api_version": kwargs["api_version"],
                "enabled_events": kwargs["enabled_events"], "metadata": kwargs["metadata"],
                "status": "enabled", "secret": "whsec_from_stripe", "application": None}

    def update(self, **kwargs):
        asked["update"].append(kwargs)
        # Stripe merges the metadata it is sent into what it has; a key sent empty is unset.
        metadata = {key: value for key, value in {**(self.metadata or {}), **kwargs["metadata"]}.items()
                    if value != ""}
        return {"id": self.id, "object": "webhook_endpoint", "livemode": self.livemode,
                "url": kwargs["url"], "enabled_events": kwargs["enabled_events"],
                "metadata": metadata, "api_version": self.api_version,
                "status": "disabled" if kwargs["disabled"] else "enabled", "application": None}

    monkeypatch.setattr(WebhookEndpoint, "_api_create", classmethod(create))
    monkeypatch.setattr(WebhookEndpoint, "_api_update", update)
    monkeypatch.setattr(WebhookEndpoint, "_api_delete",
                        lambda self, **kwargs: asked["delete"].append(self.id))
    # The Stripe account that owns it: asked of Stripe too, none here.
    monkeypatch.setattr(WebhookEndpoint, "_find_owner_account",
                        classmethod(lambda cls, data, api_key=None, livemode=None: None))
    return asked


def test_adding_an_endpoint_creates_it_at_stripe_with_its_signing_secret(platform_admin, stripe_api):
    response = platform_admin.post(ADD, form_data(), HTTP_ACCEPT_LANGUAGE="fr")

    assert response.status_code == 302, response.context["adminform"].form.errors
    [asked] = stripe_api["create"]
    created = WebhookEndpoint.objects.get(id="we_created")
    path = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": created.djstripe_uuid})
    assert asked["url"] == f"https://photos.example.org{path}"
    assert asked["enabled_events"] == ["*"]
    assert created.secret == "whsec_from_stripe" and created.url == asked["url"]


def test_an_address_stripe_cannot_reach_is_refused_in_french_before_asking_stripe(
        platform_admin, stripe_api):
    response = platform_admin.post(ADD, form_data(base_url="http://127.0.0.1:8000"),
                                   HTTP_ACCEPT_LANGUAGE="fr")

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["base_url"] == [
        "Stripe ne peut pas joindre cette adresse depuis Internet\u00a0: indiquez l’adresse "
        "publique du site."]
    assert stripe_api["create"] == []


def test_a_form_refused_for_another_field_creates_nothing_at_stripe(platform_admin, stripe_api):
    # dj-stripe itself would have created the endpoint at Stripe, then refused the form.
    response = platform_admin.post(ADD, form_data(djstripe_tolerance="-1"), HTTP_ACCEPT_LANGUAGE="fr")

    assert response.status_code == 200
    assert "djstripe_tolerance" in response.context["adminform"].form.errors
    assert stripe_api["create"] == [] and not WebhookEndpoint.objects.exists()


def test_saving_an_endpoint_updates_it_at_stripe(platform_admin, endpoint, stripe_api):
    response = platform_admin.post(page_of(endpoint), form_data(
        enabled="on", enabled_events=["payment_intent.succeeded"]))

    assert response.status_code == 302, response.context["adminform"].form.errors
    [asked] = stripe_api["update"]
    assert asked["url"] == endpoint.url and asked["disabled"] is False
    endpoint.refresh_from_db()
    assert endpoint.enabled_events == ["payment_intent.succeeded"]
    assert endpoint.secret == "whsec_admin"  # Stripe returns it only once


def test_a_disabled_endpoints_page_shows_it_disabled(platform_admin, endpoint):
    endpoint.status = "disabled"
    endpoint.save()

    form = platform_admin.get(page_of(endpoint)).context["adminform"].form

    # dj-stripe ticks "enabled" whatever the status: saving the page would enable it again.
    assert form["enabled"].value() is False


def test_deleting_an_endpoint_deletes_it_at_stripe(platform_admin, endpoint, stripe_api):
    delete = reverse("admin:djstripe_webhookendpoint_delete", args=[endpoint.pk])

    assert platform_admin.post(delete, {"post": "yes"}).status_code == 302

    assert stripe_api["delete"] == ["we_admin"]
    assert not WebhookEndpoint.objects.exists()


# --- Metadata ---------------------------------------------------------------------------

def metadata_box(html: str) -> str:
    return re.search(r'<textarea name="metadata"[^>]*>(.*?)</textarea>', html, re.S).group(1).strip()


def test_the_metadata_box_starts_empty(platform_admin):
    # Django's JSON box shows an endpoint without metadata as "null".
    assert metadata_box(get(platform_admin, ADD)) == ""


def test_an_endpoints_metadata_box_leaves_out_dj_stripes_own_key(platform_admin, endpoint):
    assert metadata_box(get(platform_admin, page_of(endpoint))) == ""

    endpoint.metadata = {**endpoint.metadata, "site": "photos"}
    endpoint.save()

    assert metadata_box(get(platform_admin, page_of(endpoint))) == '{"site": "photos"}'


def test_metadata_typed_on_the_add_form_reaches_stripe_and_the_endpoint(platform_admin, stripe_api):
    typed = '{"site": "photos", "race": "Paris 10 km"}'

    response = platform_admin.post(ADD, form_data(metadata=typed))

    assert response.status_code == 302, response.context["adminform"].form.errors
    [asked] = stripe_api["create"]
    created = WebhookEndpoint.objects.get(id="we_created")
    expected = {"site": "photos", "race": "Paris 10 km", "djstripe_uuid": str(created.djstripe_uuid)}
    assert asked["metadata"] == expected
    assert created.metadata == expected


def test_metadata_typed_on_an_endpoints_page_reaches_stripe_and_the_endpoint(platform_admin, endpoint,
                                                                            stripe_api):
    uuid = str(endpoint.djstripe_uuid)
    endpoint.metadata = {"djstripe_uuid": uuid, "old": "key"}
    endpoint.save()

    response = platform_admin.post(page_of(endpoint), form_data(enabled="on",
                                                                metadata='{"site": "photos"}'))

    assert response.status_code == 302, response.context["adminform"].form.errors
    [asked] = stripe_api["update"]
    # Stripe merges what it is sent: the key taken out of the box is unset by sending it empty.
    assert asked["metadata"] == {"old": "", "site": "photos", "djstripe_uuid": uuid}
    endpoint.refresh_from_db()
    assert endpoint.metadata == {"djstripe_uuid": uuid, "site": "photos"}
    assert str(endpoint.djstripe_uuid) == uuid


LONG_KEY = "k" * 41  # Stripe takes 40 characters
BAD_METADATA = [
    ('{"site": photos}', "Ce n’est pas du JSON valide\u00a0: écrivez un objet de textes, par exemple "
                         '{"site": "photos"}.'),
    ('["photos"]', 'Écrivez les métadonnées sous la forme d’un objet JSON de textes, par exemple '
                   '{"site": "photos"}.'),
    ('{"places": 3}', "La valeur de «\u00a0places\u00a0» doit être un texte, entre guillemets\u00a0: "
                      "Stripe ne conserve rien d’autre."),
    ('{"djstripe_uuid": "0b3c9a4e"}', "«\u00a0djstripe_uuid\u00a0» est la clé propre à dj-stripe "
                                      "(l’adresse qu’appelle Stripe en dépend)\u00a0: ne l’indiquez pas."),
    ('{"race[1]": "Paris"}', "Stripe refuse les crochets dans les clés\u00a0: «\u00a0race[1]\u00a0»."),
    (json.dumps({LONG_KEY: "v"}), f"La clé «\u00a0{LONG_KEY}\u00a0» dépasse les 40 caractères que "
                                  "permet Stripe."),
    (json.dumps({"site": "v" * 501}), "La valeur de «\u00a0site\u00a0» dépasse les 500 caractères que "
                                      "permet Stripe."),
    # dj-stripe adds its own key: 49 are left of Stripe's 50.
    (json.dumps({f"key{number}": "v" for number in range(50)}), "Stripe conserve au plus 49 clés ici."),
]


@pytest.mark.parametrize(("typed", "error"), BAD_METADATA)
def test_bad_metadata_is_refused_in_french_before_asking_stripe(platform_admin, stripe_api, typed,
                                                                error):
    response = platform_admin.post(ADD, form_data(metadata=typed), HTTP_ACCEPT_LANGUAGE="fr")

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["metadata"] == [error]
    assert stripe_api["create"] == [] and not WebhookEndpoint.objects.exists()
    assert metadata_box(unescape(response.content.decode())) == typed  # kept, to be corrected


def test_bad_metadata_on_an_endpoints_page_changes_nothing_at_stripe(platform_admin, endpoint,
                                                                    stripe_api):
    response = platform_admin.post(page_of(endpoint), form_data(enabled="on", metadata="{site"),
                                   HTTP_ACCEPT_LANGUAGE="en")

    assert response.context["adminform"].form.errors["metadata"] == [
        'This is not valid JSON: write an object of texts, e.g. {"site": "photos"}.']
    assert stripe_api["update"] == []


# --- Sync from Stripe ---------------------------------------------------------------------

def sync_url(action: str) -> str:
    return reverse("admin:djstripe_custom_action",
                   kwargs={"action_name": action, "model_name": "webhookendpoint"})


def selection(action, endpoint) -> list:
    # What dj-stripe's confirmation form posts: the endpoints, or the action's name for all.
    return [endpoint.pk] if action == "_resync_instances" else [action]


def test_syncing_asks_for_confirmation_in_french(platform_admin, endpoint):
    response = platform_admin.post(LIST, {"action": "_resync_instances",
                                          "_selected_action": [endpoint.pk]},
                                   HTTP_ACCEPT_LANGUAGE="fr")

    html = unescape(response.content.decode())
    assert response.status_code == 200
    assert ("Relire ces points de réception depuis Stripe et les mettre à jour ici d’après "
            "Stripe\u00a0?") in html
    assert f'action="{sync_url("_resync_instances")}"' in html
    assert "Oui, je suis sûr" in html
    assert "Are you" not in html and "Loading" not in html


def test_a_confirmed_sync_reads_the_endpoint_from_stripe(platform_admin, endpoint, monkeypatch):
    synced = []
    monkeypatch.setattr(WebhookEndpoint, "api_retrieve", lambda self, **kwargs: {"id": self.id})
    monkeypatch.setattr(WebhookEndpoint, "sync_from_stripe_data",
                        classmethod(lambda cls, data, api_key=None: synced.append(data["id"])))

    response = platform_admin.post(sync_url("_resync_instances"),
                                   {"_selected_action": [endpoint.pk]}, HTTP_ACCEPT_LANGUAGE="fr",
                                   follow=True)

    assert synced == ["we_admin"]
    assert [str(message) for message in response.context["messages"]] == [
        f"Synchronisé depuis Stripe\u00a0: {endpoint.url}"]


def test_syncing_an_endpoint_stripe_no_longer_has_says_so(platform_admin, endpoint, monkeypatch):
    def gone(self, **kwargs):
        raise stripe.InvalidRequestError(f"No such webhook endpoint: '{self.id}'", "id",
                                         code="resource_missing")

    monkeypatch.setattr(WebhookEndpoint, "api_retrieve", gone)

    response = platform_admin.post(sync_url("_resync_instances"),
                                   {"_selected_action": [endpoint.pk]}, HTTP_ACCEPT_LANGUAGE="fr",
                                   follow=True)

    assert response.status_code == 200  # was a server error: dj-stripe let it through
    assert [str(message) for message in response.context["messages"]] == [
        f"Stripe n’a plus {endpoint.url}\u00a0: supprimez-le ici, ou ajoutez-le à nouveau."]
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_syncing_while_stripe_is_unreachable_changes_nothing_and_says_so(platform_admin, endpoint,
                                                                         monkeypatch):
    def unreachable(self, **kwargs):
        raise stripe.APIConnectionError("Network error")

    monkeypatch.setattr(WebhookEndpoint, "api_retrieve", unreachable)

    response = platform_admin.post(sync_url("_resync_instances"),
                                   {"_selected_action": [endpoint.pk]}, HTTP_ACCEPT_LANGUAGE="fr",
                                   follow=True)

    assert response.status_code == 200
    assert [str(message) for message in response.context["messages"]] == [
        f"Stripe n’a pas pu être joint pour {endpoint.url}\u00a0: rien n’a été modifié, "
        "réessayez plus tard."]


@pytest.mark.parametrize("action", ["_resync_instances", "_sync_all_instances"])
def test_only_platform_admins_may_sync(client, named_people, endpoint, action, monkeypatch):
    from events.tests.factories import EventFactory

    synced = []
    monkeypatch.setattr(WebhookEndpoint, "api_retrieve", lambda self, **kwargs: synced.append(self.id))
    for module in ("racephoto.admin", "djstripe.admin.views"):
        monkeypatch.setattr(f"{module}.call_command", lambda *args: synced.append(args), raising=False)
    client.force_login(named_people(EventFactory())["owner"])

    # dj-stripe's view ran it for anyone who may open the admin.
    response = client.post(sync_url(action), {"_selected_action": selection(action, endpoint)})

    assert response.status_code == 403
    assert synced == []


def test_a_confirmed_sync_of_every_endpoint_runs_dj_stripes_command(platform_admin, endpoint,
                                                                    monkeypatch):
    commands = []
    monkeypatch.setattr("racephoto.admin.call_command", lambda *args: commands.append(args))

    response = platform_admin.post(sync_url("_sync_all_instances"),
                                   {"_selected_action": selection("_sync_all_instances", endpoint)},
                                   HTTP_ACCEPT_LANGUAGE="fr", follow=True)

    assert commands == [("djstripe_sync_models", "WebhookEndpoint")]
    assert [str(message) for message in response.context["messages"]] == [
        "Les points de réception des webhooks ont été synchronisés depuis Stripe."]
