"""Reading spec and workflow files: YAML with limits, checked before anything is built.

A spec is small (a few dozen lines), so anything far beyond that is refused with one line
before it can cost time or memory:

* the file's size (:data:`MAX_BYTES`);
* the nesting depth, counted on the parser's events, which are produced without recursion
  (a 5000-deep document would otherwise end in a ``RecursionError``);
* the size of the document with every alias expanded (:data:`MAX_NODES`): a few lines of
  nested aliases ("billion laughs") name 10⁹ values, which a ``json.dumps`` of the spec or a
  ``str()`` of its name would then walk for minutes; and alias cycles.

Two YAML 1.1 surprises of PyYAML's ``SafeLoader`` are changed to what a reader expects (the
YAML 1.2 core schema): ``1.0e6``, ``1e-3`` and ``1e6`` are numbers, not strings; and
``2024-01-01`` stays a string (no dates: a spec has none, and a date is not JSON). A key given
twice in one mapping is an error naming the key's field and both lines (PyYAML keeps the last).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import SpecError

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "expand_home",
    "parse_yaml",
    "read_yaml",
    "spec_file",
]

MAX_BYTES = 4 * 2**20
"""Largest spec file read (4 MiB; the shipped workflows are under 4 KiB)."""

MAX_DEPTH = 32
"""Deepest nesting of mappings and lists (specs use at most 5), aliases expanded."""

MAX_NODES = 250_000
"""Most values in a document with every alias expanded (an explicit 1024 × 1024 grid's two
axis lists are 2048)."""

_FLOAT_TAG = "tag:yaml.org,2002:float"
_DROPPED_TAGS = (_FLOAT_TAG, "tag:yaml.org,2002:timestamp")
# YAML 1.2 core-schema floats (PyYAML's 1.1 pattern wants a dot and a signed exponent, so
# `1.0e6` and `1e6` were strings), plus PyYAML's `_` digit separators
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)
        |[-+]?(?:[0-9][0-9_]*)\.[0-9_]*
        |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _Loader(yaml.SafeLoader):
    """SafeLoader with the float and timestamp resolvers above (its own copy: PyYAML's
    loaders stay unchanged)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_FLOAT_TAG, _FLOAT_RE, list("-+0123456789."))


def expand_home(path: str, field_name: str) -> str:
    """``path`` with a leading ``~`` or ``~user`` expanded; :class:`SpecError` on
    ``field_name`` when that user (or, for ``~``, HOME) is unknown."""
    import os

    out = os.path.expanduser(path)
    if out.startswith("~"):
        user = path[1:].split("/", 1)[0] or "(HOME unset)"
        raise SpecError(
            field_name, f"value {path!r}: no home folder for user {user!r}; give another path"
        )
    return out


def spec_file(path: str | Path) -> Path:
    """``path`` (``~`` expanded) as a Path; :class:`SpecError` when it is missing, not a
    regular file, or larger than :data:`MAX_BYTES`."""
    import stat

    p = Path(expand_home(str(path), "<file>"))
    try:
        st = p.stat()
    except FileNotFoundError:
        raise SpecError("<file>", f"spec file {str(p)!r} does not exist") from None
    except OSError as e:  # a symbolic link loop, a name too long, no permission
        raise SpecError("<file>", f"spec file {str(p)!r} cannot be read ({e.strerror})") from e
    if stat.S_ISDIR(st.st_mode):
        raise SpecError("<file>", f"{str(p)!r} is a directory; give a spec (YAML) file")
    if not stat.S_ISREG(st.st_mode):
        raise SpecError(
            "<file>",
            f"{str(p)!r} is not a regular file (a device, a FIFO, a socket); "
            "give a spec (YAML) file",
        )
    size = st.st_size
    if size > MAX_BYTES:
        raise SpecError(
            "<file>", f"{str(p)!r} is {size:,} bytes; a spec file is at most {MAX_BYTES:,}"
        )
    return p


def read_yaml(path: str | Path) -> Any:
    """The YAML document in the file ``path`` (:func:`spec_file`, :func:`parse_yaml`)."""
    p = spec_file(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as e:
        raise SpecError("<file>", f"{str(p)!r} cannot be read as UTF-8 text ({e})") from e
    return parse_yaml(text, str(p))


def parse_yaml(text: str, name: str = "<string>") -> Any:
    """The one YAML document in ``text`` (``None`` when empty), within the module's limits.

    Raises :class:`SpecError` (field ``<file>``, or the dotted field of a duplicate key) for
    malformed YAML, a document over the limits, or a key given twice.
    """
    if len(text) > MAX_BYTES:
        raise SpecError("<file>", f"{name!r} is over {MAX_BYTES:,} characters")
    try:
        _check_depth(text, name)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _NodeCheck(name).walk(node, "", 0)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError("<file>", f"{name!r} is not valid YAML{where}: {problem}") from e


def _check_depth(text: str, name: str) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise SpecError(
                    "<file>",
                    f"{name!r} nests more than {MAX_DEPTH} levels deep (line {line}); "
                    "a spec needs at most 5",
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


class _NodeCheck:
    """One pass over the composed node graph: the expanded size and depth (each node once,
    memoised, so an alias bomb costs its text, not its expansion), alias cycles, and keys
    given twice."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.size: dict[int, int] = {}
        self.depth: dict[int, int] = {}
        self.open: set[int] = set()

    def walk(self, node: yaml.Node, path: str, level: int) -> tuple[int, int]:
        """(expanded node count, expanded depth) of ``node``; raises past the limits."""
        key = id(node)
        if key in self.size:
            size, depth = self.size[key], self.depth[key]
            if level + depth > MAX_DEPTH:
                raise SpecError(
                    path or "<top>",
                    f"{self.name!r}: nested more than {MAX_DEPTH} levels deep (aliases expanded)",
                )
            return size, depth
        if key in self.open:
            raise SpecError(path or "<top>", f"{self.name!r}: an alias refers to itself")
        if level > MAX_DEPTH:
            raise SpecError(
                path or "<top>",
                f"{self.name!r}: nested more than {MAX_DEPTH} levels deep (aliases expanded)",
            )
        self.open.add(key)
        size, depth = 1, 0
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    field = f"{path}.{k.value}" if path else str(k.value)
                    if (k.tag, k.value) in seen:
                        raise SpecError(
                            field,
                            f"given twice in {self.name!r} (lines {seen[(k.tag, k.value)]} "
                            f"and {k.start_mark.line + 1}); keep one",
                        )
                    seen[(k.tag, k.value)] = k.start_mark.line + 1
                else:
                    field = path
                for child in (k, v):
                    s, d = self.walk(child, field, level + 1)
                    size, depth = size + s, max(depth, d + 1)
        elif isinstance(node, yaml.SequenceNode):
            for i, child in enumerate(node.value):
                s, d = self.walk(child, f"{path}[{i}]", level + 1)
                size, depth = size + s, max(depth, d + 1)
        self.open.discard(key)
        if size > MAX_NODES:
            raise SpecError(
                path or "<top>",
                f"{self.name!r} holds over {MAX_NODES:,} values with its aliases expanded "
                f"(here {size:,}); a spec needs a few dozen",
            )
        self.size[key], self.depth[key] = size, depth
        return size, depth
