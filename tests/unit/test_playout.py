"""The playout queue between a browser's WebRTC session and a worker (`media.playout`)."""

from __future__ import annotations

from media.playout import SLACK, WINDOW, Playout


def _frame(n: int) -> bytes:
    return n.to_bytes(2, "little") * 160


def test_frames_come_out_in_order_and_silence_is_none() -> None:
    queue = Playout()
    for n in range(3):
        queue.push(_frame(n))
    assert [queue.pop() for _ in range(4)] == [_frame(0), _frame(1), _frame(2), None]


def test_a_sender_running_fast_leaves_no_standing_delay() -> None:
    """One extra frame every 100 (a clock 1 % fast, far more than real ones drift): a plain queue would grow to
    its cap and hold 200 ms; this one keeps the standing part to SLACK and what one window adds."""
    queue = Playout(cap=10)
    depths = []
    sent = 0
    for tick in range(WINDOW * 20):
        queue.push(_frame(sent))
        sent += 1
        if tick % 100 == 0:
            queue.push(_frame(sent))
            sent += 1
        queue.pop()
        depths.append(len(queue))
    assert max(depths[WINDOW * 4:]) <= SLACK + 2
    assert queue.dropped > 0


def test_bursts_that_drain_are_not_trimmed() -> None:
    """Frames arriving three at a time every third tick: the queue empties between bursts; nothing is lost."""
    queue = Playout(cap=10)
    played = []
    for tick in range(WINDOW * 6):
        if tick % 3 == 0:
            for n in range(3):
                queue.push(_frame(tick + n))
        played.append(queue.pop())
    assert queue.dropped == 0
    assert [f for f in played if f is not None] == [_frame(n) for n in range(WINDOW * 6)]


def test_a_flood_is_capped() -> None:
    queue = Playout(cap=10)
    for n in range(100):
        queue.push(_frame(n))
    assert (len(queue), queue.dropped, queue.pop()) == (10, 90, _frame(90))
