"""Clients write registers through whoever leads and read them through read_index, while the
network loses, delays and partitions messages and nodes crash and restart; the history must be
linearizable (checked by ``linearizability.py``)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from linearizability import READ, WRITE, History, check
from raft_harness import Network, Node

from server.raft import MessageType, ProposalDropped

KEYS = ("a", "b", "c")
TIMEOUT = 12  # steps a client waits before giving up (the outcome is then unknown)
CLIENTS = 6


@dataclass
class _View:
    """A node's registers, derived from its applied entries (b"w|key|value")."""

    source: int = 0  # id() of the applied list this was built from
    length: int = 0
    registers: dict[str, str] = field(default_factory=dict)
    written: set[str] = field(default_factory=set)


@dataclass
class _Call:
    handle: int
    kind: str
    node: int
    key: str
    token: str  # the value written, or the read-index context
    deadline: int
    read_index: int | None = None


@dataclass
class _Stats:
    writes: int = 0
    reads: int = 0
    unknown: int = 0
    crashes: int = 0
    snapshots_sent: int = 0  # chunks delivered
    snapshots_installed: int = 0  # last chunks delivered
    transfers: int = 0
    terms: set[int] = field(default_factory=set)


class _Simulation:
    def __init__(self, seed: int, *, check_quorum: bool = True, compaction: float = 0.03) -> None:
        self.rng = random.Random(seed)
        self.compaction = compaction  # chance per step that a node compacts its log
        # Chunks small enough that images take several, large enough that a transfer survives
        # the lossy phases; a short election timeout so leadership changes often. Without
        # check-quorum a deposed leader lingers, cut off, for long: read_index must stay safe
        # then too.
        self.net = Network(
            [1, 2, 3, 4, 5],
            seed=seed,
            election_tick=6,
            check_quorum=check_quorum,
            options={"max_snapshot_chunk": 512, "max_inflight_msgs": 8},
        )
        self.history = History()
        self.views: dict[int, _View] = {}
        self.slots: list[_Call | None] = [None] * CLIENTS
        self.client_ids = list(range(CLIENTS))
        self.next_client = CLIENTS
        self.counter = 0
        self.now = 0
        self.stats = _Stats()

    # -- the state machine, as clients observe it ------------------------------------------

    def view(self, node: Node) -> _View:
        v = self.views.setdefault(node.id, _View())
        if v.source != id(node.applied) or v.length > len(node.applied):
            v = self.views[node.id] = _View(source=id(node.applied))  # a snapshot replaced it
        for data in node.applied[v.length :]:
            _, key, value = data.decode().split("|")
            v.registers[key] = value
            v.written.add(value)
        v.length = len(node.applied)
        return v

    # -- faults ---------------------------------------------------------------------------

    def live(self) -> list[int]:
        return [nid for nid in sorted(self.net.nodes) if nid not in self.net.down]

    def inject_faults(self) -> None:
        net, rng = self.net, self.rng
        if rng.random() < self.compaction:
            # Mostly the leader: followers that lag behind its compaction need snapshots.
            leaders = net.leaders()
            nid = leaders[0] if leaders and rng.random() < 0.7 else rng.choice(self.live())
            node = net.nodes[nid]
            if node.applied_index > node.storage.snapshot().metadata.index + 3:
                node.snapshot_and_compact()
        r = rng.random()
        if r < 0.03:
            nodes = list(net.nodes)
            rng.shuffle(nodes)
            leaders = net.leaders()
            cut = rng.randint(1, 2)
            if leaders and rng.random() < 0.5:
                # Cut the leader off alone: the rest elect a new one while clients may still
                # reach the old.
                nodes.remove(leaders[0])
                nodes.insert(0, leaders[0])
                cut = 1
            net.partition(set(nodes[:cut]), set(nodes[cut:]))
        elif r < 0.055:
            net.heal()
        elif r < 0.075 and len(net.down) < 2:
            victim = rng.choice(self.live())
            net.down.add(victim)
            self.stats.crashes += 1
        elif r < 0.125 and net.down:
            nid = rng.choice(sorted(net.down))
            net.down.discard(nid)
            net.nodes[nid].restart()
        elif r < 0.155:
            net.drop_rate = rng.choice([0.0, 0.0, 0.05, 0.15])
            net.delay_rate = rng.choice([0.0, 0.2, 0.5])
        elif r < 0.165:
            leaders = net.leaders()
            if leaders:
                leader = net.nodes[rng.choice(leaders)]
                try:
                    leader.raw.transfer_leader(rng.choice([1, 2, 3, 4, 5]))
                    self.stats.transfers += 1
                except ProposalDropped:
                    pass

    # -- clients --------------------------------------------------------------------------

    def pick_node(self, kind: str) -> int:
        leaders = self.net.leaders()
        # Mostly whoever believes it leads (possibly a deposed leader cut off from the rest);
        # reads sometimes through a follower, which forwards them.
        if leaders and (kind == WRITE or self.rng.random() < 0.7):
            return self.rng.choice(leaders)
        return self.rng.choice(self.live())

    def start_calls(self) -> None:
        for slot, busy in enumerate(self.slots):
            if busy is not None or self.rng.random() < 0.5:
                continue
            kind = self.rng.choice([READ, WRITE])
            key = self.rng.choice(KEYS)
            nid = self.pick_node(kind)
            raw = self.net.nodes[nid].raw
            self.counter += 1
            client = self.client_ids[slot]
            if kind == WRITE:
                token = f"{client}.{self.counter}"
                handle = self.history.invoke(client, WRITE, key, token)
                try:
                    raw.propose(f"w|{key}|{token}".encode())
                except ProposalDropped:
                    self.history.fail(handle)
                    continue
            else:
                token = f"r{self.counter}"
                handle = self.history.invoke(client, READ, key)
                try:
                    raw.read_index(token.encode())
                except ProposalDropped:
                    self.history.fail(handle)
                    continue
            self.slots[slot] = _Call(handle, kind, nid, key, token, self.now + TIMEOUT)

    def give_up(self, slot: int) -> None:
        """The client never heard back: the outcome stays unknown and, as a client with an
        operation outstanding forever, it is replaced by a fresh one."""
        call = self.slots[slot]
        assert call is not None
        self.history.info(call.handle)
        self.stats.unknown += 1
        self.slots[slot] = None
        self.client_ids[slot] = self.next_client
        self.next_client += 1

    def finish_calls(self) -> None:
        for slot, call in enumerate(self.slots):
            if call is None:
                continue
            node = self.net.nodes[call.node]
            if call.node in self.net.down or self.now > call.deadline:
                self.give_up(slot)
                continue
            if call.kind == WRITE:
                if call.token in self.view(node).written:
                    self.history.ok(call.handle)
                    self.stats.writes += 1
                    self.slots[slot] = None
                continue
            if call.read_index is None:
                for rs in node.read_states:
                    if rs.request_ctx == call.token.encode():
                        call.read_index = rs.index
            if call.read_index is not None and node.applied_index >= call.read_index:
                self.history.ok(call.handle, self.view(node).registers.get(call.key))
                self.stats.reads += 1
                self.slots[slot] = None

    # -- time -----------------------------------------------------------------------------

    def advance(self) -> None:
        self.now += 1
        for nid in self.live():
            self.net.nodes[nid].raw.tick()
        for _ in range(self.rng.randint(1, 3)):
            self.net.deliver_round()
        for n in self.net.nodes.values():
            self.stats.terms.add(n.term)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.inject_faults()
            self.start_calls()
            self.advance()
            self.finish_calls()
        # Heal everything and let the outstanding calls finish (or time out).
        net = self.net
        net.heal()
        net.drop_rate = net.delay_rate = 0.0
        for nid in sorted(net.down):
            net.nodes[nid].restart()
        net.down.clear()
        for _ in range(TIMEOUT + 5):
            self.advance()
            self.finish_calls()
        for slot, call in enumerate(self.slots):
            if call is not None:
                self.give_up(slot)
        snaps = [m.chunk for m in net.trace if m.type == MessageType.SNAP and m.chunk]
        self.stats.snapshots_sent = len(snaps)
        self.stats.snapshots_installed = sum(1 for c in snaps if c.done)


