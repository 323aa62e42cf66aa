"""Barq's SQLite database: payment history, parts and estimator knowledge.

``open_store(path)`` opens (creating or migrating) the file, in WAL mode, and
starts the single store thread that performs every read and write in order;
see :mod:`barq.store._store` for why writes never block the event loop.
Every failure is a :class:`barq.errors.StoreError` naming the file.
"""

from barq.store._rows import KnowledgeRecord
from barq.store._schema import MIGRATIONS, SCHEMA_VERSION, Migration
from barq.store._store import Store, open_store

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "KnowledgeRecord", "Migration", "Store", "open_store"]
