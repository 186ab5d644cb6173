"""Unit tests of the worker pool's RTP port slices and media arguments (`switch.workers.pool`)."""

from __future__ import annotations

import os

from switch.workers.pool import WorkerPool, rtp_slices


def test_one_worker_takes_the_whole_range() -> None:
    assert rtp_slices((10000, 20000), 1) == [(10000, 20000)]


def test_workers_get_disjoint_even_slices_and_the_last_gets_the_rest() -> None:
    assert rtp_slices((10000, 20000), 3) == [(10000, 13331), (13332, 16663), (16664, 20000)]
    assert rtp_slices((23000, 23101), 2) == [(23000, 23049), (23050, 23101)]


def test_a_range_too_small_to_split_is_shared() -> None:
    assert rtp_slices((23000, 23002), 4) == [(23000, 23002)] * 4


def _noop(*_: object) -> None:
    return None


def test_spawn_arguments_and_advertised_host() -> None:
    pool = WorkerPool(2, "0.0.0.0", 5060, _noop, _noop, advertised_host="192.0.2.7", media_address="192.0.2.10",
                      external_address="203.0.113.7", rtp_ports=(23000, 23099))
    assert [(w.sip_host, w.listen_host, w.sip_port) for w in pool.workers] == [
        ("192.0.2.7", "0.0.0.0", 5060), ("192.0.2.7", "0.0.0.0", 5061)]
    assert [pool._media_args(w) for w in pool.workers] == [
        ["--rtp-ports", "23000-23049", "--media-address", "192.0.2.10", "--external-address", "203.0.113.7"],
        ["--rtp-ports", "23050-23099", "--media-address", "192.0.2.10", "--external-address", "203.0.113.7"],
    ]
    assert [s["sip"] for s in pool.status()] == ["0.0.0.0:5060", "0.0.0.0:5061"]
    plain = WorkerPool(1, "127.0.0.1", 5060, _noop, _noop)
    assert (plain.workers[0].sip_host, plain.workers[0].listen_host) == ("127.0.0.1", "127.0.0.1")
    assert plain._media_args(plain.workers[0]) == ["--rtp-ports", "10000-20000"]
    for made in (pool, plain):
        os.rmdir(made._dir)  # the socket directory each pool makes; close() would remove it after a start()
