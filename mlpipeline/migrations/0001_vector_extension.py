from django.db import migrations
from pgvector.django import VectorExtension


class Migration(migrations.Migration):
    """pgvector holds every embedding (faces, CLIP); enable it before any vector column."""

    initial = True
    dependencies = []
    operations = [VectorExtension()]
