"""Finding the application to run: ``module:attribute``, a module, or a folder/file."""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

from flows import App, FlowError


class AppNotFoundError(FlowError):
    """The ``--app`` value does not lead to a :class:`flows.App`."""


def _from_folder(path: Path, attribute: str) -> object:
    # The folder is imported as a package, so its app.py can import its siblings
    # (``from .models import Reservation``); loaded once per process.
    if not (path / "app.py").is_file():
        raise AppNotFoundError(f"no app.py in {path}")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]  # noqa: S324 - a name
    name = f"nyala_app_{digest}"
    if name not in sys.modules:
        init = path / "__init__.py"
        spec = (
            importlib.util.spec_from_file_location(
                name, init, submodule_search_locations=[str(path)]
            )
            if init.is_file()
            else importlib.machinery.ModuleSpec(name, None, is_package=True)
        )
        if spec is None:
            raise AppNotFoundError(f"cannot import {path}")
        spec.submodule_search_locations = [str(path)]
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        try:
            if spec.loader is not None:
                spec.loader.exec_module(package)
            importlib.import_module(f"{name}.app")
        except BaseException:
            for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                del sys.modules[loaded]
            raise
    return getattr(importlib.import_module(f"{name}.app"), attribute, None)


def _from_file(path: Path, attribute: str) -> object:
    if path.is_dir():
        return _from_folder(path, attribute)
    file = path
    if not file.is_file():
        raise AppNotFoundError(f"no app.py in {path}")
    digest = hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:8]  # noqa: S324 - a name
    name = f"nyala_app_{digest}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise AppNotFoundError(f"cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return getattr(module, attribute, None)


def load_app(target: str) -> App:
    """Load the :class:`flows.App` named by ``target``.

    ``package.module:attr`` and ``package.module`` (attribute ``app``) are imported;
    a path to a folder with ``app.py`` or to a ``.py`` file is loaded from disk.
    """
    location, _, attribute = target.partition(":")
    attribute = attribute or "app"
    path = Path(location)
    if location.endswith(".py") or path.is_dir() or "/" in location:
        if not path.exists():
            raise AppNotFoundError(f"app {target!r} not found: no such file or folder")
        found = _from_file(path, attribute)
    else:
        try:
            module = importlib.import_module(location)
        except ModuleNotFoundError as exc:
            # The app's own module missing is "not found"; a module it imports missing is
            # a broken app, said as such.
            missing = exc.name or ""
            if location == missing or location.startswith(missing + "."):
                raise AppNotFoundError(f"app {target!r} not found: {exc}") from None
            raise AppNotFoundError(f"app {target!r} cannot be imported: {exc}") from None
        found = getattr(module, attribute, None)
    if not isinstance(found, App):
        raise AppNotFoundError(f"{target!r} has no flows.App called {attribute!r}")
    return found
