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
