import hashlib
from pathlib import Path

import factory
from django.core.files.base import ContentFile

from events.tests.factories import EventFactory
from photos.models import Photo
from photos.tests.images import jpeg


class PhotoFactory(factory.django.DjangoModelFactory):
    """A Photo row; its original is only a name unless ``with_original=True``, which writes
    a real JPEG (use the ``private_storage`` fixture so it lands in the test's temp dir)."""

    class Meta:
        model = Photo

    class Params:
        seed = factory.Sequence(int)  # varies names, hash and pixels from photo to photo
        with_original = factory.Trait(
            original=factory.LazyAttribute(
                lambda photo: ContentFile(jpeg(seed=photo.seed), name=f"{photo.seed}.jpg")),
            content_hash=factory.LazyAttribute(
                lambda photo: hashlib.sha256(jpeg(seed=photo.seed)).hexdigest()),
        )

    event = factory.SubFactory(EventFactory)
    original = factory.LazyAttribute(lambda photo: f"originals/test/{photo.seed}.jpg")
    original_name = factory.LazyAttribute(lambda photo: f"IMG_{photo.seed:04d}.JPG")
    content_hash = factory.LazyAttribute(
        lambda photo: hashlib.sha256(f"photo {photo.seed}".encode()).hexdigest())
    image_format = "JPEG"
    width = 48
    height = 32
    state = Photo.State.UPLOADED


def make_photo(event, data: bytes | None = None, name="IMG_0001.JPG") -> Photo:
    """A Photo with a real original (``data``, else a new JPEG), nothing processed yet."""
    data = jpeg(seed=Photo.objects.count()) if data is None else data
    return Photo.objects.create(event=event, content_hash=hashlib.sha256(data).hexdigest(),
                                original=ContentFile(data, name=name), original_name=name)


def derivative_files(settings) -> list[str]:
    """Every derivative written: public ones in MEDIA_ROOT, the web version with the originals."""
    found = []
    for root in (Path(settings.MEDIA_ROOT), Path(settings.PRIVATE_MEDIA_ROOT)):
        found += [str(path.relative_to(root)) for path in root.rglob("*")
                  if path.is_file() and path.relative_to(root).parts[0] != "originals"]
    return sorted(found)
