from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CommerceConfig(AppConfig):
    name = "commerce"
    verbose_name = _("Commerce")

    def ready(self):
        from allauth.account.signals import user_logged_in

        from accounts.privacy import runner_erased
        from commerce import checks  # noqa: F401  (registers the Stripe set-up checks)
        from commerce.erasure import anonymise_orders
        from commerce.payments import point_sdk_at_provider
        from commerce.webhooks import quiet_deprecation_warning

        point_sdk_at_provider()
        user_logged_in.connect(_merge_carts, dispatch_uid="commerce-merge-carts")
        runner_erased.connect(anonymise_orders, dispatch_uid="commerce-anonymise-orders")
        quiet_deprecation_warning()


def _merge_carts(sender, request, user, **kwargs):
    from commerce.services import merge_carts_at_sign_in

    merge_carts_at_sign_in(request, user)
