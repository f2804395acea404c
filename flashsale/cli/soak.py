"""``flashsale soak``: a whole stack under a mixed workload for a while, with a verdict and an exit status."""

from __future__ import annotations

import asyncio

import click

from engine.exceptions import EngineError
from flashsale.cli.connections import backends, operator_settings
from flashsale.cli.output import ERROR, FAILED, OK, fail, json_option, print_json
from flashsale.verification.soak import SoakOptions, SoakReport, run_soak, write_log_path
from persistence.migrate import upgrade


@click.command()
@click.option(
    "--duration", type=click.FloatRange(1, 7 * 86_400), default=30, show_default=True, help="Seconds of load."
)
@click.option("--clients", type=click.IntRange(1, 5000), default=100, show_default=True, help="Concurrent buyers.")
@click.option("--products", type=click.IntRange(1, 1000), default=4, show_default=True, help="Products on sale.")
@click.option(
    "--first-product",
    type=click.IntRange(1, 10**15 - 1000),
    default=900_001,
    show_default=True,
    help="Id of the first soak product (the soak puts its own products on sale, from this id up).",
)
@click.option("--stock", type=click.IntRange(1, 10**9), default=500, show_default=True, help="Units of each product.")
@click.option("--hold-ttl", type=click.IntRange(1, 3600), default=2, show_default=True, help="Hold TTL in seconds.")
@click.option("--order-ttl", type=click.IntRange(1, 3600), default=3, show_default=True, help="Order TTL in seconds.")
@click.option("--api-workers", type=click.IntRange(1, 64), default=1, show_default=True, help="API processes.")
@click.option(
    "--kill-worker-every",
    type=click.FloatRange(0, 86_400),
    default=10,
    show_default=True,
    help="Kill the worker with SIGKILL this often (seconds; 0 never); the supervisor starts another.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the workload's choices.")
@json_option
def soak(
    duration: float,
    clients: int,
    products: int,
    first_product: int,
    stock: int,
    hold_ttl: int,
    order_ttl: int,
    api_workers: int,
    kill_worker_every: float,
    seed: int,
    as_json: bool,
) -> None:
    """Run a stack (API, worker, scheduler) under a mixed workload and check it never breaks a guarantee.

    Holds, releases, orders, payments (some failed, some delivered twice), cancellations, expiries with
    short TTLs, invalid requests and worker kills, on the Redis and database the FLASHSALE_* variables name.
    The invariant of every product is checked every second; at the end the workers drain, Redis is
    reconciled with the database, and every order and payment the API acknowledged must be in it.
    Exit status: 0 pass, 1 a guarantee broke, 2 the soak could not run.
    """
    settings = operator_settings()
    options = SoakOptions(
        duration=duration,
        clients=clients,
        products=products,
        first_product=first_product,
        stock=stock,
        hold_ttl=hold_ttl,
        order_ttl=order_ttl,
        api_workers=api_workers,
        kill_worker_every=kill_worker_every,
        seed=seed,
    )
    log_path = write_log_path(settings.var_dir)

    def say(line: str) -> None:
        if not as_json:
            click.echo(line)

    with backends(settings) as (engine, db):
        upgrade(settings.database_url)
        try:
            with open(log_path, "a", encoding="utf-8") as log:
                say(f"the stack's output goes to {log_path}")
                report = asyncio.run(run_soak(settings, engine, db, options, say, log))
        except (EngineError, RuntimeError) as error:
            fail(f"the soak could not run: {error}", ERROR)
    _report(report, as_json)


def _report(report: SoakReport, as_json: bool) -> None:
    status = OK if report.passed else FAILED
    if as_json:
        print_json({**report.as_json(), "exit_code": status})
        raise SystemExit(status)
    figures = report.as_json()
    audit = figures["audit"]
    click.echo(f"  duration          {figures['duration_s']} s, {figures['clients']} clients")
    click.echo(f"  requests          {figures['load'].get('requests', 0)}: {figures['load'].get('statuses', {})}")
    click.echo(f"  steps             {figures['load'].get('steps', {})}")
    click.echo(
        f"  invariant         {figures['invariant_checks']} checks, {figures['invariant_violations']} violations"
    )
    click.echo(f"  worker            {figures['worker_kills']} killed, {figures['worker_restarts']} restarts")
    click.echo(f"  restocks          {figures['restocks']}")
    click.echo(
        f"  outbox            at most {figures['max_backlog']} events behind; drained in {figures['settle_s']} s"
    )
    click.echo(f"  reconcile         {figures['reconcile']}")
    click.echo(
        f"  audit             {audit.get('orders_checked')} orders, {audit.get('payments_checked')} payments "
        f"acknowledged; {audit.get('lost')} lost, {figures['oversold']} oversold"
    )
    for failure in report.failures[:20]:
        click.echo(f"  FAIL  {failure}")
    click.echo(f"verdict: {'PASS' if report.passed else 'FAIL'}")
    raise SystemExit(status)
