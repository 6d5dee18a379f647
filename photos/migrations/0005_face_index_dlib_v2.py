"""PostgreSQL's own HNSW index for dlib-resnet-v1@2 face vectors
(photos.models.PGVECTOR_FACE_MODELS)."""

from django.db import migrations

from photos.migrations._hnsw import hnsw_index


class Migration(migrations.Migration):

    dependencies = [
        ("photos", "0004_faces_bibtags_clip"),
    ]

    operations = [
        hnsw_index("photos_face", "face", "embedding", "model", "dlib-resnet-v1@2", 128),
    ]
