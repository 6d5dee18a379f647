"""The account area: a person's page, their API token, and (for runners) their privacy choices."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from rest_framework.authtoken.models import Token

from accounts import privacy as privacy_services
from accounts import services
from accounts.forms import BibClaimForm, FaceSearchChoiceForm
from accounts.models import BibClaim, ErasureRecord
from events.models import Event


@login_required
@require_GET
def profile(request):
    user = request.user
    return render(request, "accounts/profile.html", {
        "staff_events": Event.objects.staffed_by(user).order_by("-date", "name")
        if user.is_event_staff else Event.objects.none(),
        "has_token": Token.objects.filter(user=user).exists(),
    })


@login_required
@never_cache  # the page that shows a new key must never sit in a cache
@require_http_methods(["GET", "POST"])
def api_token(request):
    """Create (or replace) and revoke the person's REST API token.

    The key is shown once, in the answer to the POST that made it, and never
    put in a message or a redirect: those travel through cookies and logs.
    """
    user = request.user
    if not user.is_event_staff:
        raise PermissionDenied(_("Only photographers, organisers and admins use the API."))
    new_key = None
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            if services.revoke_api_token(user):
                messages.success(request, _("Your API token was revoked: it no longer works."))
            return redirect("accounts:api_token")
        new_key = services.create_api_token(user).key
    token = Token.objects.filter(user=user).first()
    return render(request, "accounts/api_token.html", {"token": token, "new_key": new_key})


def admin_login(request, extra_context=None):
    """Stands in for the Django admin's login page: signing in happens on the site's form."""
    next_url = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        next_url = reverse("admin:index")
    if not request.user.is_authenticated:
        return redirect_to_login(next_url)
    if not request.user.is_staff:
        raise PermissionDenied(_("Your account has no access to the back office."))
    return redirect(next_url)


# --- Privacy: bib claims, face-search choices, erasure requests --------------------------


# The runner's own choice, said to them (the model's labels describe it to staff).
YOUR_FACE_SEARCH_CHOICE = {
    BibClaim.FaceSearch.UNDECIDED: gettext_lazy("You have not chosen yet."),
    BibClaim.FaceSearch.CONSENTED: gettext_lazy("You agree to be found by your face."),
    BibClaim.FaceSearch.OPTED_OUT: gettext_lazy("You do not want to be found by your face."),
}


def _privacy_page(request, form=None, status=200):
    claims = list(BibClaim.objects.filter(user=request.user).select_related("event"))
    for claim in claims:
        claim.your_choice = YOUR_FACE_SEARCH_CHOICE[claim.face_search]
    return render(request, "accounts/privacy.html", {
        "form": form or BibClaimForm(),
        "claims": claims,
        "erasures": ErasureRecord.objects.filter(user=request.user,
                                                 status=ErasureRecord.Status.REQUESTED)
        .select_related("event"),
    }, status=status)


@login_required
@require_GET
def privacy(request):
    return _privacy_page(request)


@login_required
@require_POST
def claim_bib(request):
    form = BibClaimForm(request.POST)
    if not form.is_valid():
        return _privacy_page(request, form, status=400)
    privacy_services.claim_bib(request.user, form.cleaned_data["event"], form.cleaned_data["bib"],
                               form.cleaned_data["face_search"])
    messages.success(request, _("Your choice is saved and applies to your photos at once."))
    if not form.checked_against_start_list:
        messages.warning(request, _("%(event)s has no start list, so we could not check that "
                                    "bib %(bib)s is yours: make sure the number is right.")
                         % {"event": form.cleaned_data["event"].name,
                            "bib": form.cleaned_data["bib"]})
    return redirect("accounts:privacy")


@login_required
@require_POST
def set_face_search(request, claim_id):
    # Someone else's claim is a 404, like a claim that does not exist.
    claim = get_object_or_404(BibClaim, pk=claim_id, user=request.user)
    form = FaceSearchChoiceForm(request.POST)
    if not form.is_valid():
        return _privacy_page(request, status=400)
    privacy_services.set_face_search(claim, form.cleaned_data["face_search"])
    messages.success(request, _("Your choice is saved and applies to your photos at once."))
    return redirect("accounts:privacy")


@login_required
@require_POST
def request_erasure(request):
    records = privacy_services.request_erasure(request.user)
    if records:
        messages.success(request, _("Your faces are out of search already. We will erase your "
                                    "face data after checking your request, within one month."))
    else:
        messages.error(request, _("Claim your bib first: we erase the face data of the bibs "
                                  "you claimed."))
    return redirect("accounts:privacy")
