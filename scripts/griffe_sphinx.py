"""A griffe extension for the API reference: reST docstrings shown as the Markdown they mean.

The docstrings are written for Sphinx and for ``help()``; mkdocstrings renders their text as
Markdown, where some reST reads as noise. Each docstring is rewritten as it is loaded:

- A role (``:class:`~instax_async.AsyncSession```, ``:meth:`aclose```) becomes the code span a
  reader expects (``AsyncSession``: a leading ``~`` keeps the last part only, as Sphinx does).
- A literal block (a paragraph ending in ``::``, then an indented block) becomes a fenced code
  block, Python when it parses as Python; the ``::`` becomes ``:`` (or goes, when it stands
  alone or after a space), as Sphinx shows it.
- A doctest block (``>>>`` lines and their output) becomes a fenced ``pycon`` block without its
  ``# doctest:`` directives, which are for the test runner, not the reader.
- Text after the field list (``:param …:``, ``:raises …:``) moves above it: the Sphinx parser
  would read it as part of the last field, and the class's example would land in the last row of
  its parameter table.
"""

from __future__ import annotations

import ast
import re
import textwrap
from typing import Any

import griffe

__all__ = ["SphinxToMarkdown", "rewrite"]

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|data|exc|obj|const):`(?P<target>[^`]+)`")
_FIELD = re.compile(
    r"^:(?:param|parameter|arg|argument|key|keyword|type|var|ivar|cvar|vartype|returns?|rtype"
    r"|raises?|except|exception)\b[^:]*:"
)
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_DOCTEST_DIRECTIVE = re.compile(r"\s*#\s*doctest:.*$")


def _code(match: re.Match[str]) -> str:
    target = match["target"]
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"``{target}``"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _language(code: str) -> str:
    try:
        ast.parse(code)
    except SyntaxError:
        return "text"
    return "python"


def _fenced(indent: int, language: str, code: list[str]) -> list[str]:
    pad = " " * indent
    body = [pad + line if line else "" for line in code]
    return ["", f"{pad}```{language}", *body, f"{pad}```", ""]


def _literal_blocks(lines: list[str]) -> list[str]:
    out: list[str] = []
    i, fence = 0, ""
    while i < len(lines):
        line = lines[i]
        opened = _FENCE.match(line)
        if fence or opened:
            if opened and not fence:
                fence = opened[1]
            elif opened and opened[1].startswith(fence):
                fence = ""
            out.append(line)
            i += 1
            continue
        if line.rstrip().endswith("::"):
            base = _indent(line)
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            end = j
            while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
                end += 1
            while end > j and not lines[end - 1].strip():
                end -= 1
            if end > j:
                text = line.rstrip()
                if text.strip() != "::":
                    out.append(text[:-3] if text.endswith(" ::") else text[:-1])
                code = textwrap.dedent("\n".join(lines[j:end])).split("\n")
                out.extend(_fenced(base, _language("\n".join(code)), code))
                i = end
                continue
        out.append(line)
        i += 1
    return out


def _doctest_blocks(lines: list[str]) -> list[str]:
    out: list[str] = []
    i, fence = 0, ""
    while i < len(lines):
        line = lines[i]
        opened = _FENCE.match(line)
        if fence or opened:
            if opened and not fence:
                fence = opened[1]
            elif opened and opened[1].startswith(fence):
                fence = ""
            out.append(line)
            i += 1
            continue
        if line.lstrip().startswith(">>>"):
            base = _indent(line)
            end = i
            while end < len(lines) and lines[end].strip():
                end += 1
            code = [_DOCTEST_DIRECTIVE.sub("", text[base:]) for text in lines[i:end]]
            code = [text for text in code if text != "..."]  # a line that held a directive
            out.extend(_fenced(base, "pycon", code))
            i = end
            continue
        out.append(line)
        i += 1
    return out


def _fields_last(lines: list[str]) -> list[str]:
    text: list[str] = []
    fields: list[str] = []
    in_field = False
    for i, line in enumerate(lines):
        if _FIELD.match(line):
            in_field = True
        elif in_field and line.strip() and _indent(line) == 0:
            in_field = False  # back at the margin: the field list has ended
        elif in_field and not line.strip():
            following = next((t for t in lines[i + 1 :] if t.strip()), "")
            in_field = _indent(following) > 0 or bool(_FIELD.match(following))
        (fields if in_field else text).append(line)
    while text and not text[-1].strip():
        text.pop()
    return [*text, "", *fields] if fields and text else [*text, *fields]


def _one_blank_line(lines: list[str]) -> list[str]:
    """No run of blank lines outside code, none at either end."""
    out: list[str] = []
    fence = ""
    for line in lines:
        opened = _FENCE.match(line)
        if opened and not fence:
            fence = opened[1]
        elif opened and opened[1].startswith(fence):
            fence = ""
        elif not fence and not line.strip() and (not out or not out[-1].strip()):
            continue
        out.append(line)
    while out and not out[-1].strip():
        out.pop()
    return out


def rewrite(docstring: str) -> str:
    """The Markdown mkdocstrings should render for a reST ``docstring``."""
    lines = _ROLE.sub(_code, docstring).split("\n")
    return "\n".join(_one_blank_line(_fields_last(_doctest_blocks(_literal_blocks(lines)))))


class SphinxToMarkdown(griffe.Extension):
    """Rewrite every docstring as it is loaded."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
