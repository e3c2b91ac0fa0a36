"""Cases ported from etcd-io/raft's raft_paper_test.go and raft_test.go that phase 1 lacked.

Each names its etcd original; expectations are etcd's, shifted where Ward's terms start at 0.
"""

from __future__ import annotations

import random

import pytest
from raft_harness import Network, log_terms, raft_of

from server.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    RawNode,
    StateType,
)

MT = MessageType


def _node(
    nid: int = 1,
    voters: tuple[int, ...] = (1, 2, 3),
    *,
    terms: list[int] | None = None,
    hard: HardState | None = None,
    learners: tuple[int, ...] = (),
    pre_vote: bool = False,
) -> RawNode:
    storage = MemoryStorage(conf_state=ConfState(voters=voters, learners=learners))
    if terms:
        storage.append([Entry(term=t, index=i) for i, t in enumerate(terms, start=1)])
    if hard is not None:
        storage.set_hard_state(hard)
    cfg = Config(id=nid, pre_vote=pre_vote, check_quorum=False, rng=random.Random(nid))
    return RawNode(cfg, storage)


def _sent(node: RawNode) -> list[Message]:
    r = raft_of(node)
    msgs, r.msgs = r.msgs, []
    return msgs


# -- Figure 7 and friends ----------------------------------------------------------------------

