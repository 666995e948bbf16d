"""Turn a literate Python module into an annotated page: notes on the left, code on the right.

How it works (used by `scripts/mkdocs_hooks.py` at build time; nothing is written to disk):

1. `sections(source)` walks the module line by line. Docstrings (found with `ast`, so only
   real module/class/function docstrings count) and `#` comment lines are *notes*; every
   other line is *code*. A run of notes followed by a run of code makes one section, so each
   comment sits beside the code it describes — labml's annotated-implementation layout.
   Blank lines stay with the code; `# noqa`-style pragmas and shebangs are dropped.
2. `page(module, source, ...)` renders the sections as Markdown with HTML containers
   (`md_in_html`): a two-column grid per section. Notes keep their Markdown and math
   (`$…$`, rendered by arithmatex + MathJax); code is a highlighted Python block, indented as
   in the file, under a link to the line of the repository file where it starts. (A header
   moved below its docstring makes a block non-contiguous, so blocks carry no line numbers.)
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

PRAGMA = re.compile(r"#\s*(noqa|type:|pragma|fmt:)")


@dataclass
class Section:
    notes: list[str] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    first_line: int = 1  # 1-based line number of the first code line


def _docstring_lines(tree: ast.AST) -> tuple[dict[int, tuple[int, str]], dict[int, int]]:
    """Docstrings as {first line: (last line, cleaned text)}, and the headers of the classes and
    functions that own one as {first header line (decorators included): first docstring line}."""
    found, headers = {}, {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                expr = body[0]
                found[expr.lineno] = (expr.end_lineno, ast.get_docstring(node, clean=True) or "")
                if not isinstance(node, ast.Module):
                    start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                    headers[start] = expr.lineno
    return found, headers


def sections(source: str) -> list[Section]:
    lines = source.splitlines()
    docstrings, headers = _docstring_lines(ast.parse(source))
    out: list[Section] = [Section()]
    held: list[str] = []  # a def/class header waiting for its docstring to be placed first
    held_line = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if i + 1 in headers:
            # Hold `@decorator` / `def f(...):` lines until the docstring is out: notes come first.
            held_line = i + 1
            held = lines[i : headers[i + 1] - 1]
            i = headers[i + 1] - 1
            continue
        if i + 1 in docstrings:
            last, text = docstrings[i + 1]
            note = text
            i = last
        elif stripped.startswith("#") and not stripped.startswith("#!") and not PRAGMA.match(stripped):
            note = re.sub(r"^#\s?", "", stripped)
            i += 1
        else:
            # Code (blank lines included); a trailing pragma comment is left on its line.
            if not out[-1].code:
                out[-1].first_line = i + 1
            out[-1].code.append(line)
            i += 1
            continue
        # A note after code starts a new section.
        if out[-1].code:
            out.append(Section())
        out[-1].notes.append(note)
        if held:
            out[-1].code, out[-1].first_line = held, held_line
            held = []
    for s in out:
        # Trim blank lines at both ends of each code block (the numbering follows).
        while s.code and not s.code[0].strip():
            s.code.pop(0)
            s.first_line += 1
        while s.code and not s.code[-1].strip():
            s.code.pop()
    return [s for s in out if s.notes or s.code]


def _notes_markdown(notes: list[str]) -> str:
    """Consecutive comment lines form one paragraph (an empty `#` line breaks it); docstrings stand alone."""
    joined: list[str] = []
    run: list[str] = []
    for n in notes:
        if "\n" in n:  # a docstring
            if run:
                joined.append("\n".join(run))
                run = []
            joined.append(n)
        else:
            run.append(n)
    if run:
        joined.append("\n".join(run))
    return "\n\n".join(joined)


def page(module: str, source: str, source_url: str, notebook_links: list[tuple[str, str]]) -> str:
    """The Markdown of the annotated page of `module` (e.g. `labnorm/batch_norm.py`).

    `notebook_links` are (title, relative .ipynb path) pairs; mkdocs turns them into page links.
    """
    meta = f"Annotated source of [`{module}`]({source_url})"
    meta += "".join(f" · notebook: [{title}]({path})" for title, path in notebook_links)
    parts = [
        "---\nhide:\n  - navigation\n  - toc\n---\n",
        f"# `{module}`\n",
        meta + "\n{ .annotated-meta }\n",
        '<div class="annotated" markdown>',
    ]
    for s in sections(source):
        # Indentation is kept: the nesting is part of what the reader needs to see.
        code = "\n".join(s.code)
        parts.append('<div class="annotated-section" markdown>')
        parts.append(f'<div class="annotated-notes" markdown>\n\n{_notes_markdown(s.notes)}\n\n</div>')
        if code:
            link = f'<a class="annotated-line" href="{source_url}#L{s.first_line}">{module}:{s.first_line}</a>'
            parts.append(f'<div class="annotated-code" markdown>\n{link}\n\n```python\n{code}\n```\n\n</div>')
        else:
            parts.append('<div class="annotated-code"></div>')
        parts.append("</div>")
    parts.append("</div>\n")
    return "\n".join(parts)
