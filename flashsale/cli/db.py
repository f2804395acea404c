"""``flashsale migrate``: bring the database to the newest schema."""

from __future__ import annotations

import click
import sqlalchemy.exc

from persistence.db import normalize_url
from persistence.migrate import current, upgrade
from shared import logs
from shared import settings as settings_module
from shared.settings import ConfigError, Settings


def settings_or_exit() -> Settings:
    """The settings, or one line naming the bad variable and exit status 2."""
    try:
        settings = settings_module.load()
    except ConfigError as error:
        click.echo(f"flashsale: {error}", err=True)
        raise SystemExit(2) from None
    logs.configure(settings.log_format)
    return settings


@click.command()
def migrate() -> None:
    """Upgrade the database to the newest schema (safe to repeat, and to run twice at once)."""
    settings = settings_or_exit()
    shown = normalize_url(settings.database_url).render_as_string(hide_password=True)
    try:
        upgrade(settings.database_url)
        revision = current(settings.database_url)
    except sqlalchemy.exc.OperationalError as error:
        reason = " ".join(str(error.orig or error).split())
        click.echo(f"flashsale migrate: cannot reach {shown}: {reason}", err=True)
        raise SystemExit(1) from None
    click.echo(f"{shown}: at schema revision {revision}")
