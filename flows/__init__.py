"""The flow framework: conversations as python-statemachine machines.

Write a bot by creating an :class:`App`, registering actions, queries, conditions and
validators on it, and adding flows as YAML files or :class:`Flow` classes; the
:class:`Engine` runs them over a database.
"""

from flows.app import App, AppSnapshot, Intent, MenuItem
from flows.context import FlowContext
from flows.copy import Copy, CopyError
from flows.engine import ContactRef, Engine, release_handoff
from flows.errors import ActionError, FlowDefinitionError, FlowError, UnknownFlowError
from flows.flow import Flow
from flows.loader import load_flow_file, load_flow_text
from flows.messages import (
    Buttons,
    Document,
    ListMenu,
    LocationPin,
    Option,
    Reply,
    Template,
    Text,
    UserMessage,
)
from flows.outreach import TemplateRef
from flows.runtime import Runtime, ServiceNotFoundError, Services
from flows.spec import Expect, FlowSpec, Step
from flows.validators import Accepted, Rejected, ValidationContext

__all__ = [
    "Accepted",
    "ActionError",
    "App",
    "AppSnapshot",
    "Buttons",
    "ContactRef",
    "Copy",
    "CopyError",
    "Document",
    "Engine",
    "Expect",
    "Flow",
    "FlowContext",
    "FlowDefinitionError",
    "FlowError",
    "FlowSpec",
    "Intent",
    "ListMenu",
    "LocationPin",
    "MenuItem",
    "Option",
    "Rejected",
    "Reply",
    "Runtime",
    "ServiceNotFoundError",
    "Services",
    "Step",
    "Template",
    "TemplateRef",
    "Text",
    "UnknownFlowError",
    "UserMessage",
    "ValidationContext",
    "load_flow_file",
    "load_flow_text",
    "release_handoff",
]
