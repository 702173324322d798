"""A covering index for the feed's candidate query (PostgreSQL only).

``post(author_id, created_at DESC) INCLUDE (id, like_count)`` lets the
per-author LATERAL probe of ``recommender.selectors.network_candidates`` be an
index-only scan (no heap visit, no sort).  It is created with raw SQL so it
does not enter the social core's model state.
"""

from django.db import migrations

INDEX = "recommender_post_feed_cover_idx"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    post = apps.get_model("feedmood", "Post")._meta.db_table
    schema_editor.execute(
        f'CREATE INDEX IF NOT EXISTS {INDEX} ON "{post}" (author_id, created_at DESC) INCLUDE (id, like_count)'
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("recommender", "0001_initial"),
        ("feedmood", "0001_initial"),
    ]

    operations = [migrations.RunPython(create, drop)]
