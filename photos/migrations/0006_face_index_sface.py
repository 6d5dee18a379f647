"""PostgreSQL's own HNSW index for sface-2021dec-int8@1 face vectors
(photos.models.PGVECTOR_FACE_MODELS)."""

from django.db import migrations

from photos.migrations._hnsw import hnsw_index


class Migration(migrations.Migration):

    dependencies = [
        ("photos", "0005_face_index_dlib_v2"),
    ]

    operations = [
        hnsw_index("photos_face", "face", "embedding", "model", "sface-2021dec-int8@1", 128),
    ]
