"""Every migration of workspaces/ must leave the schema usable by the previous release.

During a rollout old pods keep serving while the release's migration Job has already run,
and `kubectl rollout undo` never reverts a migration: so columns and tables are added
first and dropped a release later (docs/deployment.md, "Migrations"). django-migration-linter
reads the SQL of each migration and flags what the previous release could not live with
(dropped or renamed columns and tables, NOT NULL columns without a default, ...).
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django_migration_linter import MigrationLinter
from django_migration_linter.sql_analyser import analyse_sql_statements, get_sql_analyser_class

APP = "workspaces"
# Migrations released before this check existed, each with the reason it stays accepted.
# A new entry needs the same justification: never add one to make a new migration pass.
ACCEPTED: dict[str, str] = {}


# Not inside a transaction: SQLite's schema editor (sqlmigrate) refuses to run in one.
@pytest.mark.django_db(transaction=True)
def test_every_migration_is_backward_compatible(capsys: pytest.CaptureFixture[str]) -> None:
    linter = MigrationLinter(no_cache=True, include_apps=[APP], ignore_name=list(ACCEPTED),
                             ignore_initial_migrations=True)
    linter.lint_all_migrations(app_label=APP)
    report = capsys.readouterr().out
    assert linter.nb_total >= 2, report
    assert not linter.has_errors, f"backward-incompatible migrations:\n{report}"


@pytest.mark.parametrize("statement", [
    'ALTER TABLE "workspaces_panel" DROP COLUMN "title";',
    'ALTER TABLE "workspaces_panel" RENAME COLUMN "title" TO "name";',
    'ALTER TABLE "workspaces_panel" ADD COLUMN "owner" integer NOT NULL;',
    'DROP TABLE "workspaces_panel";',
])
def test_the_linter_flags_what_the_previous_release_cannot_read(statement: str) -> None:
    # PostgreSQL's analyser, whatever this run's database: production runs PostgreSQL.
    analyser = get_sql_analyser_class(settings.DATABASES["default"]["ENGINE"], analyser_string="postgresql")
    errors, _, _ = analyse_sql_statements(analyser, [statement], [])
    assert errors, statement
