"""The operator console: a secure web app under ``/console`` of ``nyala serve``.

Staff log in with operator accounts (``nyala operator create``) and run their day from the
browser: flow analytics, bookings, payments and receipts, conversations handed to a
person, the outbox, pre-tour summaries and a chat simulator.
"""

from aiohttp import web

from bot.console.accounts import FirstAdmin, create_operator, ensure_first_admin


def setup(app: web.Application) -> None:
    """Mount the console under ``/console`` of the server application ``app``."""
    # Imported here: the pages use the server's application keys (bot.server imports us).
    from bot.console.app import setup as mount

    mount(app)


__all__ = ["FirstAdmin", "create_operator", "ensure_first_admin", "setup"]
