"""How every form on the site is drawn: the site's own field markup (templates/forms/)."""

from django.forms import BoundField
from django.forms.renderers import TemplatesSetting


class SiteBoundField(BoundField):
    def build_widget_attrs(self, attrs, widget=None):
        attrs = super().build_widget_attrs(attrs, widget)
        widget = widget or self.field.widget
        # Every field shows its label above it: a placeholder repeating it in other words
        # (allauth's "Adresse e-mail" under "Courriel") only confuses, and is cut off on phones.
        if self.label and widget.attrs.get("placeholder"):
            attrs["placeholder"] = False
        return attrs


class SiteFormRenderer(TemplatesSetting):
    """Django's renderer with the project's templates, so forms use templates/forms/."""

    form_template_name = "forms/form.html"
    field_template_name = "forms/field.html"
    bound_field_class = SiteBoundField
