"""The outbox on real SQLite: claims, leases, retries, dead letters, counts and the size bound."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aitrack.egress import otlp, outbox
from aitrack.store import ledger
from org_endpoint import queue, usage_total

LEASE = 30.0


@pytest.fixture
def db(home):
    connection = ledger.connect(home.ledger)
    yield connection
    connection.close()


def seqs(rows) -> list[str]:
    out = []
    for row in rows:
        request = otlp.decode(row.signal, row.body, otlp.PROTOBUF)
        out.append(otlp.resource_value(request, "seq"))
    return out


def test_a_claim_is_exclusive_until_its_lease_expires(home, db):
    queue(home.ledger, ["a", "b", "c"])
    now = time.time()
    first = outbox.claim(db, "host:1:x", ("metrics",), LEASE, now=now)
    assert seqs(first) == ["a", "b", "c"]  # one batch, oldest first
    assert outbox.claim(db, "host:2:y", ("metrics",), LEASE, now=now + 1) == []
    # the first claimer went silent: after the lease the rows can be sent again
    again = outbox.claim(db, "host:2:y", ("metrics",), LEASE, now=now + LEASE + 1)
    assert seqs(again) == ["a", "b", "c"]


def test_a_batch_is_one_signal_within_the_size_and_time_bounds(home, db):
    queue(home.ledger, ["m1", "m2"])
    queue(home.ledger, ["l1"], signal="logs")
    queue(home.ledger, [f"big{i}" for i in range(3)], pad=300_000)
    taken = []
    while batch := outbox.claim(db, "h:1:x", ("metrics", "logs"), LEASE):
        assert len({r.signal for r in batch}) == 1
        assert len(batch) == 1 or sum(len(r.body) for r in batch) <= outbox.BATCH_BYTES
        taken.append(seqs(batch))
    assert sorted(s for batch in taken for s in batch) == sorted(
        ["m1", "m2", "l1", "big0", "big1", "big2"])
    assert ["big0", "big1"] not in taken  # two 300 KB payloads exceed one 512 KiB request


def test_rows_hours_apart_are_not_merged(home, db):
    queue(home.ledger, ["old", "new"])
    db.execute("UPDATE outbox SET created_at = created_at - 7200 WHERE id = "
               "(SELECT MIN(id) FROM outbox)")
    assert seqs(outbox.claim(db, "h:1:x", ("metrics",), LEASE)) == ["old"]
    assert seqs(outbox.claim(db, "h:1:x", ("metrics",), LEASE)) == ["new"]


def test_a_runs_own_rows_go_first(home, db):
    queue(home.ledger, ["backlog1", "backlog2"])
    mine = queue(home.ledger, ["mine"])
    assert seqs(outbox.claim(db, "h:1:x", ("metrics",), LEASE, session_id=mine)) == ["mine"]
    assert seqs(outbox.claim(db, "h:1:x", ("metrics",), LEASE, session_id=mine)) == [
        "backlog1", "backlog2"]


def test_retry_schedule_and_recovery(home, db):
    queue(home.ledger, ["a"])
    now = time.time()
    rows = outbox.claim(db, "h:1:x", ("metrics",), LEASE, now=now)
    outbox.retry_later(db, "h:1:x", [r.id for r in rows], 10.0, "HTTP 503", now=now)
    assert outbox.claim(db, "h:1:x", ("metrics",), LEASE, now=now + 5) == []
    assert outbox.next_due(db, ("metrics",)) == pytest.approx(now + 10)
    # flush ignores the schedule
    assert len(outbox.claim(db, "h:2:x", ("metrics",), LEASE, due_only=False, now=now + 5)) == 1
    outbox.release(db, "h:2:x", [r.id for r in rows])
    assert outbox.make_due(db, now=now + 5) == 1
    again = outbox.claim(db, "h:1:x", ("metrics",), LEASE, now=now + 5)
    assert [r.attempts for r in again] == [1]


def test_dead_letters_are_kept_counted_and_revived_on_request(home, db):
    queue(home.ledger, ["bad", "good"])
    rows = outbox.claim(db, "h:1:x", ("metrics",), LEASE)
    outbox.bury(db, "h:1:x", [rows[0].id], "HTTP 400 Bad Request: bad points")
    outbox.ack(db, [rows[1].id])
    counts = outbox.counts(db)
    assert (counts.pending, counts.dead) == (0, 1)
    assert counts.dead_bytes == len(rows[0].body)
    assert outbox.claim(db, "h:1:x", ("metrics",), LEASE) == []  # never re-sent by itself
    assert outbox.revive(db) == 1
    assert seqs(outbox.claim(db, "h:1:x", ("metrics",), LEASE)) == ["bad"]


def test_unforwarded_signals_become_dead_letters(home, db):
    queue(home.ledger, ["l"], signal="logs")
    queue(home.ledger, ["m"])
    assert outbox.bury_unforwarded(db, ("metrics",)) == 1
    c = outbox.counts(db)
    assert (c.pending, c.dead) == (1, 1)


def test_counts(home, db):
    assert outbox.counts(db) == outbox.Counts(pending=0, dead=0, pending_bytes=0,
                                              oldest_pending_at=None)
    before = time.time()
    queue(home.ledger, ["a", "b"])
    c = outbox.counts(db)
    sizes = [r[0] for r in db.execute("SELECT size FROM outbox")]
    assert (c.pending, c.dead, c.pending_bytes) == (2, 0, sum(sizes))
    assert before <= c.oldest_pending_at <= time.time()


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_claims_of_a_dead_process_are_released_at_once(home, db):
    queue(home.ledger, ["a"])
    host = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_owner = f"{host}:{int(dead.stdout)}:aaaa"
    assert outbox.claim(db, dead_owner, ("metrics",), LEASE)
    live = _sleeper()
    try:
        queue(home.ledger, ["b"])
        assert outbox.claim(db, f"{host}:{live.pid}:bbbb", ("metrics",), LEASE)
        assert outbox.reap(db) == 1  # only the dead owner's row
        assert seqs(outbox.claim(db, "h:1:x", ("metrics",), LEASE)) == ["a"]
    finally:
        live.kill()
        live.wait()


def _claim_all(path: str, results) -> None:
    db = ledger.connect(Path(path))
    owner = outbox.owner_id()
    got = []
    while True:
        rows = outbox.claim(db, owner, ("metrics",), LEASE)
        if not rows:
            break
        got += [r.id for r in rows]
        time.sleep(0.002)
        outbox.ack(db, [r.id for r in rows])
    results.put(got)


def test_concurrent_claimers_never_get_the_same_row(home):
    for i in range(20):
        queue(home.ledger, [f"{i}-{j}" for j in range(10)])
    db = ledger.connect(home.ledger)
    # small batches, so that the processes really interleave
    db.execute("UPDATE outbox SET size = ?", (outbox.BATCH_BYTES // 3,))
    ids = {r[0] for r in db.execute("SELECT id FROM outbox")}
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(str(home.ledger), results)) for _ in range(4)]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    claimed = [i for g in got for i in g]
    assert sorted(claimed) == sorted(ids)  # every row once, none twice
    assert sum(1 for g in got if g) > 1, "the claimers did not run concurrently"
    assert outbox.counts(db).pending == 0


def test_the_size_bound_evicts_dead_then_logs_then_metrics_oldest_first(home, db):
    queue(home.ledger, ["m-old"], pad=200_000)
    queue(home.ledger, ["l-old"], signal="logs", pad=200_000)
    queue(home.ledger, ["dead"], pad=200_000)
    queue(home.ledger, ["l-new"], signal="logs", pad=200_000)
    queue(home.ledger, ["m-new"], pad=200_000)
    ids = {seq: i for i, seq in zip(
        [r[0] for r in db.execute("SELECT id FROM outbox ORDER BY id")],
        ["m-old", "l-old", "dead", "l-new", "m-new"], strict=True)}
    # created_at in insertion order, one second apart
    for n, row_id in enumerate(sorted(ids.values())):
        db.execute("UPDATE outbox SET created_at = ? WHERE id = ?", (1000.0 + n, row_id))
    db.execute("UPDATE outbox SET state = 'dead' WHERE id = ?", (ids["dead"],))
    tokens = usage_total(home.ledger)
    assert tokens == 300  # three metrics payloads of 100 tokens

    total = db.execute("SELECT SUM(size) FROM outbox").fetchone()[0]
    bound = total - 450_000  # room for 2.x payloads less than now; 90% target frees ~3
    eviction = outbox.enforce_bound(db, bound)
    left = [r[0] for r in db.execute("SELECT id FROM outbox ORDER BY id")]
    gone = [seq for seq, i in ids.items() if i not in left]
    assert gone == ["l-old", "dead", "l-new"]  # dead first, then logs oldest first
    assert eviction.rows == 3 and eviction.pending_rows == 2
    assert db.execute("SELECT SUM(size) FROM outbox").fetchone()[0] <= bound * outbox.EVICT_TO
    assert usage_total(home.ledger) == tokens  # the ledger never loses what it counted

    assert outbox.enforce_bound(db, 10_000) is not None  # then metrics, oldest first
    assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    c = outbox.counts(db)
    assert c.evicted == 5 and c.evicted_bytes == total
    assert outbox.enforce_bound(db, 10_000) is None
    assert usage_total(home.ledger) == tokens


def test_an_owner_id_names_this_host_and_process():
    host, pid, nonce = outbox.owner_id().rsplit(":", 2)
    assert host == socket.gethostname() and int(pid) == os.getpid() and nonce
