"""``@app.action`` and friends, with and without parentheses, keep the function's type.

mypy checks this file (``mypy --strict tests``): each decorated function is assigned to a
variable of its exact type, which fails to type-check if a decorator's overloads return
anything else (e.g. a decorator factory for the bare form).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from flows import App, FlowContext

AsyncAction = Callable[[FlowContext], Awaitable[None]]
SyncQuery = Callable[[FlowContext], int]
Guard = Callable[[FlowContext], bool]


def test_decorators_work_and_type_check_with_and_without_parentheses() -> None:
    app = App("Typed")

    @app.action
    async def bare(ctx: FlowContext) -> None:
        return None

    @app.action()
    async def called(ctx: FlowContext) -> None:
        return None

    @app.action("renamed")
    async def named(ctx: FlowContext) -> None:
        return None

    @app.query
    def seats(ctx: FlowContext) -> int:
        return 4

    @app.query("stock_left")
    def stock(ctx: FlowContext) -> int:
        return 2

    @app.condition
    def known(ctx: FlowContext) -> bool:
        return True

    @app.condition()
    def other(ctx: FlowContext) -> bool:
        return False

    actions: list[AsyncAction] = [bare, called, named]
    queries: list[SyncQuery] = [seats, stock]
    guards: list[Guard] = [known, other]
    assert all(callable(f) for f in (*actions, *queries, *guards))
    assert app.registry.actions == {"bare": bare, "called": called, "renamed": named}
    assert app.registry.queries == {"seats": seats, "stock_left": stock}
    assert app.registry.conditions == {"known": known, "other": other}
