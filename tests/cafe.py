"""A small test application (a café) built on the public API: one YAML, one Python flow,
and a conversion goal (``order``) that placing an order reaches."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from statemachine import State

from analytics import Goal
from flows import ActionError, App, Expect, Flow, FlowContext, Step

ORDER_GOAL = Goal("order", label="coffee order", description="an order was placed")

ORDER_FLOW = """
flow: order_flow
description: Order coffee
timeout: 30m
triggers: [order, coffee]
menu: Order coffee
steps:
  ask_name:
    skip_if: name_known
    ask: Your name?
    expect: person_name
    save: name
    do: remember_name
  ask_size:
    ask: Which size, {name}?
    buttons: {small: Small, large: Large}
    save: size
  ask_count:
    ask: How many?
    expect: {integer: {min: 1, max: "{stock}"}}
    save: count
  confirm:
    ask: "{summary}"
    buttons: {yes: Confirm, no: Cancel}
    on:
      yes: {do: place_order, next: done}
      no: cancelled
  done:
    final: true
    say: Order placed, {name}!
  cancelled:
    final: true
    say: Cancelled.
"""


class RatingFlow(Flow):
    """Rate the coffee."""

    flow_name = "rating_flow"
    triggers = ("rate",)
    awaiting_rating = State(initial=True)
    thanked = State(final=True)
    answer = awaiting_rating.to(thanked, on="store_rating")
    steps = {  # noqa: RUF012 - a class-level spec, never mutated
        "awaiting_rating": Step(
            name="awaiting_rating",
            ask="Rate us from 1 to 5",
            expect=Expect("integer", {"min": 1, "max": 5}),
            save="rating",
        ),
        "thanked": Step(name="thanked", final=True, say=("Thanks for rating us {rating}!",)),
    }

    def store_rating(self) -> None:
        ctx = self.ctx
        ctx.contact.attributes = {**ctx.contact.attributes, "rating": ctx.data["rating"]}


def build_app(flows_dir: Path, *, stock: int = 5, copy: Mapping[str, str] | None = None) -> App:
    """The test app; ``flows_dir`` receives the YAML flow; ``copy`` overrides texts."""
    flows_dir.mkdir(parents=True, exist_ok=True)
    flow_file = flows_dir / "order_flow.yaml"
    # Rewritten only when different: a server starting beside a running one must not
    # truncate the file under it.
    if not flow_file.exists() or flow_file.read_text() != ORDER_FLOW:
        flow_file.write_text(ORDER_FLOW)
    app = App("Test Café", flows_dir=flows_dir, max_retries=3, goals=[ORDER_GOAL], copy=copy)
    state: dict[str, Any] = {"stock": stock, "fail": None}

    @app.condition()
    def name_known(ctx: FlowContext) -> bool:
        return bool(ctx.contact.attributes.get("name"))

    @app.action()
    def remember_name(ctx: FlowContext) -> None:
        ctx.contact.attributes = {**ctx.contact.attributes, "name": ctx.data["name"]}

    @app.query("stock")
    def stock_left(ctx: FlowContext) -> int:
        return int(state["stock"] or 0)

    @app.query()
    def summary(ctx: FlowContext) -> str:
        name = ctx.data.get("name") or ctx.contact.attributes.get("name")
        ctx.data.setdefault("name", name)
        return f"{ctx.data['count']} {ctx.data['size']} for {name}. Confirm?"

    @app.action()
    async def place_order(ctx: FlowContext) -> None:
        ctx.contact.attributes = {**ctx.contact.attributes, "orders": 1}
        # Reached first: a refusal or a crash below must take the goal back with the rest.
        await ctx.reach_goal("order", reference=f"{ctx.data['count']} {ctx.data['size']}")
        if state["fail"] == "sold_out":
            raise ActionError(
                "Sorry, we just sold out of that. Please choose again.", code="stock.sold_out"
            )
        if state["fail"] == "crash":
            raise RuntimeError("payment service exploded")
        ctx.reply("☕ Brewing now.")

    app.add_flow(RatingFlow)
    app.state = state  # type: ignore[attr-defined]  # test knob
    return app
