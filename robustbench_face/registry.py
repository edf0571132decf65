"""Name -> factory registries for victims, attacks, defenses and datasets.

Built-ins live one module per plugin under ``robustbench_face.<kind>s`` and register
themselves with ``@VICTIMS.register("name")``; they are imported the first time a
registry is asked anything, so ``import robustbench_face`` stays cheap.
Third-party plugins come in through the entry-point groups ``robustbench_face.victims``,
``.attacks``, ``.defenses`` and ``.datasets``; an entry point's name is the plugin name
and its object is the factory. Entry points are loaded on first use, and one that fails
to load warns with its name and is skipped, so a broken plugin never takes the registry
down (xarray's backend discovery works the same way).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
import warnings
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable

from .errors import PluginError, UnknownNameError

log = logging.getLogger(__name__)


@dataclass
class Entry:
    name: str
    factory: Callable[..., Any]
    summary: str
    source: str  # "builtin" or the distribution/entry point that provided it

    @property
    def module(self) -> str:
        """The module that defines the factory: for built-ins also the name of its card."""
        return getattr(self.factory, "__module__", "") or ""

    @property
    def card(self) -> str | None:
        """The card a built-in is described by (``<kind>s/<module name>.toml``), else None."""
        mod = self.module
        if self.source != "builtin" or not mod.startswith("robustbench_face."):
            return None
        return getattr(self.factory, "card", None) or mod.rpartition(".")[2]


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


class Registry:
    """One small registry per plugin kind (see module docstring)."""

    def __init__(self, kind: str, builtin_package: str):
        self.kind = kind
        self.group = f"robustbench_face.{kind}s"
        self.builtin_package = builtin_package
        self._entries: dict[str, Entry] = {}
        self._pending: dict[str, EntryPoint] = {}
        self._discovered = False
        self._discovering = False

    # -- registration -----------------------------------------------------------------
    def register(self, name: str | None = None, *, summary: str | None = None):
        """Decorator: ``@VICTIMS.register("osnet_x0_25")``. A duplicate name raises.

        Without a name, a class registers under its ``name`` attribute, a function under its
        ``__name__``.
        """

        def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
            key = name or getattr(factory, "name", None) or factory.__name__
            self._add(Entry(key, factory, summary or _first_line(factory), "builtin"))
            return factory

        return deco

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests and notebooks that register temporary plugins)."""
        self._entries.pop(name, None)
        self._pending.pop(name, None)

    def _add(self, entry: Entry) -> None:
        if entry.name in self._entries or entry.name in self._pending:
            raise PluginError(
                f"duplicate {self.kind} name {entry.name!r}: already registered by "
                f"{self._source_of(entry.name)}, registered again by {entry.source}"
            )
        self._entries[entry.name] = entry

    def _source_of(self, name: str) -> str:
        if name in self._entries:
            return self._entries[name].source
        ep = self._pending[name]
        return f"entry point {ep.value!r}"

    # -- discovery --------------------------------------------------------------------
    def _discover(self) -> None:
        if self._discovered or self._discovering:
            return
        self._discovering = True
        try:
            pkg = importlib.import_module(self.builtin_package)
            for mod in pkgutil.iter_modules(pkg.__path__):
                if not mod.name.startswith("_"):
                    importlib.import_module(f"{self.builtin_package}.{mod.name}")
            self._discover_entry_points()
            self._discovered = True
        finally:
            self._discovering = False

    def _discover_entry_points(self) -> None:
        seen: dict[str, EntryPoint] = {}
        for ep in entry_points(group=self.group):
            if ep.name in self._entries or ep.name in seen:
                other = self._source_of(ep.name) if ep.name in self._entries else seen[ep.name].value
                warnings.warn(
                    f"{self.kind} plugin {ep.name!r} from entry point {ep.value!r} skipped: "
                    f"the name is already taken by {other}",
                    stacklevel=3,
                )
                continue
            seen[ep.name] = ep
        self._pending.update(seen)

    def _load_pending(self, name: str) -> Entry | None:
        ep = self._pending.pop(name)
        try:
            factory = ep.load()
        except Exception as exc:  # a plugin may fail in any way; it must not take us down
            warnings.warn(
                f"{self.kind} plugin {name!r} ({ep.value}) failed to load and is skipped: "
                f"{type(exc).__name__}: {exc}",
                stacklevel=3,
            )
            return None
        if not callable(factory):
            warnings.warn(f"{self.kind} plugin {name!r} ({ep.value}) is not callable; skipped",
                          stacklevel=3)
            return None
        entry = Entry(name, factory, _first_line(factory), f"entry point {ep.value!r}")
        self._entries[name] = entry
        return entry

    # -- lookup -----------------------------------------------------------------------
    def get(self, name: str) -> Entry:
        self._discover()
        if name in self._entries:
            return self._entries[name]
        if name in self._pending:
            entry = self._load_pending(name)
            if entry is not None:
                return entry
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}; available: {', '.join(self.names()) or '(none)'}"
        )

    def names(self) -> list[str]:
        self._discover()
        return sorted(set(self._entries) | set(self._pending))

    def entries(self) -> list[Entry]:
        """Every loadable entry (pending entry points are loaded, broken ones skipped)."""
        self._discover()
        for name in list(self._pending):
            self._load_pending(name)
        return [self._entries[n] for n in sorted(self._entries)]

    def __contains__(self, name: str) -> bool:
        return name in self.names()


VICTIMS = Registry("victim", "robustbench_face.victims")
ATTACKS = Registry("attack", "robustbench_face.attacks")
DEFENSES = Registry("defense", "robustbench_face.defenses")
DATASETS = Registry("dataset", "robustbench_face.datasets")
REGISTRIES = {"victims": VICTIMS, "attacks": ATTACKS, "defenses": DEFENSES, "datasets": DATASETS}
