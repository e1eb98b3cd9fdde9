"""Errors of the analytics layer."""

from __future__ import annotations

from storage import NyalaError


class AnalyticsError(NyalaError):
    """A report or snapshot could not be produced as asked."""


class PeriodError(AnalyticsError, ValueError):
    """A date range that makes no sense: reversed, empty, or absurdly long."""
