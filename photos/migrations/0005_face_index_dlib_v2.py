"""PostgreSQL's own HNSW index for dlib-resnet-v1@2 face vectors
(photos.models.PGVECTOR_FACE_MODELS)."""

from django.db import migrations

SIGNATURE, DIMENSION = "dlib-resnet-v1@2", 128


def pgvector_index_name(prefix, signature):
    return f"{prefix}_" + "".join(c if c.isalnum() else "_" for c in signature.lower())[:24]


class Migration(migrations.Migration):

    dependencies = [
        ("photos", "0004_faces_bibtags_clip"),
    ]

    operations = [
        migrations.RunSQL(
            f'CREATE INDEX "{pgvector_index_name("face", SIGNATURE)}" ON "photos_face" USING hnsw '
            f"((embedding::vector({DIMENSION})) vector_cosine_ops) "
            "WITH (m = 16, ef_construction = 64) "
            f"WHERE model = '{SIGNATURE}'",
            reverse_sql=f'DROP INDEX "{pgvector_index_name("face", SIGNATURE)}"'),
    ]
