"""Which LSN a snapshot stands for (verify/pinning.py), on commit records as pg_waldump reads
them: a primary's snapshot against the commits around its LSN (moved to the end of the prefix
it saw, or refused when it saw no prefix), a standby's against the record being replayed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from spectral.pg.waldump import CommitRecord, format_lsn
from spectral.verify.pinning import PinFacts, SnapshotXids, Unpinned, against, pin

T = datetime(2026, 12, 6, tzinfo=UTC)


def commit(lsn: int, xid: int, committed: bool = True, subxacts: tuple[int, ...] = ()
           ) -> CommitRecord:
    return CommitRecord(lsn, xid, T, committed, subxacts=subxacts)


# xid 99 at 0x10, 102 at 0x20, 101 at 0x30, 105 at 0x40
WAL = [commit(0x10, 99), commit(0x20, 102), commit(0x30, 101), commit(0x40, 105)]


def primary(lsn: int, snap: str) -> PinFacts:
    return PinFacts(format_lsn(lsn), SnapshotXids.parse(snap), in_recovery=False)


def test_the_snapshot_text_is_parsed_and_its_visibility_is_postgresqls() -> None:
    snap = SnapshotXids.parse("100:105:101,103")
    assert (snap.xmin, snap.xmax, snap.xip) == (100, 105, frozenset({101, 103}))
    assert [snap.sees(x) for x in (99, 100, 101, 102, 103, 104, 105)] == \
        [True, True, False, True, False, True, False]
    assert SnapshotXids.parse("7:7:").xip == frozenset()


def test_an_lsn_between_the_seen_and_the_unseen_commits_stands() -> None:
    assert pin(primary(0x25, "100:105:101,103"), WAL) == format_lsn(0x25)
    assert pin(primary(0x30, "100:105:101,103"), WAL) == format_lsn(0x30)   # exclusive


def test_a_commit_inserted_before_the_lsn_but_not_yet_visible_moves_it_back() -> None:
    # xid 101's record is at 0x30, still in flight (in xip) when the snapshot was taken
    assert pin(primary(0x38, "100:105:101"), WAL) == format_lsn(0x30)


def test_a_visible_commit_past_the_lsn_moves_it_forward() -> None:
    # synchronous_commit=off: 102 visible, its record past the position the LSN was read at
    assert pin(primary(0x18, "100:105:101"), WAL) == format_lsn(0x30)
    assert pin(primary(0x18, "106:106:"), WAL) == format_lsn(0x41)   # every one seen


def test_a_snapshot_that_sees_no_prefix_of_the_wal_is_unpinned() -> None:
    # 101 seen, 102 (earlier in the WAL) not: no LSN stands for it
    with pytest.raises(Unpinned, match=r"sees the commit of xid 101 .* not the earlier one of "
                                       r"xid 102") as exc:
        pin(primary(0x35, "100:105:102"), WAL)
    assert not exc.value.settles     # a primary's snapshot does not change by waiting


def test_aborts_do_not_count_on_a_primary() -> None:
    wal = [*WAL[:2], commit(0x28, 101, committed=False), WAL[3]]
    assert pin(primary(0x25, "100:105:101"), wal) == format_lsn(0x25)


def test_xids_of_another_epoch() -> None:
    epoch = 1 << 32
    snap = SnapshotXids.parse(f"{epoch + 3}:{epoch + 9}:{epoch + 4}")
    assert snap.widen(5) == epoch + 5 and snap.widen(4294967290) == 4294967290
    assert snap.sees(4294967290) and snap.sees(5) and not snap.sees(4) and not snap.sees(9)


def standby(lsn: int, snap: str, received: int | None) -> PinFacts:
    return PinFacts(format_lsn(lsn), SnapshotXids.parse(snap, complete=False),
                    in_recovery=True, received=None if received is None else format_lsn(received))


def test_a_standby_with_everything_received_replayed_is_pinned() -> None:
    assert pin(standby(0x1D, "100:103:", 0x1D), WAL) == format_lsn(0x1D)


def test_a_commit_that_may_be_mid_replay_unpins_a_standby_snapshot() -> None:
    # replay stood at 0x1D (the end of the record before); the next record, at 0x20, commits
    # 102, and xmax 104 does not prove it unseen (nor seen: 103 completed before it)
    with pytest.raises(Unpinned, match="commit of xid 102 right after LSN 0/1D") as exc:
        pin(standby(0x1D, "100:104:", 0x60), WAL)
    assert exc.value.settles    # replay that stands still a moment later is not mid-record
    with pytest.raises(Unpinned):
        pin(standby(0x1D, "100:104:", None), WAL)     # fed by restore_command: no receipt


def test_a_commit_seen_mid_replay_moves_a_standby_snapshot_past_it() -> None:
    # xmax 103: 102 is the newest completed, so its commit (at 0x20) was replayed as the
    # snapshot was taken: the copy stops before the next record that ends a transaction
    assert pin(standby(0x1D, "100:103:", 0x60), WAL) == format_lsn(0x30)
    with pytest.raises(Unpinned) as exc:   # no record after it in the archive yet
        pin(standby(0x1D, "100:103:", 0x60), WAL[:2])
    assert not exc.value.settles     # replay standing still would contradict the proof


def test_a_standby_is_pinned_when_the_next_record_is_no_unseen_commit() -> None:
    assert pin(standby(0x1D, "100:102:", 0x60), WAL) == format_lsn(0x1D)   # xmax proves it
    assert pin(standby(0x1D, "100:103:", 0x60),
               [WAL[0], commit(0x20, 102, committed=False)]) == format_lsn(0x1D)
    far = [WAL[0], commit(0x100, 102)]                 # another record is replayed first
    assert pin(standby(0x1D, "100:103:", 0x200), far) == format_lsn(0x1D)
    assert pin(standby(0x1D, "100:103:", 0x60), WAL[:1]) == format_lsn(0x1D)


def test_a_subtransaction_past_xmax_proves_the_commit_unseen() -> None:
    wal = [WAL[0], commit(0x20, 101, subxacts=(104,))]
    assert pin(standby(0x1D, "100:104:", 0x60), wal) == format_lsn(0x1D)
    with pytest.raises(Unpinned):
        pin(standby(0x1D, "100:105:", 0x60), wal)


def test_the_archive_is_flushed_before_it_is_read() -> None:
    calls: list[str] = []

    def commits_near(lsn: str) -> list[CommitRecord] | None:
        calls.append(f"read {lsn}")
        return WAL if lsn != "0/99" else None

    pinned = against(lambda: calls.append("flush"), commits_near)
    assert pinned(primary(0x38, "100:105:101")) == format_lsn(0x30)
    assert pinned(primary(0x99, "100:105:101")) == "0/99"   # the archive ends before it
    assert calls == ["flush", "read 0/38", "flush", "read 0/99"]


def test_an_insert_position_past_a_page_header_is_the_pages_start() -> None:
    from spectral.verify.pinning import record_boundary

    mb16, page = 16 * 1024 * 1024, 8192
    assert record_boundary("0/4000028", mb16, page) == "0/4000000"     # after a WAL switch
    assert record_boundary("0/4002018", mb16, page) == "0/4002000"     # any other page
    assert record_boundary("0/4000018", mb16, page) == "0/4000018"     # inside the long header
    assert record_boundary("0/4002028", mb16, page) == "0/4002028"     # a record may end there
    assert record_boundary("0/4000958", mb16, page) == "0/4000958"
    assert record_boundary("0/100028", 1024 * 1024, page) == "0/100000"   # 1 MB segments


# ---- a standby whose replay moved between the read before the snapshot and its statement --
def moved(before: int, lsn: int, snap: str, received: int | None = None) -> PinFacts:
    return PinFacts(format_lsn(lsn), SnapshotXids.parse(snap, complete=False), in_recovery=True,
                    received=None if received is None else format_lsn(received),
                    before=format_lsn(before))


# one writer: xids in commit order, 101 at 0x20, 102 at 0x30, 103 at 0x40, 104 at 0x50
ONE = [commit(0x10, 100), commit(0x20, 101), commit(0x30, 102), commit(0x40, 103),
       commit(0x50, 104)]


def test_a_standby_snapshot_taken_while_replay_moved_is_pinned_where_its_prefix_ends() -> None:
    # it saw 101 and 102 (xmax 103: 102 is the newest completed; 101 is below xmin), not 103
    assert pin(moved(0x1D, 0x48, "103:103:"), ONE) == format_lsn(0x40)
    assert pin(moved(0x1D, 0x48, "101:101:"), ONE) == format_lsn(0x20)    # none of them
    # it saw all three: the LSN read after it stands, checked as before against the record
    # there (everything received was replayed: nothing is mid-replay)
    assert pin(moved(0x1D, 0x48, "104:104:", received=0x48), ONE) == format_lsn(0x48)
    # one writer's next commit can be neither: xmin 104 proves it unseen, xmax 105 seen
    assert pin(moved(0x1D, 0x48, "104:105:", received=0x60), ONE) == format_lsn(0x48)
    assert pin(moved(0x1D, 0x48, "105:105:", received=0x60),
               [*ONE, commit(0x60, 105)]) == format_lsn(0x60)    # stops before the next end
    # two writers': 105 at 0x50, neither xmin (104) nor the newest (106)
    with pytest.raises(Unpinned, match="xid 105 right after LSN 0/48") as exc:
        pin(moved(0x1D, 0x48, "104:107:", received=0x60), [*ONE[:4], commit(0x50, 105)])
    assert exc.value.settles
    # a record before `before` was replayed before the first read: not in question
    assert pin(moved(0x20, 0x48, "101:101:"), ONE) == format_lsn(0x20)


def test_a_running_xid_at_xmin_and_an_xid_past_xmax_prove_a_record_unseen() -> None:
    wal = [commit(0x20, 105), commit(0x30, 103), commit(0x40, 106)]
    # 105 is the newest completed (xmax 106), 103 still runs (xmin 103): it saw only 105
    assert pin(moved(0x1D, 0x48, "103:106:"), wal) == format_lsn(0x30)
    assert pin(moved(0x1D, 0x48, "104:106:"), wal) == format_lsn(0x40)   # 103 below xmin
    # 102 still runs, 103 neither below xmin nor the newest: whether it was replayed is unknown
    with pytest.raises(Unpinned, match="whether it saw the commit of xid 103"):
        pin(moved(0x1D, 0x48, "102:106:"), wal)
    with pytest.raises(Unpinned, match="saw the commit of xid 106 but not the earlier"):
        pin(moved(0x1D, 0x48, "103:107:"), wal)   # no prefix of the WAL: refused


def test_only_a_commit_proves_itself_seen() -> None:
    # an ABORT may be a subtransaction's (its xid leaves the running ones on an assignment
    # record, before its abort is replayed); a prepared transaction's end counts only unseen
    aborted = [commit(0x20, 101, committed=False), commit(0x30, 102), commit(0x40, 103)]
    assert pin(moved(0x1D, 0x48, "103:103:"), aborted) == format_lsn(0x40)   # via 102
    assert pin(moved(0x1D, 0x48, "102:102:"), aborted) == format_lsn(0x30)   # the abort's
    # fate does not matter: nothing of it is visible either way
    prepared = [CommitRecord(0x20, 101, T, True, prepared=True), commit(0x30, 102)]
    with pytest.raises(Unpinned, match="whether it saw the commit of xid 101"):
        pin(moved(0x1D, 0x38, "102:102:"), prepared)
    assert pin(moved(0x1D, 0x38, "101:101:"), prepared) == format_lsn(0x20)


def test_a_moved_replay_is_unpinned_when_the_archive_does_not_reach_it() -> None:
    pinned = against(lambda: None, lambda lsn: None)
    with pytest.raises(Unpinned, match="archive does not reach 0/48"):
        pinned(moved(0x1D, 0x48, "103:103:"))
