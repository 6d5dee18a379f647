from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MlpipelineConfig(AppConfig):
    name = "mlpipeline"
    verbose_name = _("Machine learning")
