"""The partial HNSW index of one embedding model, as the photo migrations create it.

Frozen like the migrations that use it (the leading underscore keeps Django from
loading it as one): an index created differently needs a new helper, never an
edit here. photos.models.pgvector_index_name must keep naming them the same way.
"""

from django.db import migrations


def pgvector_index_name(prefix, signature):
    return f"{prefix}_" + "".join(c if c.isalnum() else "_" for c in signature.lower())[:24]


def hnsw_index(table, prefix, column, model_column, signature, dimension):
    name = pgvector_index_name(prefix, signature)
    return migrations.RunSQL(
        f'CREATE INDEX "{name}" ON "{table}" USING hnsw '
        f'(({column}::vector({dimension})) vector_cosine_ops) WITH (m = 16, ef_construction = 64) '
        f"WHERE {model_column} = '{signature}'",
        reverse_sql=f'DROP INDEX "{name}"')
