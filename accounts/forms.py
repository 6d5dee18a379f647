from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import BibClaim
from events.models import Event


class BibClaimForm(forms.Form):
    event = forms.ModelChoiceField(label=_("Event"), queryset=Event.objects.none())
    bib = forms.CharField(label=_("Your bib number"), max_length=12)
    face_search = forms.ChoiceField(
        label=_("Face search"), widget=forms.RadioSelect,
        choices=[(BibClaim.FaceSearch.CONSENTED, _("I agree to be found by my face")),
                 (BibClaim.FaceSearch.OPTED_OUT, _("I do not want to be found by my face"))],
        initial=BibClaim.FaceSearch.OPTED_OUT,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["event"].queryset = Event.objects.filter(is_published=True).order_by(
            "-date", "name")

    def clean_bib(self):
        bib = self.cleaned_data["bib"].strip()
        if not bib.isalnum():
            raise forms.ValidationError(_("A bib is made of digits (and sometimes letters)."))
        return bib

    def clean(self):
        cleaned = super().clean()
        event, bib = cleaned.get("event"), cleaned.get("bib")
        # Whether the bib could be checked: the view tells the runner when it could not.
        self.checked_against_start_list = False
        if event is None or not bib or not event.start_list.exists():
            return cleaned
        entry = event.start_list.filter(bib__iexact=bib).first()
        if entry is None:
            self.add_error("bib", _("Bib %(bib)s is not on the start list of %(event)s: check "
                                    "the number printed on your bib.")
                           % {"bib": bib, "event": event.name})
            return cleaned
        cleaned["bib"] = entry.bib  # as the organiser wrote it, so tags and claims agree
        self.checked_against_start_list = True
        return cleaned


class FaceSearchChoiceForm(forms.Form):
    face_search = forms.ChoiceField(choices=[
        (BibClaim.FaceSearch.CONSENTED, BibClaim.FaceSearch.CONSENTED.label),
        (BibClaim.FaceSearch.OPTED_OUT, BibClaim.FaceSearch.OPTED_OUT.label),
    ])
