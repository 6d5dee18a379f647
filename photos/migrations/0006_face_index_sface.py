"""PostgreSQL's own HNSW index for sface-2021dec-int8@1 face vectors
(photos.models.PGVECTOR_FACE_MODELS)."""

from django.db import migrations

SIGNATURE, DIMENSION = "sface-2021dec-int8@1", 128


def pgvector_index_name(prefix, signature):
    return f"{prefix}_" + "".join(c if c.isalnum() else "_" for c in signature.lower())[:24]


class Migration(migrations.Migration):

    dependencies = [
        ("photos", "0005_face_index_dlib_v2"),
    ]

    operations = [
        migrations.RunSQL(
            f'CREATE INDEX "{pgvector_index_name("face", SIGNATURE)}" ON "photos_face" USING hnsw '
            f"((embedding::vector({DIMENSION})) vector_cosine_ops) "
            "WITH (m = 16, ef_construction = 64) "
            f"WHERE model = '{SIGNATURE}'",
            reverse_sql=f'DROP INDEX "{pgvector_index_name("face", SIGNATURE)}"'),
    ]
