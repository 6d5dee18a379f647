from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save, pre_save
from django.utils.translation import gettext_lazy as _


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = _("Events")

    def ready(self):
        from racephoto.storage import delete_files_on_delete, delete_replaced_files, remember_stored_files

        # A deleted event leaves no logo or watermark logo behind in the storage (its
        # photos' files go with the photos), and neither does a replaced or cleared one.
        event = self.get_model("Event")
        post_delete.connect(delete_files_on_delete, sender=event, dispatch_uid="events.event_files_deleted")
        pre_save.connect(remember_stored_files, sender=event, dispatch_uid="events.event_files_remembered")
        post_save.connect(delete_replaced_files, sender=event, dispatch_uid="events.event_files_replaced")
