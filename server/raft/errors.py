"""The exceptions the Raft core raises; all derive from :class:`RaftError`."""


class RaftError(Exception):
    """Base class of every error raised by ``server.raft``."""


class ConfigError(RaftError, ValueError):
    """A :class:`~server.raft.Config` value is out of range."""


class ProposalDropped(RaftError):
    """A proposal (or read-index request) was refused: no leader, not leader, transfer running."""


class UncommittedSizeExceeded(ProposalDropped):
    """The leader already holds ``max_uncommitted_entries_size`` bytes not yet applied; retry
    once the backlog drains (the driver may map this to "too many requests")."""


class LeaderTransferInProgress(ProposalDropped):
    """Leadership is moving to another member; retry with the new leader."""


class InvalidConfChange(RaftError):
    """A membership change is malformed or would leave the cluster unusable."""


class MessageRejected(RaftError):
    """A message from the network was refused before reaching the state machine."""


class LogCompacted(RaftError):
    """Storage: the requested index is below the first retained entry (compacted away)."""


class LogUnavailable(RaftError):
    """Storage: the requested index is past the last entry."""


class SnapshotTemporarilyUnavailable(RaftError):
    """Storage: no snapshot can be produced right now; the leader retries later."""


class InvariantViolation(RaftError):
    """Raft's own invariants were broken (corrupt storage or a driver bug); never caught."""
