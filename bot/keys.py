"""Typed keys of the server application's state (``web.AppKey``), in one module that
imports no web handler: the server sets them, the console, the channel and the apps'
routes read them, and nothing imports the server to reach them."""

from __future__ import annotations

from aiohttp import web

from bot.metrics import Metrics
from bot.settings import Settings
from flows import App, Engine
from flows.runtime import Runtime
from storage import Database

__all__ = ["DATABASE", "ENGINE", "FLOW_APP", "METRICS", "RUNTIME", "SETTINGS"]

SETTINGS = web.AppKey("settings", Settings)
FLOW_APP = web.AppKey("flow_app", App)
DATABASE = web.AppKey("database", Database)
METRICS = web.AppKey("metrics", Metrics)
ENGINE = web.AppKey("engine", Engine)
RUNTIME = web.AppKey("runtime", Runtime)
