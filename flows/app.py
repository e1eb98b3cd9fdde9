"""An application: its flows plus the actions, queries, conditions, validators and
intents they refer to by name. This is the public API a business writes its bot with."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import MetaData

from analytics.goals import Goal
from flows.copy import Copy
from flows.errors import FlowDefinitionError, UnknownFlowError
from flows.flow import Flow
from flows.loader import load_flow_file
from flows.messages import Option
from flows.spec import FlowSpec
from flows.validators import BUILTIN_VALIDATORS, ValidatorFactory, normalize

if TYPE_CHECKING:
    from flows.context import FlowContext
    from flows.outreach import TemplateRef
    from flows.runtime import Lifespan

log = logging.getLogger("nyala.flows")

Action = Callable[["FlowContext"], Awaitable[None] | None]
Query = Callable[["FlowContext"], Awaitable[Any] | Any]
Condition = Callable[["FlowContext"], Awaitable[bool] | bool]
IntentHandler = Callable[["FlowContext"], Awaitable[None] | None]
F = TypeVar("F", bound=Callable[..., Any])
L = TypeVar("L", bound="Lifespan")


@dataclass(frozen=True, slots=True)
class Intent:
    """Words that do something from anywhere in a conversation.

    Attributes:
        name: the intent's name (also its reply id ``intent:<name>``).
        keywords: normalised phrases that trigger it.
        flow: the flow it starts, if any.
        handler: an action run instead of (or before) starting a flow.
        description: the line shown in help.
        idle_only: only when no flow is active (e.g. greetings).
    """

    name: str
    keywords: frozenset[str]
    flow: str | None = None
    handler: IntentHandler | None = None
    description: str = ""
    idle_only: bool = False
    label: str = ""  # the word shown in help


@dataclass(frozen=True, slots=True)
class MenuItem:
    """One row of the main menu: starts a flow or an intent."""

    title: str
    flow: str | None = None
    intent: str | None = None
    description: str | None = None

    @property
    def reply_id(self) -> str:
        """The id sent back when the row is tapped."""
        return f"flow:{self.flow}" if self.flow else f"intent:{self.intent}"


@dataclass
class Registry:
    """Named callables that flow files refer to."""

    actions: dict[str, Action] = field(default_factory=dict)
    queries: dict[str, Query] = field(default_factory=dict)
    conditions: dict[str, Condition] = field(default_factory=dict)
    validators: dict[str, ValidatorFactory] = field(default_factory=dict)


# Core intents work in every application; applications add theirs. Their words and help
# lines come from the app's copy (``intent.<name>.words`` / ``.description``).
CORE_INTENT_NAMES = ("menu", "help", "cancel", "human", "greeting")
_HELP_LABELS = {"menu": "menu", "help": "help", "cancel": "cancel", "human": "agent"}


def core_intents(copy: Copy) -> tuple[Intent, ...]:
    """The core intents in the words of ``copy``."""
    intents = []
    for name in CORE_INTENT_NAMES:
        words = [normalize(w) or w for w in copy.words(f"intent.{name}.words")]
        description = copy.get(f"intent.{name}.description", "")
        label = _HELP_LABELS.get(name, "")
        if label and normalize(label) not in words:
            label = words[0] if words else ""
        intents.append(
            Intent(
                name,
                frozenset(words),
                description=description,
                idle_only=name == "greeting",
                label=normalize(label) if label else "",
            )
        )
    return tuple(intents)


@dataclass(frozen=True)
class AppSnapshot:
    """The application as one turn (or one batch of turns) sees it: its flows, intents
    and menu read once, so that a flow file saved in the middle cannot give a turn two
    versions, and the files are looked at once per batch, not at every lookup.

    Built by :meth:`App.snapshot`; the engine takes one per batch.
    """

    flows: Mapping[str, FlowSpec]
    intents: Mapping[str, Intent]
    menu_items: tuple[MenuItem, ...]
    core: frozenset[str]  # names of the core intents (the application's words win)

    def match_intent(self, text: str, *, idle: bool) -> Intent | None:
        """The intent whose keywords equal the normalised ``text``, if any."""
        # "?" alone normalises to nothing; match such words as typed.
        word = normalize(text) or text.strip()
        if not word:
            return None
        # The application's words win over the core's (a flow may be triggered by "hello").
        ranked = sorted(self.intents.values(), key=lambda i: i.name in self.core)
        for intent in ranked:
            if word in intent.keywords and (idle or not intent.idle_only):
                return intent
        return None

    def menu_options(self) -> list[Option]:
        """The main menu as options (rows or buttons)."""
        return [Option(item.reply_id, item.title, item.description) for item in self.menu_items]


class App:
    """A bot: its flows, the callables they name, intents, the main menu, and what it
    brings beside them (tables, migrations, goals, texts, console pages, commands, web
    routes and lifespans). Everything an app registers lives on this object, so several
    apps can be loaded in one process and each sees only its own.

    Args:
        name: the business's name, used in greetings.
        flows_dir: a folder of ``*.yaml`` flow files, loaded lazily (after the module
            registered its actions) and reloaded when a file changes.
        greeting: the first line of the main menu (default: the copy ``menu.greeting``).
        help_text: what ``help`` says before listing the commands.
        max_retries: invalid answers in a row after which the bot offers a person.
        timezone: the business's timezone (IANA name), for dates ("today", "7 days
            before"), reports' days and the times shown.
        default_region: ISO country for phone numbers typed without a country code.
        menu_button: the label of the button that opens the main menu's list.
        tables: the app's own SQLAlchemy ``MetaData`` (one or several); made with
            :func:`storage.new_metadata` so constraint names are deterministic.
        migrations: the folder of the app's own Alembic branch; ``nyala migrate``
            applies the framework's branch and this one, nothing else.
        goals: what analytics count as conversion (``ctx.reach_goal(name)`` records one).
        copy: overrides of framework texts by key (:mod:`flows.copy`), or a :class:`Copy`.
        console: console pages (``bot.console.ConsolePage``), shown in the navigation.
        commands: click commands merged into ``nyala --app ...``.
        routes: web routes (``bot.web.Route``) served by ``nyala serve``.
        lifespans: start-up/shutdown functions (:meth:`lifespan`).
        demo_data: ``async def load(runtime) -> str`` filling a fresh database with
            example data (``nyala demo-data``; also loaded on the first ``nyala chat``
            on SQLite); returns a one-line summary.
        on_referral: greets a lead, someone whose message came from a click-to-WhatsApp
            ad: ``def f(ctx)`` (may be async) with the ad in ``ctx.message.referral``; it
            may reply, start a flow or hand off. Without one (or if it does none of
            these) the main menu is shown under the copy ``lead.greeting``. The ad is
            kept on the contact (``contacts.referral``) either way.
        agent_template: the approved template (a :class:`flows.outreach.TemplateRef`)
            that carries an agent's console reply when the customer's 24-hour window is
            closed (its body parameters may name ``first_name``, ``customer_name``,
            ``business`` and ``message``, the reply); inside the window it is the reply's
            fallback. Without one the console refuses replies outside the window.
    """

    def __init__(
        self,
        name: str,
        *,
        flows_dir: Path | str | None = None,
        greeting: str | None = None,
        help_text: str | None = None,
        max_retries: int = 3,
        timezone: str = "UTC",
        default_region: str | None = None,
        menu_button: str | None = None,
        tables: MetaData | Sequence[MetaData] = (),
        migrations: Path | str | None = None,
        goals: Iterable[Goal | str] = (),
        copy: Copy | Mapping[str, str] | None = None,
        console: Iterable[object] = (),
        commands: Iterable[object] = (),
        routes: Iterable[object] = (),
        lifespans: Iterable[Lifespan] = (),
        demo_data: Callable[..., Awaitable[str]] | None = None,
        on_referral: IntentHandler | None = None,
        agent_template: TemplateRef | None = None,
    ) -> None:
        if max_retries < 1:
            raise ValueError("max_retries must be at least 1")
        try:
            self.timezone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {timezone!r} (use an IANA name)") from None
        self.name = name
        self.copy = copy if isinstance(copy, Copy) else Copy(copy)
        self.flows_dir = Path(flows_dir) if flows_dir is not None else None
        self.greeting = greeting or self.copy.text("menu.greeting", business=name)
        self.help_text = help_text or self.copy.text("help.greeting", business=name)
        self.max_retries = max_retries
        self.default_region = default_region
        self.menu_button = menu_button or self.copy.text("menu.button")
        self.metadata: tuple[MetaData, ...] = (
            (tables,) if isinstance(tables, MetaData) else tuple(tables)
        )
        self.migrations = Path(migrations) if migrations is not None else None
        self.goals: dict[str, Goal] = {}
        for goal in goals:
            self.add_goal(goal)
        self.console_pages: list[object] = list(console)
        self.commands: list[object] = list(commands)
        self.routes: list[object] = list(routes)
        self.lifespans: list[Lifespan] = list(lifespans)
        self.demo_data = demo_data
        self.on_referral = on_referral
        self.agent_template = agent_template
        self.registry = Registry()
        self.menu: list[MenuItem] = []
        self._core = core_intents(self.copy)
        self._intents: dict[str, Intent] = {i.name: i for i in self._core}
        self._class_flows: dict[str, FlowSpec] = {}
        self._file_flows: dict[Path, tuple[tuple[int, int], FlowSpec]] = {}
        self._snapshot: tuple[Hashable, AppSnapshot] | None = None
        self._broken_files: dict[Path, tuple[int, int]] = {}
        self._extra_files: list[Path] = []

    def __repr__(self) -> str:
        return f"<App {self.name!r}>"

    @property
    def migration_locations(self) -> tuple[Path, ...]:
        """The folders of the app's own migration branch (empty: framework tables only)."""
        return (self.migrations,) if self.migrations is not None else ()

    # what the app brings besides flows --------------------------------------------------
    def add_goal(self, goal: Goal | str) -> Goal:
        """Declare a conversion goal (a name, or a :class:`analytics.goals.Goal`)."""
        declared = goal if isinstance(goal, Goal) else Goal(goal)
        if declared.name in self.goals:
            raise ValueError(f"goal {declared.name!r} is already declared")
        self.goals[declared.name] = declared
        return declared

    def add_console_page(self, page: object) -> None:
        """Add a console page (a ``bot.console.ConsolePage``)."""
        self.console_pages.append(page)

    def add_command(self, command: object) -> None:
        """Add a click command (or group) to the app's ``nyala`` command line."""
        self.commands.append(command)

    def add_route(self, route: object) -> None:
        """Add a web route (a ``bot.web.Route``) to ``nyala serve``."""
        self.routes.append(route)

    def lifespan(self, function: L) -> L:
        """Register a start-up/shutdown function (use as a decorator).

        For example::

            @app.lifespan
            async def payments(runtime: Runtime) -> AsyncIterator[None]:
                provider = runtime.services.provide(PaymentProvider, make_provider(runtime))
                yield
                await provider.close()
        """
        self.lifespans.append(function)
        return function

    # registration -----------------------------------------------------------------------
    def _register(self, table: dict[str, Any], kind: str, name: str | None) -> Callable[[F], F]:
        def decorator(function: F) -> F:
            key = name if name is not None else function.__name__
            if key in table:
                raise ValueError(f"{kind} {key!r} is already registered")
            if kind == "validator" and key in BUILTIN_VALIDATORS:
                raise ValueError(f"validator {key!r} is built in; choose another name")
            table[key] = function
            return function

        return decorator

    @overload
    def action(self, name: F, /) -> F: ...
    @overload
    def action(self, name: str | None = None, /) -> Callable[[F], F]: ...
    def action(self, name: F | str | None = None, /) -> F | Callable[[F], F]:
        """Register an action: ``async def f(ctx: FlowContext) -> None``.

        Use as ``@app.action``, ``@app.action()`` or ``@app.action("name")``.
        """
        if callable(name):
            return self._register(self.registry.actions, "action", None)(name)
        return self._register(self.registry.actions, "action", name)

    @overload
    def query(self, name: F, /) -> F: ...
    @overload
    def query(self, name: str | None = None, /) -> Callable[[F], F]: ...
    def query(self, name: F | str | None = None, /) -> F | Callable[[F], F]:
        """Register a query: returns options for a list, or a value for a prompt."""
        if callable(name):
            return self._register(self.registry.queries, "query", None)(name)
        return self._register(self.registry.queries, "query", name)

    @overload
    def condition(self, name: F, /) -> F: ...
    @overload
    def condition(self, name: str | None = None, /) -> Callable[[F], F]: ...
    def condition(self, name: F | str | None = None, /) -> F | Callable[[F], F]:
        """Register a guard: ``def f(ctx: FlowContext) -> bool`` (may be async)."""
        if callable(name):
            return self._register(self.registry.conditions, "condition", None)(name)
        return self._register(self.registry.conditions, "condition", name)

    @overload
    def validator(self, name: F, /) -> F: ...
    @overload
    def validator(self, name: str | None = None, /) -> Callable[[F], F]: ...
    def validator(self, name: F | str | None = None, /) -> F | Callable[[F], F]:
        """Register a validator factory: ``def f(**params) -> Validator``."""
        if callable(name):
            return self._register(self.registry.validators, "validator", None)(name)
        return self._register(self.registry.validators, "validator", name)

    def intent(
        self,
        name: str,
        keywords: Iterable[str],
        *,
        flow: str | None = None,
        handler: IntentHandler | None = None,
        description: str = "",
    ) -> Intent:
        """Add a global intent: ``keywords`` start ``flow`` or run ``handler`` anywhere.

        With no keywords the intent is tap-only: its reply id ``intent:<name>`` (on a
        button or an approved template's quick reply) is the only way to it.
        """
        if flow is None and handler is None:
            raise ValueError(f"intent {name!r} needs a flow or a handler")
        words = [normalize(k) for k in keywords]
        # No keywords: a tap-only intent, reached by its reply id ``intent:<name>`` (a
        # button or a template's quick reply), never by typing, never listed in help.
        label = words[0] if words else ""
        intent = Intent(name, frozenset(words), flow, handler, description, label=label)
        self._intents[name] = intent
        return intent

    def add_menu_item(
        self,
        title: str,
        *,
        flow: str | None = None,
        intent: str | None = None,
        description: str | None = None,
    ) -> None:
        """Add a row to the main menu (at most ten rows fit in one WhatsApp list)."""
        if (flow is None) == (intent is None):
            raise ValueError("a menu item starts either a flow or an intent")
        if len(self.menu) >= 10:
            raise ValueError("the main menu holds at most 10 items")
        self.menu.append(MenuItem(title, flow, intent, description))

    def add_flow(self, flow: type[Flow] | FlowSpec) -> FlowSpec:
        """Add a flow written in Python (a :class:`Flow` subclass) or a compiled spec."""
        spec = flow if isinstance(flow, FlowSpec) else flow.to_spec()
        if spec.name in self._class_flows:
            raise ValueError(f"flow {spec.name!r} is already registered")
        self._class_flows[spec.name] = spec
        return spec

    def add_flow_file(self, path: Path | str) -> None:
        """Add one flow file (loaded lazily like the files in ``flows_dir``)."""
        self._extra_files.append(Path(path))

    # lookup -------------------------------------------------------------------------------
    def flow_files(self) -> list[Path]:
        """Every flow file of the application."""
        files = list(self._extra_files)
        if self.flows_dir is not None:
            if not self.flows_dir.is_dir():
                raise FlowDefinitionError("flows folder not found", path=self.flows_dir)
            files.extend(
                sorted(self.flows_dir.glob("*.yaml")) + sorted(self.flows_dir.glob("*.yml"))
            )
        return files

    def _load_file(self, path: Path) -> FlowSpec:
        try:
            stat = path.stat()
        except OSError as exc:
            raise FlowDefinitionError(f"cannot read the file: {exc.strerror}", path=path) from None
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._file_flows.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            spec = load_flow_file(path, self.registry)
        except FlowDefinitionError as exc:
            if cached is None:
                raise
            # Changed under a running server and now unreadable (half saved, or broken):
            # conversations go on with the version loaded before; said once per change.
            if self._broken_files.get(path) != key:
                self._broken_files[path] = key
                log.error("%s (still using the version loaded before)", exc)
            return cached[1]
        self._file_flows[path] = (key, spec)
        return spec

    @property
    def flows(self) -> dict[str, FlowSpec]:
        """Every flow by name: file flows (reloaded when their file changes) and classes."""
        result = dict(self._class_flows)
        for path in self.flow_files():
            spec = self._load_file(path)
            if spec.name in result:
                other = result[spec.name].source or "a Python class"
                raise FlowDefinitionError(
                    f"flow {spec.name!r} is also defined in {other}", path=path, key="flow"
                )
            result[spec.name] = spec
        return result

    def flow(self, name: str) -> FlowSpec:
        """The flow called ``name``."""
        flows = self.flows
        if name not in flows:
            raise UnknownFlowError(f"no flow called {name!r}; flows: {', '.join(sorted(flows))}")
        return flows[name]

    def check(self) -> None:
        """Load every flow and check the menu and intents; raises on the first problem."""
        flows = self.flows
        for item in self.menu:
            if item.flow and item.flow not in flows:
                raise UnknownFlowError(
                    f"menu item {item.title!r} names unknown flow {item.flow!r}"
                )
            if item.intent and item.intent not in self.intents:
                raise UnknownFlowError(
                    f"menu item {item.title!r} names unknown intent {item.intent!r}"
                )
        for intent in self.intents.values():
            if intent.flow and intent.flow not in flows:
                raise UnknownFlowError(
                    f"intent {intent.name!r} names unknown flow {intent.flow!r}"
                )

    @property
    def intents(self) -> dict[str, Intent]:
        """Core intents, the application's, and one per flow with ``triggers``."""
        return self._intents_of(self.flows)

    def _intents_of(self, flows: Mapping[str, FlowSpec]) -> dict[str, Intent]:
        result = dict(self._intents)
        for spec in flows.values():
            if spec.triggers and spec.name not in result:
                result[spec.name] = Intent(
                    spec.name,
                    frozenset(normalize(t) for t in spec.triggers),
                    flow=spec.name,
                    description=spec.description,
                    label=normalize(spec.triggers[0]),
                )
        return result

    def snapshot(self) -> AppSnapshot:
        """The flows, intents and menu as of now (the files are looked at once; a
        snapshot is reused while no file changed)."""
        flows = self.flows
        key = (
            tuple((name, id(spec)) for name, spec in flows.items()),
            tuple(id(intent) for intent in self._intents.values()),
            tuple(self.menu),
        )
        cached = self._snapshot
        if cached is not None and cached[0] == key:
            return cached[1]
        core = {i.name: i for i in self._core}
        snapshot = AppSnapshot(
            flows=flows,
            intents=self._intents_of(flows),
            menu_items=tuple(self._menu_items_of(flows)),
            # Core intents the application did not replace with its own.
            core=frozenset(name for name, i in self._intents.items() if core.get(name) is i),
        )
        self._snapshot = (key, snapshot)
        return snapshot

    def match_intent(self, text: str, *, idle: bool) -> Intent | None:
        """The intent whose keywords equal the normalised ``text``, if any."""
        return self.snapshot().match_intent(text, idle=idle)

    def menu_items(self) -> list[MenuItem]:
        """The main menu: flows whose file sets ``menu:``, then items added by code."""
        return self._menu_items_of(self.flows)

    def _menu_items_of(self, flows: Mapping[str, FlowSpec]) -> list[MenuItem]:
        listed = {item.flow for item in self.menu}
        items = [
            MenuItem(spec.menu_title, flow=spec.name, description=spec.description or None)
            for spec in flows.values()
            if spec.menu_title and spec.name not in listed
        ]
        return [*items, *self.menu][:10]

    def menu_options(self) -> list[Option]:
        """The main menu as options (rows or buttons)."""
        return self.snapshot().menu_options()

    def today(self, now: dt.datetime) -> dt.date:
        """The business's calendar date at ``now``."""
        return now.astimezone(self.timezone).date()
