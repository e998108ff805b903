"""A Griffe extension: aiopod's docstrings use reStructuredText's roles and literal
blocks; the site renders Markdown.  Before mkdocstrings renders a docstring this turns

* a role, ``:class:`~aiopod.events.bus.Lagged``` or ``:meth:`title <target>```, into a
  cross-reference to the target (an *optional* one: a target the site does not document,
  such as an internal module, stays plain code, never a broken link or a warning);
* a literal block (a paragraph ending in ``::`` and the indented lines after it) into a
  fenced code block;
* ``:raises ~x.y.Error:`` into ``:raises x.y.Error:`` (the short form is Sphinx's).

The docstrings themselves do not change (they read well in ``help()`` and editors).
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?[a-z]+:`(?P<tilde>~?)(?P<text>[^`]+)`")
_EXPLICIT = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^>]+)>$")


def _reference(match: re.Match[str], obj: griffe.Object) -> str:
    text = match["text"].strip()
    explicit = _EXPLICIT.match(text)
    if explicit:
        title, target = explicit["title"], explicit["target"]
    else:
        target = text.rstrip("()")
        title = target.rsplit(".", 1)[-1] if match["tilde"] else target
        title += "()" if text.endswith("()") else ""
    if "." not in target:
        try:
            target = obj.resolve(target)
        except Exception:  # a name the object's scope does not know: plain code
            return f"`{title}`"
    return (
        f'<autoref identifier="{html.escape(target)}" optional>'
        f"<code>{html.escape(title)}</code></autoref>"
    )


def _literal_blocks(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.rstrip()
        if stripped.endswith("::") and i + 1 < len(lines) and not lines[i + 1].strip():
            indent = len(line) - len(line.lstrip())
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            block_start = j
            block_indent = len(lines[j]) - len(lines[j].lstrip()) if j < len(lines) else 0
            if j < len(lines) and block_indent > indent:
                while j < len(lines) and (
                    not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) >= block_indent
                ):
                    j += 1
                while j > block_start and not lines[j - 1].strip():
                    j -= 1
                head = stripped[:-1].rstrip()
                if head.strip() and head.strip() != ":":
                    out.append(head)
                pad = " " * indent
                out += ["", f"{pad}```python"]
                out += [
                    pad + row[block_indent:] if row.strip() else "" for row in lines[block_start:j]
                ]
                out += [f"{pad}```"]
                i = j
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


class RestructuredText(griffe.Extension):
    """Roles and literal blocks of reStructuredText, as Markdown for mkdocstrings."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None:
            return
        value = _literal_blocks(obj.docstring.value).replace(":raises ~", ":raises ")
        obj.docstring.value = _ROLE.sub(lambda m: _reference(m, obj), value)
