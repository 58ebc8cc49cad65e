"""The database: one way to open it (connection), one migration set (migrations), one
writer that batches the crowd's ballots into group commits (writer)."""

from .connection import BUSY_TIMEOUT_S, Store, connect, first, immediate, update_row
from .migrations import migrate, pending_migrations

__all__ = ["BUSY_TIMEOUT_S", "Store", "connect", "first", "immediate", "update_row", "migrate",
           "pending_migrations"]
