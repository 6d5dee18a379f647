from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MlpipelineConfig(AppConfig):
    name = "mlpipeline"
    verbose_name = _("Machine learning")

    def ready(self):
        from django.conf import settings

        from mlpipeline import availability, signals, steps, worker  # noqa: F401 (receivers)
        from mlpipeline.inference import registry
        from photos.models import Photo
        from photos.pipeline import register_step

        registry.check_face_embedder_setting()
        if not settings.ML_PIPELINE:
            return

        def weights_present(check):
            return lambda: check().available

        register_step("faces", Photo.State.FACES, steps.detect_faces,
                      available=lambda: (availability.face_detector().available
                                         and availability.face_embedder().available))
        register_step("ocr", Photo.State.OCR, steps.read_bibs,
                      available=weights_present(availability.bib_ocr))
        # No weights: always available, so photos processed before this step get it
        # from process_event (photos_needing_work) like any step added later.
        register_step("outfit", Photo.State.OUTFIT, steps.read_outfits)
        register_step("clip", Photo.State.CLIP, steps.embed_image,
                      available=weights_present(availability.clip))
