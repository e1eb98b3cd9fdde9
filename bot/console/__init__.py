"""The operator console: a secure web app under ``/console`` of ``nyala serve``.

Staff log in with operator accounts (``nyala operator create``) and run their day from the
browser: flow analytics, conversations handed to a person, the outbox, a chat simulator,
and the pages the selected app adds (:class:`ConsolePage`).
"""

from bot.console.accounts import FirstAdmin, create_operator, ensure_first_admin
from bot.console.app import build_console, setup
from bot.console.page import Attention, ConsolePage, ContactFact, navigation

__all__ = [
    "Attention",
    "ConsolePage",
    "ContactFact",
    "FirstAdmin",
    "build_console",
    "create_operator",
    "ensure_first_admin",
    "navigation",
    "setup",
]
