"""Two apps in one process: the safari app and the restaurant each see only their own
flows, tables, console pages, commands, routes and goals, and run side by side with their
own services. The framework itself loads neither."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import click

from apps.safari.payments import PaymentProviders
from bot.apps import load_app
from bot.console.page import ConsolePage
from bot.web import Route
from flows import App
from flows.runtime import Runtime
from storage import Base, Database, migrate

ROOT = Path(__file__).resolve().parents[1]
SAFARI = load_app("apps.safari")
RESTAURANT = load_app(str(ROOT / "examples" / "restaurant"))


def tables(app: App) -> set[str]:
    return {name for metadata in app.metadata for name in metadata.tables}


def pages(app: App) -> set[str]:
    return {page.path for page in app.console_pages if isinstance(page, ConsolePage)}


def commands(app: App) -> set[str]:
    return {str(c.name) for c in app.commands if isinstance(c, click.Command)}


def routes(app: App) -> set[str]:
    return {route.path for route in app.routes if isinstance(route, Route)}


def test_loading_an_app_twice_gives_the_same_app() -> None:
    assert load_app("apps.safari") is SAFARI
    assert load_app(str(ROOT / "examples" / "restaurant")) is RESTAURANT


def test_each_app_sees_only_its_own_flows() -> None:
    assert sorted(RESTAURANT.flows) == ["feedback", "table_booking"]
    assert "booking_flow" in SAFARI.flows
    assert not set(SAFARI.flows) & set(RESTAURANT.flows)
    for name in ("reserve_table", "open_slots", "large_party"):
        assert name not in {
            *SAFARI.registry.actions,
            *SAFARI.registry.queries,
            *SAFARI.registry.conditions,
        }
    # Every callable an app's flows can name is the app's own (names may coincide).
    for app, package in ((SAFARI, "apps.safari"), (RESTAURANT, "nyala_app_")):
        registry = app.registry
        for function in (*registry.actions.values(), *registry.queries.values()):
            assert function.__module__.startswith(package), (app, function)
    assert {"hours", "directions"} <= set(RESTAURANT.intents)
    assert not {"hours", "directions"} & set(SAFARI.intents)


def test_each_app_sees_only_its_own_tables_and_branch() -> None:
    assert tables(RESTAURANT) == {"reservations"}
    assert {"tours", "departures", "bookings", "payments", "customers"} <= tables(SAFARI)
    assert not tables(SAFARI) & tables(RESTAURANT)
    framework = set(Base.metadata.tables)
    assert not framework & (tables(SAFARI) | tables(RESTAURANT))
    assert RESTAURANT.migration_locations == (ROOT / "examples" / "restaurant" / "migrations",)
    assert SAFARI.migration_locations == (ROOT / "apps" / "safari" / "migrations",)


def test_each_app_sees_only_its_own_pages_commands_routes_and_goals() -> None:
    assert pages(RESTAURANT) == {"/reservations"}
    assert "/bookings" in pages(SAFARI)
    assert not pages(SAFARI) & pages(RESTAURANT)

    assert commands(RESTAURANT) == {"reservations"}
    assert commands(SAFARI)
    assert not commands(SAFARI) & commands(RESTAURANT)

    assert routes(RESTAURANT) == set()
    assert any("omari" in path for path in routes(SAFARI))

    assert set(RESTAURANT.goals) == {"reservation"}
    assert set(SAFARI.goals) == {"booking"}

    assert RESTAURANT.copy.text("flow.done") != SAFARI.copy.text("flow.done")  # an override
    assert str(RESTAURANT.timezone) == "Africa/Harare"


async def test_two_runtimes_side_by_side_with_their_own_services(tmp_path: Path) -> None:
    package = RESTAURANT.registry.actions["reserve_table"].__module__.rpartition(".")[0]
    floor_kind = importlib.import_module(f"{package}.models").FloorPlan
    safari_db = Database(f"sqlite+aiosqlite:///{tmp_path / 'safari.db'}")
    restaurant_db = Database(f"sqlite+aiosqlite:///{tmp_path / 'restaurant.db'}")
    try:
        await migrate(safari_db, SAFARI.migration_locations)
        await migrate(restaurant_db, RESTAURANT.migration_locations)
        async with (
            Runtime.start(SAFARI, safari_db, sandbox=True) as safari,
            Runtime.start(RESTAURANT, restaurant_db, sandbox=True) as restaurant,
        ):
            assert safari.app is SAFARI
            assert restaurant.app is RESTAURANT
            assert safari.services is not restaurant.services
            assert restaurant.services.get(floor_kind).fitting(12)[0].code == "T6"
            assert floor_kind not in safari.services
            assert PaymentProviders in safari.services
            assert PaymentProviders not in restaurant.services
    finally:
        await safari_db.dispose()
        await restaurant_db.dispose()


FRAMEWORK_MODULES = (
    "storage",
    "flows",
    "flows.testing",
    "analytics",
    "documents",
    "bot",
    "bot.apps",
    "bot.cli",
    "bot.cli.common",
    "bot.console",
    "bot.console.page",
    "bot.server",
    "bot.web",
    "bot.whatsapp.webhook",
    "bot.whatsapp.outbox",
)


def test_importing_the_framework_loads_no_app() -> None:
    # One fresh interpreter imports the modules in turn and notes what each import added:
    # what a module loads alone is part of what it loads here, so one process shows as
    # much as one per module, and a failure still names the module that did it.
    code = (
        "import importlib, json, sys\n"
        "found = {}\n"
        f"for module in {FRAMEWORK_MODULES!r}:\n"
        "    importlib.import_module(module)\n"
        "    found[module] = sorted(m for m in sys.modules if m == 'apps' "
        "or m.startswith(('apps.', 'examples', 'nyala_app_', 'testing')))\n"
        "print(json.dumps(found))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert list(found) == list(FRAMEWORK_MODULES)
    loaded = {module: apps for module, apps in found.items() if apps}
    assert loaded == {}, f"after importing {next(iter(loaded))}: {next(iter(loaded.values()))}"
