"""The restriction index: the in-memory lookup (lookup.py) and what keeps it fresh (keeper.py);
what it loads from the database is gateway/store/index.py."""

from ..store.index import ENFORCED, Link, Loaded, handle_key, load_staff
from .keeper import DAY_CHECK_SECONDS, IndexKeeper
from .lookup import RestrictionIndex

__all__ = [
    "DAY_CHECK_SECONDS",
    "ENFORCED",
    "IndexKeeper",
    "Link",
    "Loaded",
    "RestrictionIndex",
    "handle_key",
    "load_staff",
]