def _run(
    seed: int, steps: int, *, check_quorum: bool = True, compaction: float = 0.03
) -> _Simulation:
    sim = _Simulation(seed, check_quorum=check_quorum, compaction=compaction)
    sim.run(steps)
    result = check(sim.history.operations())
    assert result.ok, result.violation.describe() if result.violation else ""
    return sim


@pytest.mark.parametrize("check_quorum", [True, False])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_register_history_under_faults_is_linearizable(seed: int, check_quorum: bool) -> None:
    sim = _run(seed, steps=500, check_quorum=check_quorum)
    s = sim.stats
    # The run exercised what it claims to: progress, failures and recoveries.
    assert s.writes >= 40 and s.reads >= 40, s
    assert s.crashes >= 1 and len(s.terms) >= 3, s
    assert s.unknown >= 1, s


@pytest.mark.parametrize("check_quorum", [True, False])
def test_history_with_frequent_compaction_and_snapshot_transfers_is_linearizable(
    check_quorum: bool,
) -> None:
    sim = _run(7, steps=400, check_quorum=check_quorum, compaction=0.3)
    assert sim.stats.snapshots_installed >= 3, sim.stats


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10, 16))
def test_register_history_under_faults_is_linearizable_long(seed: int) -> None:
    _run(seed, steps=1500, check_quorum=seed % 2 == 0, compaction=0.1)
