"""The face guard trusts the rule's own writes: a big event's face search turns on in a second.

``racephoto_refresh_faces`` decides a set of faces at once and writes only their
``searchable``. Each of those writes still went through the row guard, which asked the rule
again for that one face (``racephoto_face_blocked``): one query per face, 0.2 ms each once
any runner had claimed a bib. Turning face search on again at an event of 100,000 faces
(40 claims) took 6.6 s in psql, 1.6 s without that second opinion; it grows with the event
(``bench/eventwork.py``). A write that changes only ``searchable`` at trigger depth > 1
comes from the rule's functions, which have just decided it: the guard lets it through.
Every other write is guarded as before.
"""

from django.db import migrations

GUARD = r"""
CREATE OR REPLACE FUNCTION racephoto_face_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    moved boolean := true;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        moved := (NEW.bib, NEW.cluster, NEW.event_id)
                 IS DISTINCT FROM (OLD.bib, OLD.cluster, OLD.event_id);
        IF NOT moved AND pg_trigger_depth() > 1 THEN
            RETURN NEW;  -- racephoto_refresh_faces, which has just decided this face
        END IF;
    END IF;
    IF moved AND NEW.cluster IS NOT NULL AND pg_trigger_depth() = 1 THEN
        RETURN NEW;  -- racephoto_face_clusters_after decides
    END IF;
    IF moved AND TG_OP = 'UPDATE' THEN
        NEW.searchable := NOT racephoto_face_blocked(NEW.event_id, NEW.id, NEW.bib,
                                                     NEW.cluster);
    ELSIF NEW.searchable THEN
        NEW.searchable := NOT racephoto_face_blocked(NEW.event_id, NEW.id, NEW.bib,
                                                     NEW.cluster);
    END IF;
    RETURN NEW;
END $$;
"""

# 0003's guard, as it was.
PREVIOUS = r"""
CREATE OR REPLACE FUNCTION racephoto_face_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    moved boolean := true;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        moved := (NEW.bib, NEW.cluster, NEW.event_id)
                 IS DISTINCT FROM (OLD.bib, OLD.cluster, OLD.event_id);
    END IF;
    IF moved AND NEW.cluster IS NOT NULL AND pg_trigger_depth() = 1 THEN
        RETURN NEW;  -- racephoto_face_clusters_after decides
    END IF;
    IF moved AND TG_OP = 'UPDATE' THEN
        NEW.searchable := NOT racephoto_face_blocked(NEW.event_id, NEW.id, NEW.bib,
                                                     NEW.cluster);
    ELSIF NEW.searchable THEN
        NEW.searchable := NOT racephoto_face_blocked(NEW.event_id, NEW.id, NEW.bib,
                                                     NEW.cluster);
    END IF;
    RETURN NEW;
END $$;
"""


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0003_face_search_rule_in_database"),
    ]

    operations = [migrations.RunSQL(GUARD, PREVIOUS)]
