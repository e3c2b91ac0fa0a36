"""An in-memory cluster of RawNodes for tests: no sockets, no threads, seeded randomness.

Each ``Node`` drains its Readies the way the driver does (persist into its ``MemoryStorage``,
send, apply, advance). The ``Network`` carries messages between nodes and can drop, delay
(reorder), partition and isolate, all from one seeded ``random.Random``. ``Observer`` checks the
safety properties of the Raft paper after every round.
"""

from __future__ import annotations

import ast
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.raft import (
    ConfChange,
    Config,
    ConfState,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    Message,
    MessageRejected,
    ProposalDropped,
    RawNode,
    ReadState,
    StateType,
)
from server.raft.raft import Raft


def raft_of(node: RawNode) -> Raft:
    """The state machine inside a RawNode, for assertions on internals."""
    return node._raft


def log_terms(node: RawNode) -> dict[int, int]:
    """index -> term of every entry the node's log holds (storage and unstable)."""
    log = raft_of(node).log
    return {e.index: e.term for e in log.slice(log.first_index(), log.last_index() + 1)}


@dataclass
class Node:
    id: int
    storage: MemoryStorage
    raw: RawNode
    seed: int
    election_tick: int
    pre_vote: bool
    check_quorum: bool
    # Further Config fields (flow control, snapshot chunking) kept across restarts.
    options: dict[str, Any] = field(default_factory=dict)
    applied_index: int = 0
    # The state machine: data of applied normal entries, in order.
    applied: list[bytes] = field(default_factory=list)
    # Every applied entry by index, to compare across nodes (state machine safety).
    applied_entries: dict[int, Entry] = field(default_factory=dict)
    read_states: list[ReadState] = field(default_factory=list)

    @property
    def raft(self) -> Raft:
        return raft_of(self.raw)

    @property
    def state(self) -> StateType:
        return self.raft.state

    @property
    def term(self) -> int:
        return self.raft.term

    @property
    def commit(self) -> int:
        return self.raft.log.committed

    def drain(self) -> list[Message]:
        """Handle every pending Ready like the driver; returns the messages to send."""
        out: list[Message] = []
        while self.raw.has_ready():
            rd = self.raw.ready()
            for chunk in rd.snapshot_chunks:
                self.storage.stage_snapshot_chunk(chunk)
            if rd.snapshot is not None:
                self.storage.apply_snapshot(rd.snapshot)
                image = self.storage.snapshot()
                assert image.metadata == rd.snapshot.metadata
                self.applied = list(ast.literal_eval(image.data.decode()))
                self.applied_index = rd.snapshot.metadata.index
            if rd.hard_state is not None:
                self.storage.set_hard_state(rd.hard_state)
            self.storage.append(rd.entries)
            out.extend(rd.messages)
            for e in rd.committed_entries:
                self._apply(e)
            self.read_states.extend(rd.read_states)
            self.raw.advance(rd)
        return out

    def _apply(self, e: Entry) -> None:
        assert e.index == self.applied_index + 1, (self.id, e.index, self.applied_index)
        self.applied_entries[e.index] = e
        if e.type == EntryType.CONF_CHANGE:
            cs = self.raw.apply_conf_change(ConfChange.decode(e.data))
            self.storage.set_conf_state(cs)
        elif e.data:
            self.applied.append(e.data)
        self.applied_index = e.index

    def snapshot_and_compact(self) -> None:
        """Take a snapshot at the applied index and drop the log before it."""
        cs = self.storage.conf_state
        self.storage.create_snapshot(self.applied_index, cs, repr(self.applied).encode())
        self.storage.compact(self.applied_index)

    def restart(self) -> None:
        """Rebuild the node from its storage, as after a crash (unpersisted state is lost)."""
        self.raw = RawNode(
            Config(
                id=self.id,
                election_tick=self.election_tick,
                applied=self.applied_index,
                pre_vote=self.pre_vote,
                check_quorum=self.check_quorum,
                rng=random.Random(self.seed + 7919),
                **self.options,
            ),
            self.storage,
        )


