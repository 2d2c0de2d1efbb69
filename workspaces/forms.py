"""Forms of the browser pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.text import slugify

from workspaces.models import Workspace


class WorkspaceCreateForm(forms.Form):
    """A name, and a slug for its URLs (made from the name when left empty)."""

    name = forms.CharField(max_length=200, strip=True)
    slug = forms.SlugField(
        max_length=64, required=False,
        help_text="Letters, digits, '-' and '_'; used in URLs. Left empty, it is made from the name.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if "name" in cleaned and not cleaned.get("slug"):
            cleaned["slug"] = slugify(cleaned["name"])[:64]
            if not cleaned["slug"]:
                self.add_error("slug", "The name has no letters or digits to make a slug from; give one.")
        slug = cleaned.get("slug")
        if slug and Workspace.objects.filter(slug=slug).exists():
            self.add_error("slug", f"A workspace with slug '{slug}' already exists; choose another.")
        return cleaned
