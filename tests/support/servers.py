"""Server processes for integration tests: the same harness the benchmarks use."""

from workspaces.benchmarks.harness import (
    HARNESS_SECRET,
    ROOT,
    Database,
    Server,
    base_env,
    free_port,
    manage,
    provision,
    redis_server,
    scratch_database,
    start_server,
    unique_prefix,
)

__all__ = [
    "HARNESS_SECRET", "ROOT", "Database", "Server", "base_env", "free_port", "manage", "provision",
    "redis_server", "scratch_database", "start_server", "unique_prefix",
]
