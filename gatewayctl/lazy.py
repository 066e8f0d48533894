"""The root command group, built lazily: typer inspects every parameter of every command when it
builds a click command, which is most of a command's start-up time once imports are lean. The root
knows each sub-command's name and one-line help up front and builds a sub-command only when it is
run, completed or asked for its own help. `gatewayctl --help` builds none of them.

The full Typer app in main.py stays the one source of truth: the loaders are derived from its
registered commands and groups (and tests build it whole, e.g. to check the README).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

Loader = Callable[[], Any]


class _LazyCommands(MutableMapping[str, Any]):
    """name -> click command; every name is known, a command is built on first access."""

    def __init__(self, loaders: dict[str, Loader]) -> None:
        self._loaders = loaders
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            command = self._loaders[name]()
            command.name = name
            self._built[name] = command
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        self._built.pop(name, None)
        self._loaders.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)


class LazyGroup(TyperGroup):
    """A TyperGroup whose sub-commands come from a _LazyCommands and whose help lists them unbuilt."""

    short_help: dict[str, str]

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        width = formatter.width - 6 - max(len(name) for name in self.commands)
        rows = [(name, _shorten(self.short_help.get(name, ""), width)) for name in self.commands]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _shorten(text: str, width: int) -> str:
    first = text.strip().split("\n\n")[0].replace("\n", " ")
    return first if len(first) <= width else first[: width - 3].rstrip() + "..."


def _single(name: str, info: Any) -> Loader:
    def load() -> Any:
        holder = typer.Typer(rich_markup_mode=None, add_completion=False)
        holder.registered_commands.append(info)
        return typer.main.get_command(holder)

    return load


def _group(sub: typer.Typer) -> Loader:
    return lambda: typer.main.get_group(sub)


def build(full: typer.Typer, root_callback: Callable[..., Any]) -> Any:
    """A click group equal to `full` (same commands, root options and help) that builds lazily."""
    loaders: dict[str, Loader] = {}
    helps: dict[str, str] = {}
    for info in full.registered_commands:
        name = info.name or info.callback.__name__
        loaders[name] = _single(name, info)
        helps[name] = info.help or (info.callback.__doc__ or "")
    for info in full.registered_groups:
        sub = info.typer_instance
        loaders[info.name] = _group(sub)
        helps[info.name] = info.help or sub.info.help or ""
    root = typer.Typer(
        cls=LazyGroup,
        help=full.info.help,
        no_args_is_help=True,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
    )
    root.callback()(root_callback)
    group = typer.main.get_command(root)
    group.commands = _LazyCommands(loaders)
    group.short_help = helps
    return group
