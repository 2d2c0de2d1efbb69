"""The user guides of docs/ (tutorial, NXML reference, protocol, authoring) served as pages of the app."""

from __future__ import annotations

import functools
import html as html_module
import re
from pathlib import Path

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

DOCS_DIR = Path(__file__).resolve().parents[1] / "docs"
# Only these files are pages; each link between them becomes a link between pages.
PAGES = {"tutorial": "Tutorial", "nxml": "NXML reference", "protocol": "WebSocket protocol",
         "authoring": "Authoring panels"}
_HEADING = re.compile(r"<h([1-6])>(.*?)</h\1>", re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_NAMES = "|".join(PAGES)
_PAGE_LINK = re.compile(rf'href="({_NAMES})\.md(#[^"]*)?"')


@functools.lru_cache(maxsize=len(PAGES))
def _rendered(name: str, modified: float) -> SafeString:
    source = (DOCS_DIR / f"{name}.md").read_text(encoding="utf-8")
    # Raw HTML in the Markdown is escaped, not passed through.
    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(source)
    html = _PAGE_LINK.sub(lambda m: f'href="/docs/{m[1]}/{m[2] or ""}"', html)
    return mark_safe(_HEADING.sub(_anchored, html))  # noqa: S308


def _anchored(heading: re.Match[str]) -> str:
    """A heading with the id GitHub gives it, so that the guides' #links work here too."""
    text = html_module.unescape(_TAG.sub("", heading[2])).strip().lower()
    slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
    return f'<h{heading[1]} id="{slug}">{heading[2]}</h{heading[1]}>'


def doc_page(request: HttpRequest, name: str) -> HttpResponse:
    path = DOCS_DIR / f"{name}.md"
    if name not in PAGES or not path.is_file():
        raise Http404("No such page")
    body = _rendered(name, path.stat().st_mtime)
    return render(request, "docs_page.html", {"title": PAGES[name], "body": body})
