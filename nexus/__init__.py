"""Nexus: a self-hosted workspace platform of sandboxed, live panels."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nexus")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.1.0"
