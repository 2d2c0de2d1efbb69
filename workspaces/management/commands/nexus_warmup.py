"""Fill the WebAssembly module cache so that later starts skip compilation."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Compile the sandbox's QuickJS WebAssembly module into CACHE_DIR (or find it already there) and "
        "report how long it took. Run it at image build or before the first replica starts; every process "
        "that finds the cached module starts without compiling."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        from workspaces.services.sandbox import load_guest_module

        config = settings.NEXUS
        started = time.perf_counter()
        module = load_guest_module()
        elapsed_ms = (time.perf_counter() - started) * 1000
        how = "loaded from cache" if module.source == "disk" else "compiled"
        where = module.cache_path or f"{config.module_cache_dir} (not usable: nothing cached)"
        self.stdout.write(f"QuickJS module {how} in {elapsed_ms:.0f} ms: {where}")
