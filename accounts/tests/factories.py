import factory
from allauth.account.models import EmailAddress

from accounts.models import User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.org")
    password = factory.django.Password("correct horse battery staple")
    role = User.Role.RUNNER

    @factory.post_generation
    def verified_email(user, create, extracted, **kwargs):
        # allauth signs in only verified addresses: people in tests have verified
        # theirs unless a test says otherwise with verified_email=False.
        if create and extracted is not False and user.email:
            EmailAddress.objects.get_or_create(
                user=user, email=user.email, defaults={"verified": True, "primary": True})


def named_people(event) -> dict:
    """The named users of the permission tests, by what they are to ``event``.

    owner: organiser of the event; photographer: assigned to it; staff: the
    photographer and organiser of another event (signed in, staff, but not
    here); outsider: a runner; admin: a platform admin without the superuser flag.
    """
    other = event.__class__.objects.create(name=f"Autre {event.slug}", slug=f"autre-{event.slug}",
                                           date=event.date, is_published=True)
    people = {
        "anonymous": None,
        "outsider": UserFactory(username="oscar-outsider"),
        "staff": UserFactory(username="sam-staff", role=User.Role.ORGANISER),
        "staff_photographer": UserFactory(username="sacha-staff", role=User.Role.PHOTOGRAPHER),
        "photographer": UserFactory(username="paula-photographer", role=User.Role.PHOTOGRAPHER),
        "owner": UserFactory(username="olivier-owner", role=User.Role.ORGANISER),
        "admin": UserFactory(username="ada-admin", role=User.Role.ADMIN),
    }
    other.organisers.add(people["staff"])
    other.photographers.add(people["staff_photographer"])
    event.organisers.add(people["owner"])
    event.photographers.add(people["photographer"])
    return people
