"""The face-search rule moves into PostgreSQL, where no write can go around it.

``photos_face.searchable`` used to be kept by Python: a ``pre_save`` guard
plus a by-hand re-check after every bulk write. Any bulk_create,
QuerySet.update(), bulk_update() or raw INSERT that forgot the re-check left an
opted-out runner's face searchable. Here the rule is one SQL function,
``racephoto_faces_blocked`` (a set of faces at once; ``racephoto_face_blocked``
asks it for one), and triggers apply it to every write:

- a face written (INSERT, or UPDATE of searchable, bib, cluster or event):
  never searchable while blocked; when its bib, cluster or event changes the
  rule decides both ways (a consented bib makes it searchable);
- after a statement that added, moved or removed faces with clusters, the
  other faces of those clusters are decided again (a cluster carries its bibs'
  choices to the faces where the bib is hidden);
- a bib claim written or deleted: the faces of that bib and of its clusters;
- an event's face-search setting changed: every face of the event.

Erasure is the one part the database cannot check: an erasure record keeps a
keyed hash of the bib, and the key (SECRET_KEY) must never reach the
database. Until an admin carries the erasure out, the runner's claim is an
opt-out (checked here); after it, the pipeline never writes that bib again and
``photos.models.Face`` stays unsearchable when given it (accounts.privacy).
"""

from django.db import migrations

