"""``flashsale token``: a buyer token signed with the configured HS256 secret, for tests, demos and curl."""

from __future__ import annotations

import click

from flashsale.cli.connections import operator_settings
from flashsale.cli.output import ERROR, fail
from shared import buyer_tokens


@click.command()
@click.argument("sub")
@click.option(
    "--ttl",
    type=click.IntRange(1, buyer_tokens.MAX_TTL_SECONDS),
    default=buyer_tokens.DEFAULT_TTL_SECONDS,
    show_default=True,
    help="Seconds until the token expires.",
)
def token(sub: str, ttl: int) -> None:
    """Print a buyer token for SUB (the buyer's id, who then owns its holds and orders).

    Signed HS256 with FLASHSALE_BUYER_JWT_SECRET, else the secret `flashsale up` keeps in var/buyer_jwt_secret,
    with FLASHSALE_BUYER_JWT_ISSUER and FLASHSALE_BUYER_JWT_AUDIENCE when set. Use it as
    `Authorization: Bearer <token>` on the buyer endpoints.
    """
    settings = operator_settings()
    if settings.buyer_jwt_secret is None:
        fail(
            "no HS256 buyer secret: set FLASHSALE_BUYER_JWT_SECRET (32 bytes at least), or run where `flashsale up` "
            f"keeps {settings.var_dir / buyer_tokens.SECRET_FILE}",
            ERROR,
        )
    click.echo(
        buyer_tokens.issue(
            settings.buyer_jwt_secret,
            sub,
            ttl_seconds=ttl,
            issuer=settings.buyer_jwt_issuer,
            audience=settings.buyer_jwt_audience,
        )
    )
