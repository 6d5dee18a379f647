"""Face rows keep half of each page free for their own next version.

A face's ``searchable`` flag is rewritten for a whole event when its organiser changes
the face-search setting, and for a runner's clusters when they opt out. An UPDATE whose
new row version fits on the same page, and changes no indexed column, is a HOT update:
no index is touched. On full pages every such update also inserted the face's vector into
the event model's HNSW graph again, about 1.5 ms a face: turning face search off at an
event of 100,000 faces took 159 s, past the web server's timeout, so it could not be
done from the admin (``bench/eventwork.py``). With the room, it takes about a second.

The room is kept on pages written from now on. Faces stored before this migration get
it when the table is next rewritten (``VACUUM FULL photos_face``, at a quiet time; it
locks the table and rebuilds its indexes): ``docs/scaling.md`` says so.
"""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("photos", "0010_bibtag_read_as_photo_featured"),
    ]

    operations = [
        migrations.RunSQL("ALTER TABLE photos_face SET (fillfactor = 50)",
                          reverse_sql="ALTER TABLE photos_face RESET (fillfactor)"),
    ]
