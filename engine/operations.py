"""Every engine operation, written once: what it sends, in order, and what it answers.

An operation's *plan* is one step (a script call from engine.calls, a plain command from engine.commands, a
checked reserve) or ``Steps``, several made in turn. ``Operations`` declares each operation once, with the
signature its callers see, as a builder of its plan. The sync ``Engine`` (engine.client) sends a step and
returns its answer; ``AsyncEngine`` (engine.aio) returns an awaitable of it: they hold the I/O and nothing
else (after redis-py, whose commands are written once for both of its clients).

To add an operation: a builder in engine/calls.py (a script) or engine/commands.py (a plain command), then one
line here; both engines have it, typed (``Operation``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, Self, TypeAlias, TypeVar, cast, overload

from engine import calls, commands
from engine.calls import Call, PreparedJoin, PreparedPoll, PreparedReserve
from engine.client_base import EngineBase
from engine.commands import Command
from engine.exceptions import EngineError
from engine.replication import waits
from engine.types import (
    ClaimMode,
    Hold,
    Order,
    OrderStatus,
    ProductReserve,
    ReserveRequest,
    Ticket,
    TransactionClaim,
)

P = ParamSpec("P")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@dataclass(frozen=True, slots=True)
class Steps(Generic[T]):
    """Round trips made in turn (one that fails stops the rest), or ``together``; ``answer`` reads their answers,
    in order."""

    steps: Sequence[Step]
    answer: Callable[[list[Any]], T]
    together: bool = False
    """The steps are independent: an asyncio engine sends them at once."""


Step: TypeAlias = "Call[Any] | Command[Any] | PreparedReserve"
Plan: TypeAlias = "Call[T] | Command[T] | Steps[T] | PreparedReserve | PreparedPoll | PreparedJoin"
"""What an operation sends. A ``PreparedReserve`` (a plan of ``Hold``) goes alone or, on AsyncEngine, in a
coalesced batch (engine.coalesce), with the engine's hold TTL; a ``PreparedPoll`` or ``PreparedJoin`` (plans of
``Ticket``) likewise, in a batch of its product's polls or joins."""


class Operation(Protocol[P, T_co]):
    """An engine method, as the type checker sees it: on ``Engine`` it answers ``T``, on ``AsyncEngine`` an
    awaitable of ``T``. At run time it is a plain function (``operation``)."""

    @overload
    def __get__(self, engine: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, engine: SyncOperations, owner: type[Any]) -> Callable[P, T_co]: ...
    @overload
    def __get__(self, engine: AsyncOperations, owner: type[Any]) -> Callable[P, Coroutine[Any, Any, T_co]]: ...


def operation(build: Callable[P, Plan[T]]) -> Operation[P, T]:
    """The engine method that sends what ``build`` plans, taking ``build``'s arguments."""

    @functools.wraps(build)
    def method(engine: Operations, *args: P.args, **kwargs: P.kwargs) -> Any:
        return engine._execute(build(*args, **kwargs))

    return cast(Operation[P, T], method)


def with_engine(build: Callable[Concatenate[Any, P], Plan[T]]) -> Operation[P, T]:
    """``operation`` for a builder that also reads the engine (its first argument): its TTLs, if it is a cluster."""

    @functools.wraps(build)
    def method(engine: Operations, *args: P.args, **kwargs: P.kwargs) -> Any:
        return engine._execute(build(engine, *args, **kwargs))

    return cast(Operation[P, T], method)


def registers(build: Callable[Concatenate[int, P], Call[T]]) -> Callable[Concatenate[int, P], Plan[T]]:
    """The script call that puts a product (``set_stock``, ``restore``), then the product joins the registry."""

    @functools.wraps(build)
    def plan(product_id: int, /, *args: P.args, **kwargs: P.kwargs) -> Plan[T]:
        return Steps([build(product_id, *args, **kwargs), commands.register_product(product_id)], _first)

    return plan


