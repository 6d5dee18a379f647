"""The model-status page of the admin: what each model is, where, and what it makes possible."""

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from accounts.models import is_platform_admin
from mlpipeline import availability
from mlpipeline.inference import registry
from mlpipeline.worker import worker_models


@staff_member_required
def model_status(request):
    # Paths, hosts and errors of the machines: platform admins only, not event staff.
    if not is_platform_admin(request.user):
        raise PermissionDenied
    active = registry.active_models()
    models = [model.availability() for model in active]
    try:
        workers, workers_error = worker_models(), ""
    except Exception as exc:  # the broker is down: say so, the weights table still helps
        workers, workers_error = [], str(exc)
    features = [{"label": model_class.feature, "on": model.available, "detail": model.detail}
                for model_class, model in zip(active, models)]
    # Outfit search always works: say which of its two ways does.
    features.append({"label": _("Outfit search in use"), "on": True,
                     "mode": availability.outfit_search(),
                     "detail": availability.outfit_search_detail()})
    return render(request, "mlpipeline/model_status.html", {
        # The admin's own context (site header, user tools, sidebar) around this page.
        **admin.site.each_context(request),
        "title": _("Model status"), "models": models, "workers": workers,
        "workers_error": workers_error, "features": features,
    })
