"""The durable contact log: group commit to PostgreSQL, an fsync'd local spool when it is down.

record: the row as a record; spool: the spool files; replay: spool back into the log; writer: ContactLog.
"""

from ..store.contactlog import COLUMNS
from .record import AnswerJson, ContactRecord
from .replay import replay_file, replay_spool
from .spool import Spool
from .writer import Appended, ContactLog

__all__ = ["COLUMNS", "AnswerJson", "Appended", "ContactLog", "ContactRecord", "Spool", "replay_file", "replay_spool"]