def holds(build: Callable[P, PreparedReserve]) -> Callable[P, Plan[Hold]]:
    """A builder of reserves, as a plan of ``Hold``: what the engine answers for it."""
    return build


def polls(build: Callable[P, PreparedPoll]) -> Callable[P, Plan[Ticket]]:
    """A builder of polls, as a plan of ``Ticket``: what the engine answers for it."""
    return build


def joins(build: Callable[P, PreparedJoin]) -> Callable[P, Plan[Ticket]]:
    """A builder of joins, as a plan of ``Ticket``: what the engine answers for it."""
    return build


def _placed(groups: list[list[int]], size: int, answers: list[list[Any]]) -> list[Any]:
    """The answers of the groups' calls, each put back at its request's position."""
    results: list[Any] = [None] * size
    for group, answered in zip(groups, answers, strict=True):
        for i, result in zip(group, answered, strict=True):
            results[i] = result
    return results


def _first(answers: list[Any]) -> Any:
    return answers[0]


def order_states(product_id: int, order_ids: Sequence[str]) -> Plan[dict[str, OrderStatus | None]]:
    """The stored status of each order (None: unknown to the engine), in calls of at most 1,000; changes nothing."""
    size = calls.MAX_ORDER_STATES
    chunks = [order_ids[start : start + size] for start in range(0, len(order_ids), size)]
    return Steps([calls.order_states(product_id, chunk) for chunk in chunks], _merged)


def _merged(answers: list[dict[str, OrderStatus | None]]) -> dict[str, OrderStatus | None]:
    return {order_id: status for answer in answers for order_id, status in answer.items()}


def ack_outbox(product_id: int, entry_ids: Sequence[str]) -> Plan[int]:
    """Delete drained entries; none is no round trip."""
    return commands.ack_outbox(product_id, entry_ids) if entry_ids else Steps((), _none_deleted)


def _none_deleted(answers: list[Any]) -> int:
    return 0


