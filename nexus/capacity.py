"""Start-up memory check: can the sandbox pool, full, fit in the container's memory limit?

Each sandbox instance may grow to MEMORY_LIMIT_MB of guest memory, so a full pool needs up to
MAX_INSTANCES x MEMORY_LIMIT_MB on top of what the process already holds once it has started
(Django, the engine, the compiled guest module, the warm instances: measured, not guessed).
When that exceeds the cgroup's ``memory.max`` the kernel would kill the server under load;
it is better to refuse to start with a line that names the settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024


def cgroup_memory_limit(path: str) -> int | None:
    """The cgroup v2 limit in bytes; None when there is none ("max") or no such file."""
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    if not text.isdigit():
        return None
    return int(text)


@dataclass(frozen=True)
class MemoryBudget:
    max_instances: int
    memory_limit_mb: int
    base_bytes: int
    limit_bytes: int | None
    limit_path: str

    @property
    def needed_bytes(self) -> int:
        return self.base_bytes + self.max_instances * self.memory_limit_mb * MIB

    @property
    def fits(self) -> bool:
        return self.limit_bytes is None or self.needed_bytes <= self.limit_bytes

    def describe(self) -> str:
        pool = f"MAX_INSTANCES={self.max_instances} x MEMORY_LIMIT_MB={self.memory_limit_mb}"
        need = f"{pool} + {self.base_bytes // MIB} MiB base = {self.needed_bytes // MIB} MiB"
        if self.limit_bytes is None:
            return f"{need}; no memory limit in {self.limit_path}"
        if self.fits:
            return f"{need} fits the container limit of {self.limit_bytes // MIB} MiB"
        return (
            f"{need} exceeds the container's memory limit of {self.limit_bytes // MIB} MiB ({self.limit_path}): "
            "lower MAX_INSTANCES or MEMORY_LIMIT_MB, or raise the limit"
        )


def memory_budget(max_instances: int, memory_limit_mb: int, base_bytes: int, limit_path: str) -> MemoryBudget:
    return MemoryBudget(max_instances, memory_limit_mb, base_bytes, cgroup_memory_limit(limit_path), limit_path)
