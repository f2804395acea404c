"""``flashsale race``: the race test against a running API, with a verdict and a matching exit status."""

from __future__ import annotations

import asyncio

import click
import httpx

from flashsale.cli.connections import operator_settings
from flashsale.cli.output import ERROR, FAILED, OK, fail, json_option, print_json
from flashsale.verification.race import RaceError, RaceReport, run_race
from shared import buyer_tokens, vardir
from shared.settings import ADMIN_TOKEN_FILE, WEBHOOK_SECRET_FILE

DEFAULT_PRODUCT = 999
TIMEOUT_SECONDS = 30.0
TOKEN_TTL_SECONDS = 600


@click.command()
@click.option("--url", help="The API's base URL; default: where `flashsale up` serves from this directory.")
@click.option(
    "--product",
    "product_id",
    type=click.IntRange(1, 10**15 - 1),
    default=DEFAULT_PRODUCT,
    show_default=True,
    help="Product to race on; created if missing. Units it already has committed are left alone.",
)
@click.option("--stock", type=click.IntRange(1, 1_000_000), default=10, show_default=True, help="Units on sale.")
@click.option("--concurrency", type=click.IntRange(1, 5000), default=30, show_default=True, help="Holds fired at once.")
@click.option("--quantity", type=click.IntRange(1, 10_000), default=1, show_default=True, help="Units per hold.")
@click.option("--sample", type=click.IntRange(0, 100), default=3, show_default=True, help="Winners that go on to pay.")
@click.option("--no-purchase", is_flag=True, help="Skip the purchase checks (no webhook secret needed).")
@json_option
def race(
    url: str | None,
    product_id: int,
    stock: int,
    concurrency: int,
    quantity: int,
    sample: int,
    no_purchase: bool,
    as_json: bool,
) -> None:
    """Put --stock units on sale through the admin API, fire --concurrency holds at once, and judge.

    It passes only if exactly min(concurrency, stock / quantity) holds succeed, `available` ends at what
    is left (0 when the demand covers the stock) and never goes negative, every refusal is out_of_stock
    and nothing answers 5xx. Then a sample of winners orders, pays through a signed webhook, sends the
    same webhook again, and must end paid. The rest of the winners' holds are released.
    Exit status: 0 pass, 1 fail, 2 when the race could not run.
    """
    settings = operator_settings()
    if settings.admin_token is None:
        fail(f"no admin token: set FLASHSALE_ADMIN_TOKEN, or run where `flashsale up` keeps var/{ADMIN_TOKEN_FILE}")
    secret = None if no_purchase or sample == 0 else settings.webhook_secret
    if secret is None and not (no_purchase or sample == 0):
        fail(
            f"no webhook secret for the purchase checks: set FLASHSALE_WEBHOOK_SECRET, run where `flashsale up` "
            f"keeps var/{WEBHOOK_SECRET_FILE}, or pass --no-purchase"
        )
    base = (url or vardir.served_url(settings.var_dir)).rstrip("/")
    say = None if as_json else click.echo
    buyer_secret = settings.buyer_jwt_secret

    def sign(customer: str) -> str:
        assert buyer_secret is not None
        return buyer_tokens.issue(
            buyer_secret,
            customer,
            ttl_seconds=TOKEN_TTL_SECONDS,
            issuer=settings.buyer_jwt_issuer,
            audience=settings.buyer_jwt_audience,
        )

    async def go() -> RaceReport:
        limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
        async with httpx.AsyncClient(base_url=base, timeout=TIMEOUT_SECONDS, limits=limits) as client:
            return await run_race(
                client,
                product_id=product_id,
                stock=stock,
                concurrency=concurrency,
                quantity=quantity,
                admin_token=settings.admin_token or "",
                webhook_secret=secret,
                sample=sample,
                say=say,
                # Each racer logs in (a token for its customer id) where a buyer secret is at hand: a server with
                # buyer tokens on requires one, one with them off ignores it.
                sign=sign if buyer_secret is not None else None,
            )

    try:
        report = asyncio.run(go())
    except RaceError as error:
        fail(f"race against {base}: {error}", ERROR)
    if as_json:
        print_json({"url": base, **report.as_json()})
    else:
        for line in describe(report):
            click.echo(line)
    raise SystemExit(OK if report.passed else FAILED)


def describe(report: RaceReport) -> list[str]:
    refusals = ", ".join(f"{code} {n}" for code, n in sorted(report.refusals.items())) or "none"
    errors = {**report.server_errors, **report.other_errors}
    lines = [
        f"  successes       {report.successes} (expected {report.expected_successes})",
        f"  refusals        {refusals}",
        f"  other errors    {', '.join(f'{k} {n}' for k, n in sorted(errors.items())) or 'none'}",
        f"  available       {report.available_after} at the end (expected {report.expected_available}), "
        f"lowest seen {report.lowest_available if report.lowest_available is not None else '-'}",
    ]
    if report.committed_before:
        lines.append(f"  (the product already had {report.committed_before} units committed; they were left alone)")
    if report.checks:
        steps: dict[str, list[bool]] = {}
        for check in report.checks:
            steps.setdefault(check.step, []).append(check.ok)
        summary = ", ".join(f"{step} {sum(oks)}/{len(oks)}" for step, oks in steps.items())
        lines.append(f"  purchases       {summary}")
    if report.released:
        lines.append(f"  released        {report.released} other winning hold(s)")
    if report.passed:
        lines.append(click.style("verdict: PASS", fg="green", bold=True))
    else:
        lines.append(click.style("verdict: FAIL", fg="red", bold=True))
        lines += [f"  - {reason}" for reason in report.failures]
    return lines