RULE = r"""
-- The rule, for a set of faces of one event given as parallel arrays (a face not written
-- yet has a NULL id): which of them must stay out of face search, by position. Off: all.
-- Any bib of the face or of the other faces of its cluster opted out: blocked. Opt-in: a
-- face with a bib needs consent for it; one without needs consent for every bib of its
-- cluster (a cluster can join two look-alike runners).
-- VOLATILE on purpose: inside a trigger it must see the rows written so far.
CREATE FUNCTION racephoto_faces_blocked(p_event_id bigint, p_face_ids bigint[],
                                        p_bibs text[], p_clusters integer[])
RETURNS TABLE (o_position bigint, o_blocked boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    setting text;
BEGIN
    SELECT e.face_search INTO setting FROM events_event e WHERE e.id = p_event_id;
    IF setting IS NULL OR setting = 'off'
       OR NOT EXISTS (SELECT 1 FROM accounts_bibclaim c WHERE c.event_id = p_event_id) THEN
        -- Off, or nobody chose anything at this event: the setting alone decides. An event
        -- not (yet) visible here fails closed.
        RETURN QUERY SELECT t.n, setting IS DISTINCT FROM 'on'
                       FROM unnest(p_face_ids) WITH ORDINALITY AS t(id, n);
        RETURN;
    END IF;
    RETURN QUERY
    WITH target AS (
        SELECT t.n, t.id, coalesce(t.bib, '') AS bib, t.cluster
          FROM unnest(p_face_ids, p_bibs, p_clusters) WITH ORDINALITY AS t(id, bib, cluster, n)
    ), linked AS (
        SELECT t.n, coalesce(array_agg(DISTINCT m.bib::text) FILTER (WHERE m.bib <> ''),
                             '{}') AS bibs
          FROM target t LEFT JOIN photos_face m
            ON t.cluster IS NOT NULL AND m.event_id = p_event_id AND m.cluster = t.cluster
           AND m.id IS DISTINCT FROM t.id
         GROUP BY t.n
    )
    SELECT t.n, CASE
        WHEN EXISTS (SELECT 1 FROM accounts_bibclaim c
                      WHERE c.event_id = p_event_id AND c.face_search = 'opted_out'
                        AND (c.bib = t.bib OR c.bib = ANY (l.bibs))) THEN true
        WHEN setting <> 'opt_in' THEN false
        WHEN t.bib <> '' THEN NOT EXISTS (
            SELECT 1 FROM accounts_bibclaim c
             WHERE c.event_id = p_event_id AND c.bib = t.bib AND c.face_search = 'consented')
        ELSE cardinality(l.bibs) = 0 OR EXISTS (
            SELECT 1 FROM unnest(l.bibs) AS linked_bib(bib)
             WHERE NOT EXISTS (SELECT 1 FROM accounts_bibclaim c
                                WHERE c.event_id = p_event_id AND c.bib = linked_bib.bib
                                  AND c.face_search = 'consented'))
        END
      FROM target t JOIN linked l USING (n);
END $$;

-- The rule for one face.
CREATE FUNCTION racephoto_face_blocked(p_event_id bigint, p_face_id bigint, p_bib text,
                                       p_cluster integer) RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    SELECT o_blocked FROM racephoto_faces_blocked(p_event_id, ARRAY[p_face_id], ARRAY[p_bib],
                                                  ARRAY[p_cluster]);
$$;

-- Decide again, both ways, the faces of ``p_event_id`` that carry one of ``p_bibs``, sit
-- in one of ``p_clusters`` or in a cluster of one of those bibs (both NULL: every face
-- of the event), all at once. Only faces whose answer changes are written; returns how many.
CREATE FUNCTION racephoto_refresh_faces(p_event_id bigint, p_bibs text[],
                                        p_clusters integer[]) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    ids bigint[];
    bibs text[];
    clusters integer[];
    changed integer;
BEGIN
    SELECT array_agg(f.id ORDER BY f.id), array_agg(f.bib::text ORDER BY f.id),
           array_agg(f.cluster ORDER BY f.id)
      INTO ids, bibs, clusters
      FROM photos_face f
     WHERE f.event_id = p_event_id
       AND ((p_bibs IS NULL AND p_clusters IS NULL)
            OR f.bib = ANY (p_bibs)
            OR f.cluster = ANY (p_clusters)
            OR f.cluster IN (SELECT m.cluster FROM photos_face m
                              WHERE m.event_id = p_event_id AND m.bib = ANY (p_bibs)
                                AND m.cluster IS NOT NULL));
    IF ids IS NULL THEN
        RETURN 0;
    END IF;
    UPDATE photos_face f SET searchable = NOT decided.o_blocked
      FROM (SELECT ids[b.o_position] AS id, b.o_blocked
              FROM racephoto_faces_blocked(p_event_id, ids, bibs, clusters) b) decided
     WHERE f.id = decided.id AND f.searchable IS DISTINCT FROM NOT decided.o_blocked;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END $$;

-- Every written face, before it is stored: never searchable while blocked, and when what
-- the rule reads (bib, cluster, event) changed, the rule decides both ways. A face with a
-- cluster, written by a statement of its own (not by these functions), is left to the end
-- of that statement, where its whole cluster is decided at once: a row trigger sees the
-- other rows of its statement half-written, and deciding each row alone costs a query per
-- row of a bulk write.
CREATE FUNCTION racephoto_face_guard() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER photos_face_privacy_guard
    BEFORE INSERT OR UPDATE OF searchable, bib, cluster, event_id ON photos_face
    FOR EACH ROW EXECUTE FUNCTION racephoto_face_guard();

-- After a statement that added, moved or removed faces with a cluster: the faces of those
-- clusters (old and new) are decided again, together. Writes made by these functions
-- themselves (trigger depth > 1) only change searchable and need no second pass.
CREATE FUNCTION racephoto_face_clusters_after() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched record;
BEGIN
    IF pg_trigger_depth() > 1 THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        FOR touched IN SELECT n.event_id, array_agg(DISTINCT n.cluster) AS clusters
                         FROM new_faces n WHERE n.cluster IS NOT NULL GROUP BY n.event_id LOOP
            PERFORM racephoto_refresh_faces(touched.event_id, '{}', touched.clusters);
        END LOOP;
    ELSIF TG_OP = 'UPDATE' THEN
        FOR touched IN
            SELECT moved.event_id, array_agg(DISTINCT moved.cluster) AS clusters FROM (
                SELECT o.event_id, o.cluster FROM old_faces o JOIN new_faces n USING (id)
                 WHERE (o.bib, o.cluster, o.event_id) IS DISTINCT FROM (n.bib, n.cluster, n.event_id)
                UNION
                SELECT n.event_id, n.cluster FROM old_faces o JOIN new_faces n USING (id)
                 WHERE (o.bib, o.cluster, o.event_id) IS DISTINCT FROM (n.bib, n.cluster, n.event_id)
            ) moved WHERE moved.cluster IS NOT NULL GROUP BY moved.event_id LOOP
            PERFORM racephoto_refresh_faces(touched.event_id, '{}', touched.clusters);
        END LOOP;
    ELSE
        FOR touched IN SELECT o.event_id, array_agg(DISTINCT o.cluster) AS clusters
                         FROM old_faces o WHERE o.cluster IS NOT NULL AND o.bib <> ''
                        GROUP BY o.event_id LOOP
            PERFORM racephoto_refresh_faces(touched.event_id, '{}', touched.clusters);
        END LOOP;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER photos_face_privacy_clusters_insert AFTER INSERT ON photos_face
    REFERENCING NEW TABLE AS new_faces
    FOR EACH STATEMENT EXECUTE FUNCTION racephoto_face_clusters_after();
CREATE TRIGGER photos_face_privacy_clusters_update AFTER UPDATE ON photos_face
    REFERENCING OLD TABLE AS old_faces NEW TABLE AS new_faces
    FOR EACH STATEMENT EXECUTE FUNCTION racephoto_face_clusters_after();
CREATE TRIGGER photos_face_privacy_clusters_delete AFTER DELETE ON photos_face
    REFERENCING OLD TABLE AS old_faces
    FOR EACH STATEMENT EXECUTE FUNCTION racephoto_face_clusters_after();

-- A runner's choice takes effect on their faces in the statement that records it.
CREATE FUNCTION racephoto_claim_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM racephoto_refresh_faces(OLD.event_id, ARRAY[OLD.bib::text], '{}');
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM racephoto_refresh_faces(NEW.event_id, ARRAY[NEW.bib::text], '{}');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER accounts_bibclaim_face_search AFTER INSERT OR UPDATE OR DELETE
    ON accounts_bibclaim FOR EACH ROW EXECUTE FUNCTION racephoto_claim_changed();

CREATE FUNCTION racephoto_event_face_search_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM racephoto_refresh_faces(NEW.id, NULL, NULL);
    RETURN NULL;
END $$;

CREATE TRIGGER events_event_face_search AFTER UPDATE OF face_search ON events_event
    FOR EACH ROW WHEN (OLD.face_search IS DISTINCT FROM NEW.face_search)
    EXECUTE FUNCTION racephoto_event_face_search_changed();

-- The cluster look-ups above, without scanning the event's faces each time.
CREATE INDEX face_event_cluster ON photos_face (event_id, cluster) WHERE cluster IS NOT NULL;

-- Faces written before the rule lived here: decided once by it.
SELECT racephoto_refresh_faces(id, NULL, NULL) FROM events_event;
"""

