"""Admin pages: operator accounts and the audit log."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from bot.console.accounts import (
    BadUsernameError,
    create_operator,
    list_operators,
    set_active,
    set_password,
)
from bot.console.filters import PAGE_SIZE, Filters, page_of
from bot.console.passwords import WeakPasswordError
from bot.console.web import db_of, me, redirect, render, requires
from storage import AuditEntry, ConflictError, NotFoundError
from storage.operators import OperatorRole

routes = web.RouteTableDef()
ROLES = [r.value for r in OperatorRole]


@routes.get("/operators")
@requires(OperatorRole.ADMIN)
async def operators_page(request: web.Request) -> web.StreamResponse:
    """Every operator account, and a form to add one."""
    operators = await list_operators(db_of(request))
    return render(
        request, "operators.html", {"title": "Operators", "operators": operators, "all": ROLES}
    )


@routes.post("/operators")
@requires(OperatorRole.ADMIN)
async def operators_create(request: web.Request) -> web.StreamResponse:
    """Add an operator."""
    form = await request.post()
    role = str(form.get("role") or "")
    if role not in ROLES:
        return redirect("/console/operators", "Choose a role.", kind="error")
    try:
        created = await create_operator(
            db_of(request),
            str(form.get("username") or ""),
            str(form.get("password") or ""),
            OperatorRole(role),
            actor=me(request).username,
        )
    except (BadUsernameError, WeakPasswordError, ConflictError) as exc:
        return redirect("/console/operators", f"Not created: {exc}.", kind="error")
    return redirect("/console/operators", f"Created {created.username} ({role}).")


@routes.post("/operators/{username}/password")
@requires(OperatorRole.ADMIN)
async def operators_password(request: web.Request) -> web.StreamResponse:
    """Set an operator's password (their sessions end)."""
    form = await request.post()
    username = request.match_info["username"]
    try:
        await set_password(
            db_of(request), username, str(form.get("password") or ""), actor=me(request).username
        )
    except (BadUsernameError, WeakPasswordError, NotFoundError) as exc:
        return redirect("/console/operators", f"Not changed: {exc}.", kind="error")
    return redirect("/console/operators", f"Password of {username} changed; they log in again.")


@routes.post("/operators/{username}/active")
@requires(OperatorRole.ADMIN)
async def operators_active(request: web.Request) -> web.StreamResponse:
    """Disable or enable an operator (never yourself)."""
    form = await request.post()
    username = request.match_info["username"]
    active = form.get("active") == "1"
    if username == me(request).username and not active:
        return redirect("/console/operators", "You cannot disable yourself.", kind="error")
    try:
        await set_active(db_of(request), username, active=active, actor=me(request).username)
    except (BadUsernameError, NotFoundError) as exc:
        return redirect("/console/operators", f"Not changed: {exc}.", kind="error")
    return redirect("/console/operators", f"{username} {'enabled' if active else 'disabled'}.")


@routes.get("/audit")
@requires(OperatorRole.ADMIN)
async def audit_log(request: web.Request) -> web.StreamResponse:
    """Who did what, when: newest first, filtered by person, action or target."""
    filters = Filters(request)
    actor = filters.text("actor", max_length=120)
    action = filters.text("action", max_length=80)
    target = filters.text("target", max_length=200)
    number = filters.page()
    query = select(AuditEntry)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        query = query.where(AuditEntry.action == action)
    if target:
        query = query.where(AuditEntry.target == target)
    query = (
        query.order_by(AuditEntry.id.desc()).limit(PAGE_SIZE + 1).offset((number - 1) * PAGE_SIZE)
    )
    async with db_of(request).read() as session:
        rows = list(await session.scalars(query))
    return render(
        request,
        "audit.html",
        {
            "title": "Audit log",
            "rows": rows,
            "page": page_of(filters, rows, number),
            "actor": actor or "",
            "action": action or "",
            "target": target or "",
        },
    )
