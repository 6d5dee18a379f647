import factory
from allauth.account.models import EmailAddress

from accounts.models import User

#: every factory-made person's password
PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.org")
    password = factory.django.Password(PASSWORD)
    role = User.Role.RUNNER

    @factory.post_generation
    def verified_email(user, create, extracted, **kwargs):
        # allauth signs in only verified addresses: people in tests have verified
        # theirs unless a test says otherwise with verified_email=False.
        if create and extracted is not False and user.email:
            EmailAddress.objects.get_or_create(
                user=user, email=user.email, defaults={"verified": True, "primary": True})