REVERSE = r"""
DROP INDEX IF EXISTS face_event_cluster;
DROP TRIGGER IF EXISTS events_event_face_search ON events_event;
DROP TRIGGER IF EXISTS accounts_bibclaim_face_search ON accounts_bibclaim;
DROP TRIGGER IF EXISTS photos_face_privacy_clusters_delete ON photos_face;
DROP TRIGGER IF EXISTS photos_face_privacy_clusters_update ON photos_face;
DROP TRIGGER IF EXISTS photos_face_privacy_clusters_insert ON photos_face;
DROP TRIGGER IF EXISTS photos_face_privacy_guard ON photos_face;
DROP FUNCTION IF EXISTS racephoto_event_face_search_changed();
DROP FUNCTION IF EXISTS racephoto_claim_changed();
DROP FUNCTION IF EXISTS racephoto_face_clusters_after();
DROP FUNCTION IF EXISTS racephoto_face_guard();
DROP FUNCTION IF EXISTS racephoto_refresh_faces(bigint, text[], integer[]);
DROP FUNCTION IF EXISTS racephoto_face_blocked(bigint, bigint, text, integer);
DROP FUNCTION IF EXISTS racephoto_faces_blocked(bigint, bigint[], text[], integer[]);
"""


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0002_privacy"),
        ("events", "0004_event_face_search"),
        ("photos", "0006_face_index_sface"),
    ]

    operations = [migrations.RunSQL(RULE, REVERSE)]
