"""The one error vocabulary, for the Django side: the runtime's ErrorCode and CodedError.

Re-exported here so that the faces (REST, WebSocket, MCP, admin, commands) name error codes
without importing the runtime themselves.
"""

from runtime.errors import CodedError, ErrorCode

__all__ = ["CodedError", "ErrorCode"]
