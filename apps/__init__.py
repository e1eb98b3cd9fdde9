"""The applications built on Nyala, one package each (``apps.safari``: the built-in bot)."""
