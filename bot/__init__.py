"""The outside world: command line, terminal chat, settings (WhatsApp I/O and the console
arrive with their issues). The only package that knows HTTP and WhatsApp."""

from bot.apps import AppNotFoundError, load_app
from bot.settings import Settings

__all__ = ["AppNotFoundError", "Settings", "load_app"]
