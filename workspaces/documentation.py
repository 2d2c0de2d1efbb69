"""The user guides of docs/ (tutorial, NXML reference, protocol) served as pages of the app."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

DOCS_DIR = Path(__file__).resolve().parents[1] / "docs"
# Only these files are pages; each link between them becomes a link between pages.
PAGES = {"tutorial": "Tutorial", "nxml": "NXML reference", "protocol": "WebSocket protocol"}
_NAMES = "|".join(PAGES)
_PAGE_LINK = re.compile(rf'href="({_NAMES})\.md(#[^"]*)?"')


@functools.lru_cache(maxsize=len(PAGES))
def _rendered(name: str, modified: float) -> SafeString:
    source = (DOCS_DIR / f"{name}.md").read_text(encoding="utf-8")
    # Raw HTML in the Markdown is escaped, not passed through.
    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(source)
    return mark_safe(_PAGE_LINK.sub(lambda m: f'href="/docs/{m[1]}/{m[2] or ""}"', html))  # noqa: S308


def doc_page(request: HttpRequest, name: str) -> HttpResponse:
    path = DOCS_DIR / f"{name}.md"
    if name not in PAGES or not path.is_file():
        raise Http404("No such page")
    body = _rendered(name, path.stat().st_mtime)
    return render(request, "docs_page.html", {"title": PAGES[name], "body": body})
