"""Strict loading of ``params.yaml`` sections into frozen dataclasses.

Unknown or missing keys raise :class:`ParamsError` naming the key path (``train.optimizer.lr``), so a
misspelt key
never vanishes. Each stage module declares the sections it reads in ``PARAMS``; :class:`StageParams` refuses
to hand
out a section the stage did not declare, which keeps ``dvc.yaml`` honest (a test compares both).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ParamsError(ValueError):
    """A params file or section does not match its dataclass."""


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path``; a missing file or a non-mapping top level raises ParamsError."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    with path.open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    if not isinstance(data, Mapping):
        raise ParamsError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return dict(data)


def get_path(data: Mapping[str, Any], dotted: str, *, source: str = "params") -> Any:
    """Return ``data['a']['b']`` for ``dotted='a.b'``; a missing key raises naming the path."""
    node: Any = data
    walked: list[str] = []
    for part in dotted.split("."):
        walked.append(part)
        if not isinstance(node, Mapping) or part not in node:
            raise ParamsError(f"{source}: missing key '{'.'.join(walked)}'")
        node = node[part]
    return node


def from_mapping(cls: type[T], data: Any, path: str) -> T:
    """Build dataclass ``cls`` from ``data``, strictly (unknown or missing keys raise with ``path``)."""
    return typing.cast(T, _convert(cls, data, path))


def to_mapping(obj: Any) -> Any:
    """Inverse of :func:`from_mapping`: dataclasses to dicts, tuples to lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_mapping(v) for k, v in obj.items()}
    return obj


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ParamsError(f"{path}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise ParamsError(f"{path}: unknown key(s) {', '.join(f'{path}.{k}' for k in unknown)}")
        kwargs = {}
        for name, f in fields.items():
            if name in value:
                kwargs[name] = _convert(hints[name], value[name], f"{path}.{name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ParamsError(f"{path}: missing key '{path}.{name}'")
        return tp(**kwargs)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path)
            except ParamsError as e:
                errors.append(str(e))
        raise ParamsError(f"{path}: {value!r} matches none of {tp}: {'; '.join(errors)}")
    if origin is typing.Literal:
        if value not in args:
            raise ParamsError(f"{path}: {value!r} is not one of {list(args)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{path}: expected a list, got {type(value).__name__}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(value):
                raise ParamsError(f"{path}: expected {len(args)} items, got {len(value)}")
            return tuple(
                _convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        item = args[0] if args else Any
        items = [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ParamsError(f"{path}: expected a mapping, got {type(value).__name__}")
        vt = args[1] if args else Any
        return {k: _convert(vt, v, f"{path}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{path}: expected a string, got {value!r}")
        return value
    raise ParamsError(f"{path}: unsupported field type {tp!r}")


class StageParams:
    """The params sections one stage may read: ``section()`` refuses anything not in ``declared``."""

    def __init__(self, path: str | Path, declared: tuple[str, ...]):
        self.path = Path(path)
        self.declared = declared
        self.data = read_yaml(self.path)
        self.read: list[str] = []

    def section(self, name: str, cls: type[T]) -> T:
        """Load the (dotted) section ``name`` into ``cls``; it must be declared by the stage."""
        if not any(name == d or name.startswith(d + ".") for d in self.declared):
            raise ParamsError(
                f"{self.path}: stage reads '{name}' but declares only {list(self.declared)} "
                "(update PARAMS and dvc.yaml)"
            )
        self.read.append(name)
        return from_mapping(cls, get_path(self.data, name, source=str(self.path)), name)
