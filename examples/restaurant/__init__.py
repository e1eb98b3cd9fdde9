"""Msasa Grill, the restaurant example (``nyala --app examples/restaurant``)."""
