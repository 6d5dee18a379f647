"""Public part of the REST API: the published events, as on the public site."""

from rest_framework import permissions, serializers, viewsets

from events.models import Event


class EventSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Event
        fields = ("slug", "name", "date", "location", "description", "url")

    def get_url(self, event) -> str:
        request = self.context.get("request")
        path = event.get_absolute_url()
        return request.build_absolute_uri(path) if request else path


class EventViewSet(viewsets.ReadOnlyModelViewSet):
    """Published events for everyone; an event's own staff also see it before it is published."""

    serializer_class = EventSerializer
    lookup_field = "slug"
    permission_classes = [permissions.AllowAny]

    def get_queryset(self):
        published = Event.objects.filter(is_published=True)
        if self.request.user.is_authenticated:
            # An unpublished event stays a 404 for everyone else: its slug is not public yet.
            published = published | Event.objects.staffed_by(self.request.user)
        return published.order_by("-date", "name")
