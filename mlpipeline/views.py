"""The model-status page of the admin: what each model is, where, and what it makes possible."""

from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from accounts.models import is_platform_admin
from mlpipeline.availability import all_models
from mlpipeline.worker import worker_models

FEATURES = {
    "bib_ocr": _("Bib numbers read from photos"),
    "face_detection": _("Faces found in photos"),
    "face_embedding": _("Selfie search"),
    "image_text_embedding": _("Outfit and text search"),
}


@staff_member_required
def model_status(request):
    # Paths, hosts and errors of the machines: platform admins only, not event staff.
    if not is_platform_admin(request.user):
        raise PermissionDenied
    models = all_models()
    try:
        workers, workers_error = worker_models(), ""
    except Exception as exc:  # the broker is down: say so, the weights table still helps
        workers, workers_error = [], str(exc)
    features = [{"label": FEATURES[model.job], "on": model.available, "detail": model.detail}
                for model in models]
    return render(request, "mlpipeline/model_status.html", {
        "title": _("Model status"), "models": models, "workers": workers,
        "workers_error": workers_error, "features": features,
    })