class Operations(EngineBase):
    """The engine's operations; a subclass sends their steps (``_run``, ``_command``, ``_reserve``, ``_steps``)."""

    _acker: Any
    """The engine's acknowledger (engine.replication), or None: it sends the writes that wait for replicas."""

    set_stock = operation(registers(calls.set_stock))
    restore = operation(registers(calls.restore))
    reserve = operation(holds(calls.reserve_request))
    release = operation(calls.release)
    hold = operation(calls.hold_status)
    settle = operation(calls.settle)
    processing = operation(calls.processing)
    release_transaction = operation(calls.release_transaction)
    cancel = operation(calls.cancel)
    order = operation(calls.order_status)
    order_states = operation(order_states)
    reap = operation(calls.reap)
    snapshot = operation(calls.snapshot)
    outbox_mark = operation(calls.outbox_mark)
    count_refund = operation(commands.count_refund)
    product_ids = operation(commands.product_ids)
    read_outbox = operation(commands.read_outbox)
    ack_outbox = operation(ack_outbox)
    outbox_backlog = operation(commands.outbox_backlog)
    stats = operation(commands.stats)
    queue_join = operation(joins(calls.prepare_join))
    queue_poll = operation(polls(calls.prepare_poll))
    queue_leave = operation(calls.queue_leave)
    queue_info = operation(calls.queue_info)

    @with_engine
    def reserve_many(self, product_id: int, requests: Sequence[ReserveRequest]) -> Plan[list[Hold | EngineError]]:
        """Several reserves of one product in one script call: each a Hold, or the error it met, in order."""
        return calls.reserve_batch(calls.prepare(product_id, requests), self.hold_ttl_ms)

    @with_engine
    def queue_poll_many(self, tickets: Sequence[str], owner: str | None = None) -> Plan[list[Ticket | EngineError]]:
        """Polls of one product's tickets (at least one) in one script call: each a Ticket, or the error it met,
        in order. InvalidId for a malformed ticket, before anything is sent."""
        prepared = [calls.prepare_poll(ticket, owner) for ticket in tickets]
        if not prepared:
            raise ValueError("queue_poll_many: no tickets")
        return calls.queue_poll_batch(prepared[0].product_id, prepared)

    @with_engine
    def queue_join_many(self, product_id: int, buyers: Sequence[str | None]) -> Plan[list[Ticket | EngineError]]:
        """Joins of one product's room (one per buyer, None for none) in one script call: each a Ticket, or the error
        it met, in order."""
        return calls.queue_join_batch(product_id, [calls.prepare_join(product_id, buyer) for buyer in buyers])

    @with_engine
    def reserve_across(self, requests: Sequence[ProductReserve]) -> Plan[list[Hold | EngineError]]:
        """Reserves of several products: one script call on one Redis, one per hash slot on a cluster (an asyncio
        engine sends those at once). Each answer is a Hold, or the error it met, in the order of ``requests``."""
        prepared = calls.prepare_across(requests)
        groups = calls.by_slot(prepared) if self.cluster else [list(range(len(prepared)))]
        batches = [calls.reserve_batch([prepared[i] for i in group], self.hold_ttl_ms) for group in groups]
        return Steps(batches, functools.partial(_placed, groups, len(prepared)), together=True)

    @with_engine
    def claim_transaction(
        self, transaction_id: str, order_id: str, mode: ClaimMode = "claim"
    ) -> Plan[TransactionClaim]:
        """Bind a transaction id to one order for the whole sale; TransactionReused if another order holds it. On
        one Redis the claim store's completeness mark goes too (on a cluster it would be in another slot)."""
        return calls.claim_transaction(transaction_id, order_id, mode, marked=not self.cluster)

    @with_engine
    def convert(self, hold_id: str, *, order_id: str | None = None, owner: str | None = None) -> Plan[Order]:
        """``owner``: the verified buyer asking; another's hold is HoldNotFound and stays as it is."""
        return calls.convert(hold_id, self.order_ttl_ms, order_id, owner=owner)

    def _execute(self, plan: Plan[Any]) -> Any:
        """``plan``'s answer (``Engine``), or an awaitable of it (``AsyncEngine``)."""
        if isinstance(plan, PreparedReserve):  # the hot path first
            return self._reserve(plan)
        if isinstance(plan, Call):
            return self._run(plan)
        if isinstance(plan, PreparedPoll):
            return self._poll(plan)
        if isinstance(plan, PreparedJoin):
            return self._join(plan)
        if isinstance(plan, Command):
            return self._command(plan)
        return self._steps(plan)

    def _reserve(self, request: PreparedReserve) -> Any:
        return self._run(calls.reserve_alone(request, self.hold_ttl_ms))

    def _poll(self, poll: PreparedPoll) -> Any:
        return self._run(calls.queue_poll(poll))

    def _join(self, join: PreparedJoin) -> Any:
        return self._run(calls.join_alone(join))

    def _script_reply(self, call: Call[Any]) -> Any:
        """The client's call of ``call``'s script (through the acknowledger for a write that waits)."""
        script = self._scripts[call.script]
        if self._acker is not None and waits(call.script):
            return self._acker.script(script, call.keys, call.args)
        return script(keys=call.keys, args=call.args)

    def _command_reply(self, command: Command[Any]) -> Any:
        """The client's call of ``command`` (through the acknowledger for one that waits)."""
        if self._acker is not None and command.acked:
            return self._acker.command(command.key, *command.args)
        return self.redis.execute_command(*command.args)

    def _run(self, call: Call[Any]) -> Any:
        raise NotImplementedError

    def _command(self, command: Command[Any]) -> Any:
        raise NotImplementedError

    def _steps(self, steps: Steps[Any]) -> Any:
        raise NotImplementedError


class SyncOperations(Operations):
    """Operations answered when they return (``Engine``)."""


class AsyncOperations(Operations):
    """Operations answered by awaiting them (``AsyncEngine``)."""
