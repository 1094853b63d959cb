import django.db.models.functions.datetime
from django.db import migrations, models

# A project that moved to Django from FastAPI or Flask (`copier update --data
# web_framework=django`) has the notes table its Alembic migrations made, of another shape: it
# is set aside, and once Django's is made, its rows move in, ids kept, and Alembic's bookkeeping
# goes.
SET_ASIDE = "ALTER TABLE IF EXISTS notes RENAME TO notes_before_django"
MOVE_IN = """
DO $$
BEGIN
    IF to_regclass('notes_before_django') IS NOT NULL THEN
        INSERT INTO notes (id, text, created_at)
            SELECT id, text, created_at FROM notes_before_django;
        -- The next note's id follows the moved ones'.
        PERFORM setval(pg_get_serial_sequence('notes', 'id'), max(id))
            FROM notes HAVING count(*) > 0;
        DROP TABLE notes_before_django;
        DROP TABLE IF EXISTS alembic_version;
    END IF;
END
$$;
"""


class Migration(migrations.Migration):
    initial = True

    operations = [
        migrations.RunSQL(SET_ASIDE, reverse_sql=migrations.RunSQL.noop),
        migrations.CreateModel(
            name="Note",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("text", models.CharField(max_length=500)),
                (
                    "created_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
            ],
            options={"db_table": "notes"},
        ),
        migrations.RunSQL(MOVE_IN, reverse_sql=migrations.RunSQL.noop),
    ]
