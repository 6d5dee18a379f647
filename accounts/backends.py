"""The sign-in backends, answering permission questions by role alone.

What someone may open follows from their role (accounts/roles.py; ``User.has_perm`` grants
platform admins everything). Django's ``ModelBackend`` would also grant whatever ``Group``
and per-user permission rows say. RacePhoto never makes any (the admin offers neither:
accounts/admin.py), but rows made by hand, by a fixture or by an older version would open to
an organiser or a photographer the pages that Django's own checks keep to platform admins
(people and their roles, bib claims, erasures, API tokens, Stripe's webhooks). Both sign-in
backends are ModelBackends, so both leave those rows out; a superuser keeps Django's answer:
every permission.
"""

from allauth.account.auth_backends import AuthenticationBackend
from django.contrib.auth.backends import ModelBackend


class WithoutPermissionRows:
    """A ModelBackend for which no Group or user_permissions row grants anything."""

    def get_user_permissions(self, user_obj, obj=None):
        if not user_obj.is_superuser:
            return set()
        return super().get_user_permissions(user_obj, obj)

    def get_group_permissions(self, user_obj, obj=None):
        if not user_obj.is_superuser:
            return set()
        return super().get_group_permissions(user_obj, obj)

    def with_perm(self, perm, is_active=True, include_superusers=True, obj=None):
        # ModelBackend's answer checks ``perm`` and lists the rows' holders and the superusers:
        # only the superusers hold it here.
        holders = super().with_perm(perm, is_active=is_active, include_superusers=include_superusers,
                                    obj=obj)
        return holders.filter(is_superuser=True) if include_superusers else holders.none()


class UsernameBackend(WithoutPermissionRows, ModelBackend):
    """Usernames: the admin and the staff created on the command line."""


class EmailBackend(WithoutPermissionRows, AuthenticationBackend):
    """allauth's: e-mail addresses, for everyone signing in through the site."""
