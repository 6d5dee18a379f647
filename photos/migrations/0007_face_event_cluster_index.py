"""An index on (event, cluster): a bib search follows the runner's face clusters."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("photos", "0006_face_index_sface"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="face",
            index=models.Index(fields=["event", "cluster"], name="face_event_cluster"),
        ),
    ]