FIG7_LEADER = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
FIG7_FOLLOWERS = {
    "a": [1, 1, 1, 4, 4, 5, 5, 6, 6],
    "b": [1, 1, 1, 4],
    "c": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    "d": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    "e": [1, 1, 1, 4, 4, 4, 4],
    "f": [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
}


@pytest.mark.parametrize("case", sorted(FIG7_FOLLOWERS))
def test_leader_brings_every_figure_7_follower_log_in_line(case: str) -> None:
    # etcd TestLeaderSyncFollowerLog (Raft paper Figure 7, §5.3): whatever the follower holds,
    # missing entries, extra uncommitted ones or a divergent tail, it ends up with the leader's.
    net = Network(
        [1, 2, 3],
        logs={1: FIG7_LEADER, 2: FIG7_FOLLOWERS[case]},
        pre_vote=False,
        check_quorum=False,
    )
    net.nodes[1].storage.set_hard_state(HardState(term=8, commit=len(FIG7_LEADER)))
    net.nodes[1].restart()
    net.nodes[2].storage.set_hard_state(HardState(term=7))
    net.nodes[2].restart()
    # Node 3 only votes: it may hold a longer log than the leader's, so the leader needs it.
    net.msg_filter = lambda m: 3 not in (m.from_, m.to)
    net.nodes[1].raw.campaign()
    net.stabilize()
    net.nodes[1].raw.step(Message(type=MT.VOTE_RESP, to=1, from_=3, term=9))
    assert net.nodes[1].state == StateType.LEADER
    net.propose(1, b"")
    assert log_terms(net.nodes[2].raw) == log_terms(net.nodes[1].raw)
    assert log_terms(net.nodes[1].raw) == dict(enumerate([*FIG7_LEADER, 9, 9], start=1))


def test_new_leader_overwrites_newer_uncommitted_logs() -> None:
    # etcd TestLeaderElectionOverwriteNewerLogs: 1 won term 1 and reached 2; 3 won term 2 and
    # reached nobody; 4 and 5 voted in term 2 without getting entries.
    net = Network(
        [1, 2, 3, 4, 5],
        logs={1: [1], 2: [1], 3: [2]},
        pre_vote=False,
        check_quorum=False,
    )
    for nid in (4, 5):
        net.nodes[nid].storage.set_hard_state(HardState(term=2, vote=3))
        net.nodes[nid].restart()
    for nid in (1, 2):
        net.nodes[nid].storage.set_hard_state(HardState(term=1))
        net.nodes[nid].restart()
    # The first campaign fails (a quorum already knows term 2) but lifts 1 to term 2...
    net.campaign(1)
    assert (net.nodes[1].state, net.nodes[1].term) == (StateType.FOLLOWER, 2)
    # ...the second one wins, and its term-1 entry replaces 3's newer term-2 one.
    net.campaign(1)
    assert (net.nodes[1].state, net.nodes[1].term) == (StateType.LEADER, 3)
    for n in net.nodes.values():
        assert log_terms(n.raw) == {1: 1, 2: 3}


# -- votes -----------------------------------------------------------------------------------


def _in_state(state: StateType, *, pre_vote: bool) -> RawNode:
    node = _node(pre_vote=pre_vote, hard=HardState(term=1))
    r = raft_of(node)
    if state == StateType.FOLLOWER:
        r.become_follower(r.term, 3)
    elif state in (StateType.PRE_CANDIDATE, StateType.CANDIDATE):
        r.pre_vote = state == StateType.PRE_CANDIDATE
        node.campaign()
    else:
        r.pre_vote = False
        node.campaign()
        node.step(Message(type=MT.VOTE_RESP, to=1, from_=2, term=r.term))
    assert r.state == state
    _sent(node)
    return node


@pytest.mark.parametrize("vote_type", [MT.VOTE, MT.PRE_VOTE])
@pytest.mark.parametrize("state", list(StateType))
def test_vote_granted_from_any_state(vote_type: MessageType, state: StateType) -> None:
    # etcd TestVoteFromAnyState / TestPreVoteFromAnyState.
    node = _in_state(state, pre_vote=True)
    r = raft_of(node)
    orig_term = r.term
    new_term = orig_term + 1
    node.step(Message(type=vote_type, to=1, from_=2, term=new_term, log_term=new_term, index=42))
    resp = _sent(node)
    assert [(m.type, m.reject) for m in resp] == [
        (MT.VOTE_RESP if vote_type == MT.VOTE else MT.PRE_VOTE_RESP, False)
    ]
    if vote_type == MT.VOTE:
        assert (r.state, r.term, r.vote) == (StateType.FOLLOWER, new_term, 2)
    else:  # a pre-vote changes nothing
        assert (r.state, r.term) == (state, orig_term)
        assert r.vote in (0, 1)


@pytest.mark.parametrize(
    ("vote", "candidate", "reject"),
    [(0, 2, False), (0, 3, False), (2, 2, False), (3, 3, False), (2, 3, True), (3, 2, True)],
)
def test_follower_votes_once_per_term_first_come_first_served(
    vote: int, candidate: int, reject: bool
) -> None:
    # etcd TestFollowerVote (§5.2).
    node = _node(hard=HardState(term=1, vote=vote))
    node.step(Message(type=MT.VOTE, to=1, from_=candidate, term=1))
    assert [(m.to, m.reject) for m in _sent(node)] == [(candidate, reject)]


@pytest.mark.parametrize(
    ("log", "log_term", "index", "reject"),
    [
        ([1], 1, 1, False),
        ([1], 1, 2, False),
        ([1, 1], 1, 1, True),  # same last term, shorter log
        ([1], 2, 1, False),  # candidate's last term is higher
        ([1], 2, 2, False),
        ([1, 1], 2, 1, False),
        ([2], 1, 1, True),  # voter's last term is higher
        ([2], 1, 2, True),
        ([2, 1], 1, 1, True),
    ],
)
def test_voter_grants_only_to_an_up_to_date_log(
    log: list[int], log_term: int, index: int, reject: bool
) -> None:
    # etcd TestVoter (§5.4.1).
    node = _node(terms=log, hard=HardState(term=2))
    node.step(Message(type=MT.VOTE, to=1, from_=2, term=3, log_term=log_term, index=index))
    assert [m.reject for m in _sent(node)] == [reject]


@pytest.mark.parametrize(
    ("size", "votes", "state"),
    [
        (1, {}, StateType.LEADER),
        (3, {2: True, 3: True}, StateType.LEADER),
        (3, {2: True}, StateType.LEADER),
        (5, {2: True, 3: True, 4: True, 5: True}, StateType.LEADER),
        (5, {2: True, 3: True, 4: True}, StateType.LEADER),
        (5, {2: True, 3: True}, StateType.LEADER),
        (3, {2: False, 3: False}, StateType.FOLLOWER),  # a majority refused
        (5, {2: False, 3: False, 4: False, 5: False}, StateType.FOLLOWER),
        (5, {2: True, 3: False, 4: False, 5: False}, StateType.FOLLOWER),
        (3, {}, StateType.CANDIDATE),  # no answer yet
        (5, {2: True}, StateType.CANDIDATE),
        (5, {2: False, 3: False}, StateType.CANDIDATE),
        (5, {}, StateType.CANDIDATE),
    ],
)
def test_election_outcome_in_one_round(size: int, votes: dict[int, bool], state: StateType) -> None:
    # etcd TestLeaderElectionInOneRoundRPC (§5.2).
    node = _node(voters=tuple(range(1, size + 1)))
    node.campaign()
    for voter, granted in votes.items():
        node.step(Message(type=MT.VOTE_RESP, to=1, from_=voter, term=1, reject=not granted))
    r = raft_of(node)
    assert (r.state, r.term) == (state, 1)


def test_learner_grants_votes() -> None:
    # etcd TestLearnerCanVote: a learner may be a voter already in a configuration it has not
    # applied yet, so it answers vote requests like anyone.
    node = _node(nid=2, voters=(1,), learners=(2,))
    node.step(Message(type=MT.VOTE, to=2, from_=1, term=2, log_term=11, index=11))
    assert [(m.type, m.reject) for m in _sent(node)] == [(MT.VOTE_RESP, False)]


# -- candidates and terms --------------------------------------------------------------------


def test_dueling_candidates_resolve_to_the_longer_log() -> None:
    # etcd TestDuelingCandidates.
    net = Network([1, 2, 3], seed=61, pre_vote=False, check_quorum=False)
    net.partition({1, 2}, {3})
    net.nodes[1].raw.campaign()
    net.nodes[3].raw.campaign()
    net.stabilize()
    assert net.nodes[1].state == StateType.LEADER
    assert net.nodes[3].state == StateType.CANDIDATE  # needs a vote it cannot reach
    net.heal()
    # 3 campaigns again at term 2; 2 (and 1) refuse a log shorter than theirs, and the
    # higher term deposes 1: nobody leads term 2.
    net.campaign(3)
    for nid, state in ((1, StateType.FOLLOWER), (2, StateType.FOLLOWER), (3, StateType.FOLLOWER)):
        assert (net.nodes[nid].state, net.nodes[nid].term) == (state, 2)
    assert log_terms(net.nodes[1].raw) == log_terms(net.nodes[2].raw) == {1: 1}
    assert log_terms(net.nodes[3].raw) == {}


def test_dueling_pre_candidates_leave_terms_alone() -> None:
    # etcd TestDuelingPreCandidates.
    net = Network([1, 2, 3], seed=62, pre_vote=True, check_quorum=False)
    net.partition({1, 2}, {3})
    net.nodes[1].raw.campaign()
    net.nodes[3].raw.campaign()
    net.stabilize()
    assert net.nodes[1].state == StateType.LEADER
    assert net.nodes[3].state == StateType.PRE_CANDIDATE
    net.heal()
    net.campaign(3)  # the pre-vote fails: 3's log is behind
    assert [(n.state, n.term) for n in net.nodes.values()] == [
        (StateType.LEADER, 1),
        (StateType.FOLLOWER, 1),
        (StateType.FOLLOWER, 1),
    ]


def test_candidate_concedes_to_a_leader_of_its_term() -> None:
    # etcd TestCandidateConcede.
    net = Network([1, 2, 3], seed=63, pre_vote=False, check_quorum=False)
    net.isolate(1)
    net.nodes[1].raw.campaign()
    net.nodes[3].raw.campaign()
    net.stabilize()
    net.heal()
    net.tick(1)  # the leader's heartbeat reaches the stuck candidate
    net.propose(3, b"force follower")
    assert net.nodes[1].state == StateType.FOLLOWER and net.nodes[1].term == 1
    assert log_terms(net.nodes[1].raw) == log_terms(net.nodes[3].raw) == {1: 1, 2: 1}


@pytest.mark.parametrize("state", list(StateType))
@pytest.mark.parametrize("msg_type", [MT.VOTE, MT.APP])
def test_every_role_steps_down_on_a_higher_term(state: StateType, msg_type: MessageType) -> None:
    # etcd TestAllServerStepdown (§5.1).
    node = _in_state(state, pre_vote=state == StateType.PRE_CANDIDATE)
    r = raft_of(node)
    term = r.term + 2
    node.step(Message(type=msg_type, to=1, from_=2, term=term, log_term=term, index=9))
    assert (r.state, r.term) == (StateType.FOLLOWER, term)
    assert r.lead == (2 if msg_type == MT.APP else 0)


@pytest.mark.parametrize("msg_type", [MT.APP, MT.HEARTBEAT])
def test_candidate_falls_back_to_a_leader_of_its_term(msg_type: MessageType) -> None:
    # etcd TestCandidateFallback (§5.2).
    node = _node()
    node.campaign()
    r = raft_of(node)
    node.step(Message(type=msg_type, to=1, from_=2, term=r.term))
    assert (r.state, r.term, r.lead) == (StateType.FOLLOWER, 1, 2)


def test_messages_of_an_older_term_are_ignored() -> None:
    # etcd TestOldMessages / TestStepIgnoreOldTermMsg.
    net = Network([1, 2, 3], seed=64, pre_vote=False, check_quorum=False)
    net.elect(1)
    net.campaign(2)
    net.campaign(1)
    leader = net.nodes[1]
    assert leader.term == 3
    before = log_terms(leader.raw)
    stale = Message(
        type=MT.APP, to=1, from_=2, term=2, index=3, log_term=2, entries=(Entry(term=2, index=4),)
    )
    leader.raw.step(stale)
    net.stabilize()
    assert leader.state == StateType.LEADER and log_terms(leader.raw) == before
    net.propose(1, b"somedata")
    assert all(log_terms(n.raw) == log_terms(leader.raw) for n in net.nodes.values())


def test_smaller_term_node_can_complete_an_election() -> None:
    # etcd TestNodeWithSmallerTermCanCompleteElection: with pre-vote, a node that fell behind
    # while cut off must not stall elections once it is back and the leader is gone.
    net = Network([1, 2, 3], seed=65, pre_vote=True, check_quorum=False)
    net.isolate(3)
    net.campaign(1)
    net.campaign(3)
    assert net.nodes[3].state == StateType.PRE_CANDIDATE
    net.campaign(2)
    terms = [n.term for n in net.nodes.values()]
    assert terms == [2, 2, 0]
    assert net.nodes[2].state == StateType.LEADER
    net.heal()
    net.partition({1, 3}, {2})  # the leader crashes, in effect
    net.nodes[3].raw.campaign()
    net.nodes[1].raw.campaign()
    net.stabilize()
    assert StateType.LEADER in (net.nodes[1].state, net.nodes[3].state)


def test_pre_vote_split_vote_is_resolved_by_the_next_campaign() -> None:
    # etcd TestPreVoteWithSplitVote.
    net = Network([1, 2, 3], seed=66, pre_vote=True, check_quorum=False)
    net.elect(1)
    net.isolate(1)
    net.nodes[2].raw.campaign()
    net.nodes[3].raw.campaign()
    net.stabilize()
    assert [(net.nodes[n].state, net.nodes[n].term) for n in (2, 3)] == [
        (StateType.CANDIDATE, 2),
        (StateType.CANDIDATE, 2),
    ]
    net.campaign(2)
    assert [(net.nodes[n].state, net.nodes[n].term) for n in (2, 3)] == [
        (StateType.LEADER, 3),
        (StateType.FOLLOWER, 3),
    ]


# -- replication details ---------------------------------------------------------------------


def test_heartbeat_never_lowers_the_commit_index() -> None:
    # etcd TestHandleHeartbeat.
    for commit, expected in ((3, 3), (1, 2)):
        node = _node(nid=2, terms=[1, 2, 3], hard=HardState(term=2, commit=2))
        node.step(Message(type=MT.HEARTBEAT, to=2, from_=1, term=2, commit=commit))
        assert raft_of(node).log.committed == expected
        assert [m.type for m in _sent(node)] == [MT.HEARTBEAT_RESP]


def test_heartbeats_tell_each_follower_to_commit_no_further_than_it_matches() -> None:
    # etcd TestBcastBeat.
    net = Network([1, 2, 3], seed=67)
    net.elect(1)
    net.propose(1, b"a")
    net.down.add(3)
    net.propose(1, b"b")
    leader = net.nodes[1]
    match3 = leader.raw.status().progress[3].match
    assert match3 < leader.commit
    leader.raw.tick()  # heartbeat_tick is 1
    beats = {m.to: m.commit for m in leader.drain() if m.type == MT.HEARTBEAT}
    assert beats == {2: leader.commit, 3: match3}


def test_next_index_moves_optimistically_only_while_replicating() -> None:
    # etcd TestLeaderIncreaseNext.
    # Three old entries, the new leader's empty one and the proposal: replicating sends all
    # from next=2 on and moves next past them; probing leaves next where it was.
    for state, expected_next in (("replicate", 6), ("probe", 2)):
        storage = MemoryStorage(conf_state=ConfState(voters=(1, 2)))
        storage.append([Entry(term=1, index=i) for i in (1, 2, 3)])
        storage.set_hard_state(HardState(term=1))
        node = RawNode(Config(id=1, pre_vote=False, rng=random.Random(0)), storage)
        node.campaign()
        node.step(Message(type=MT.VOTE_RESP, to=1, from_=2, term=2))
        pr = raft_of(node).trk.progress[2]
        pr.match, pr.next = 1, 2
        if state == "replicate":
            pr.become_replicate()
        else:
            pr.become_probe()
            pr.probe_sent = True
        node.propose(b"somedata")
        assert pr.next == expected_next


def test_unreachable_follower_goes_back_to_probing() -> None:
    # etcd TestRecvMsgUnreachable.
    net = Network([1, 2], seed=68)
    net.elect(1)
    net.propose(1, b"a")
    pr = raft_of(net.nodes[1].raw).trk.progress[2]
    net.down.add(2)
    net.nodes[1].raw.propose(b"b")
    net.nodes[1].drain()
    assert pr.next == pr.match + 2
    net.nodes[1].raw.report_unreachable(2)
    assert net.nodes[1].raw.status().progress[2].state == "probe"
    assert pr.next == pr.match + 1


def test_removing_a_member_commits_what_the_smaller_quorum_holds() -> None:
    # etcd TestCommitAfterRemoveNode.
    storage = MemoryStorage(conf_state=ConfState(voters=(1, 2)))
    node = RawNode(Config(id=1, pre_vote=False, rng=random.Random(0)), storage)
    node.campaign()
    node.step(Message(type=MT.VOTE_RESP, to=1, from_=2, term=1))
    node.step(Message(type=MT.APP_RESP, to=1, from_=2, term=1, index=1))
    node.propose(b"hello")
    rd = node.ready()
    storage.append(rd.entries)
    assert [e.data for e in rd.committed_entries] == [b""]  # 2 has not acknowledged "hello"
    node.advance(rd)
    node.apply_conf_change(ConfChange(type=ConfChangeType.REMOVE_NODE, node_id=2))
    rd = node.ready()
    assert [e.data for e in rd.committed_entries] == [b"hello"]


def test_read_index_with_a_learner_in_the_cluster() -> None:
    # etcd TestReadOnlyWithLearner: a learner forwards reads; its ack does not count.
    net = Network([1], learners=(2,), seed=69)
    net.elect(1)
    net.propose(1, b"a")
    net.nodes[2].raw.read_index(b"via-learner")
    net.stabilize()
    assert [(rs.index, rs.request_ctx) for rs in net.nodes[2].read_states] == [
        (net.nodes[1].commit, b"via-learner")
    ]
    net = Network([1, 2, 3], learners=(4,), seed=70)
    net.elect(1)
    net.partition({1, 4}, {2, 3})
    net.nodes[1].raw.read_index(b"learner-ack-is-not-enough")
    net.tick(2)
    assert net.nodes[1].read_states == []