class Network:
    """Nodes plus the links between them."""

    def __init__(
        self,
        voters: list[int],
        *,
        learners: tuple[int, ...] = (),
        seed: int = 0,
        election_tick: int = 10,
        pre_vote: bool = True,
        check_quorum: bool = True,
        logs: dict[int, list[int]] | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        """``logs`` presets a node's persisted log as the terms of entries 1, 2, ...;
        ``options`` are further ``Config`` fields for every node."""
        self.rng = random.Random(seed)
        self.options = dict(options or {})
        self.nodes: dict[int, Node] = {}
        cs = ConfState(voters=tuple(voters), learners=learners)
        top_term = max((max(t) for t in (logs or {}).values() if t), default=0)
        for nid in [*voters, *learners]:
            storage = MemoryStorage(conf_state=cs)
            terms = (logs or {}).get(nid, [])
            if terms:
                storage.append([Entry(term=t, index=i) for i, t in enumerate(terms, start=1)])
                # Every node has seen the highest preset term, so no term gets two leaders.
                storage.set_hard_state(HardState(term=top_term))
            node_seed = seed * 1000 + nid
            raw = RawNode(
                Config(
                    id=nid,
                    election_tick=election_tick,
                    pre_vote=pre_vote,
                    check_quorum=check_quorum,
                    rng=random.Random(node_seed),
                    **self.options,
                ),
                storage,
            )
            self.nodes[nid] = Node(
                nid, storage, raw, node_seed, election_tick, pre_vote, check_quorum, self.options
            )
        self.in_flight: list[Message] = []
        self.trace: list[Message] = []  # every message delivered, in order
        self.drop_rate = 0.0
        self.delay_rate = 0.0  # chance a message waits another round (reordering)
        self.groups: list[set[int]] | None = None
        self.down: set[int] = set()
        # Drops every message for which it returns False (targeted loss in a test).
        self.msg_filter: Callable[[Message], bool] | None = None
        self.observer = Observer(self)

    # -- topology ----------------------------------------------------------------------------

    def partition(self, *groups: set[int]) -> None:
        self.groups = [set(g) for g in groups]

    def isolate(self, nid: int) -> None:
        self.partition({nid}, set(self.nodes) - {nid})

    def heal(self) -> None:
        self.groups = None

    def _connected(self, a: int, b: int) -> bool:
        if a in self.down or b in self.down:
            return False
        if self.groups is None:
            return True
        return any(a in g and b in g for g in self.groups)

    # -- running -----------------------------------------------------------------------------

    def add_node(self, nid: int, conf_state: ConfState) -> Node:
        """A fresh member joining with an empty log (it learns everything from the leader)."""
        storage = MemoryStorage(conf_state=conf_state)
        seed = 5000 + nid
        raw = RawNode(Config(id=nid, rng=random.Random(seed), **self.options), storage)
        node = Node(nid, storage, raw, seed, 10, True, True, self.options)
        self.nodes[nid] = node
        return node

    def drain_all(self) -> None:
        for nid in sorted(self.nodes):
            if nid not in self.down:
                self.in_flight.extend(self.nodes[nid].drain())

    def deliver_round(self) -> int:
        """Drain every node, then deliver (or drop / delay) what was in flight; returns the
        number of messages delivered."""
        self.drain_all()
        batch, self.in_flight = self.in_flight, []
        if self.delay_rate:
            self.rng.shuffle(batch)
        delivered = 0
        for m in batch:
            if not self._connected(m.from_, m.to) or m.to not in self.nodes:
                continue
            if self.msg_filter is not None and not self.msg_filter(m):
                continue
            if self.drop_rate and self.rng.random() < self.drop_rate:
                continue
            if self.delay_rate and self.rng.random() < self.delay_rate:
                self.in_flight.append(m)
                continue
            self.trace.append(m)
            try:
                self.nodes[m.to].raw.step(m)
            except MessageRejected:
                continue  # e.g. from a removed member; a driver logs and drops these
            delivered += 1
        self.drain_all()
        self.observer.check()
        return delivered

    def stabilize(self, max_rounds: int = 200) -> None:
        """Deliver until no message is left in flight."""
        for _ in range(max_rounds):
            self.deliver_round()
            if not self.in_flight:
                return
        raise AssertionError("network did not settle")

    def tick(self, n: int = 1) -> None:
        """Tick every live node ``n`` times; after each tick, deliver until the network is quiet
        (messages travel faster than a tick)."""
        for _ in range(n):
            for nid in sorted(self.nodes):
                if nid not in self.down:
                    self.nodes[nid].raw.tick()
            self.stabilize()

    def campaign(self, nid: int) -> None:
        self.nodes[nid].raw.campaign()
        self.stabilize()

    def elect(self, nid: int) -> None:
        self.campaign(nid)
        assert self.nodes[nid].state == StateType.LEADER, f"{nid} did not become leader"

    def propose(self, nid: int, data: bytes) -> None:
        self.nodes[nid].raw.propose(data)
        self.stabilize()

    def leaders(self) -> list[int]:
        return [
            nid
            for nid, n in self.nodes.items()
            if nid not in self.down and n.state == StateType.LEADER
        ]

    def leader(self) -> int:
        """The live leader of the highest term (asserts one exists)."""
        leaders = self.leaders()
        assert leaders, "no leader"
        return max(leaders, key=lambda nid: self.nodes[nid].term)

    def exchange(self, msgs: list[Message]) -> list[Message]:
        """Step ``msgs`` into their targets by hand (no loss, no partitions) and return what the
        nodes send in answer, for tests that choose which message arrives when."""
        for m in msgs:
            self.trace.append(m)
            self.nodes[m.to].raw.step(m)
        out: list[Message] = []
        for nid in sorted(self.nodes):
            out.extend(self.nodes[nid].drain())
        return out

    def pump(self, msgs: list[Message]) -> None:
        """``exchange`` until nothing is left to deliver."""
        for _ in range(200):
            if not msgs:
                return
            msgs = self.exchange(msgs)
        raise AssertionError("messages kept flowing")

    def try_propose(self, data: bytes) -> bool:
        leaders = self.leaders()
        if not leaders:
            return False
        try:
            self.nodes[self.leader()].raw.propose(data)
        except ProposalDropped:
            return False
        return True


class Observer:
    """Checks the Raft paper's safety properties (Figure 3) over a whole run."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.leader_of_term: dict[int, int] = {}
        # Each leader's log at its last observation, per (term, id): must only grow.
        self.leader_logs: dict[tuple[int, int], dict[int, int]] = {}
        self.committed: dict[int, Entry] = {}  # index -> entry applied by someone
        # index -> highest term in the cluster when the entry was first seen applied: the entry
        # was committed at or before that term, so every leader of a later term must hold it.
        self.committed_by_term: dict[int, int] = {}
        self._checked_applied: dict[int, int] = {}  # node id -> applied index already checked

    def check(self) -> None:
        nodes = [n for nid, n in self.net.nodes.items() if nid not in self.net.down]
        logs = {n.id: log_terms(n.raw) for n in nodes}
        max_term = max(n.term for n in nodes)
        for n in nodes:
            # State machine safety: no two nodes apply different entries at one index.
            seen_upto = self._checked_applied.get(n.id, 0)
            for index in range(seen_upto + 1, n.applied_index + 1):
                e = n.applied_entries.get(index)
                if e is None:
                    continue  # covered by a snapshot
                seen = self.committed.setdefault(index, e)
                self.committed_by_term.setdefault(index, max_term)
                assert seen == e, f"state machine safety: index {index}: {seen} vs {e}"
            self._checked_applied[n.id] = n.applied_index
            if n.state != StateType.LEADER:
                continue
            # Election safety: at most one leader per term.
            prev = self.leader_of_term.setdefault(n.term, n.id)
            assert prev == n.id, f"election safety: {prev} and {n.id} lead term {n.term}"
            # Leader append-only: a leader never overwrites or deletes its entries.
            key = (n.term, n.id)
            old = self.leader_logs.get(key, {})
            now = logs[n.id]
            first = n.raft.log.first_index()
            for index, term in old.items():
                if index >= first:  # entries below were compacted, not overwritten
                    assert now.get(index) == term, f"leader {n.id} changed entry {index}"
            self.leader_logs[key] = now
            # Leader completeness: a leader holds every entry committed before its term.
            for index, e in self.committed.items():
                if n.term > self.committed_by_term[index] and index >= first:
                    assert now.get(index) == e.term, (
                        f"leader completeness: leader {n.id} of term {n.term} lacks {e}"
                    )
        # Log matching: same index and term implies identical logs up to that index.
        ids = sorted(logs)
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                la, lb = logs[a], logs[b]
                lo = max(min(la, default=1), min(lb, default=1))
                hi = min(max(la, default=0), max(lb, default=0))
                top = next((ix for ix in range(hi, lo - 1, -1) if la[ix] == lb[ix]), 0)
                for ix in range(lo, top + 1):
                    assert la[ix] == lb[ix], f"log matching: {a} and {b} differ at {ix}"
