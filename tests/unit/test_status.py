"""Unit tests of the call state machine and the SIP-code-to-status table (`switch.core.status`)."""

from __future__ import annotations

import itertools

import pytest

from switch.core.status import (
    TERMINAL,
    TRANSITIONS,
    CallStatus,
    EndReason,
    InvalidTransition,
    check_transition,
    status_for_provisional,
    status_for_sip_code,
)

S = CallStatus
UNANSWERED = [S.BUSY, S.NO_ANSWER, S.FAILED, S.CANCELED]

ALLOWED: set[tuple[CallStatus, CallStatus]] = {
    *((S.QUEUED, s) for s in [S.INITIATED, S.RINGING, S.IN_PROGRESS, *UNANSWERED]),
    *((S.INITIATED, s) for s in [S.RINGING, S.IN_PROGRESS, *UNANSWERED]),
    *((S.RINGING, s) for s in [S.IN_PROGRESS, *UNANSWERED]),
    (S.IN_PROGRESS, S.COMPLETED),
    (S.IN_PROGRESS, S.FAILED),
}
ALL_PAIRS = list(itertools.product(CallStatus, CallStatus))
FORBIDDEN = [pair for pair in ALL_PAIRS if pair not in ALLOWED]


def test_terminal_set() -> None:
    assert {S.COMPLETED, S.BUSY, S.NO_ANSWER, S.FAILED, S.CANCELED} == TERMINAL
    for status in CallStatus:
        assert status.terminal is (status in TERMINAL)


def test_table_covers_every_status_and_matches_spec() -> None:
    assert set(TRANSITIONS) == set(CallStatus)
    table = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == ALLOWED


@pytest.mark.parametrize(("current", "new"), sorted(ALLOWED))
def test_allowed_transition(current: CallStatus, new: CallStatus) -> None:
    check_transition("CA1", current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.RINGING, S.INITIATED),
        (S.IN_PROGRESS, S.RINGING),
        (S.IN_PROGRESS, S.QUEUED),
        (S.INITIATED, S.QUEUED),
        (S.IN_PROGRESS, S.BUSY),
        (S.IN_PROGRESS, S.NO_ANSWER),
        (S.IN_PROGRESS, S.CANCELED),
        (S.QUEUED, S.COMPLETED),
        (S.RINGING, S.COMPLETED),
        (S.QUEUED, S.QUEUED),
        (S.RINGING, S.RINGING),
        (S.IN_PROGRESS, S.IN_PROGRESS),
    ],
)
def test_sample_forbidden_transitions(current: CallStatus, new: CallStatus) -> None:
    with pytest.raises(InvalidTransition) as info:
        check_transition("CA2", current, new)
    assert info.value.sid == "CA2"
    assert info.value.current is current
    assert info.value.new is new
    assert "CA2" in str(info.value)


def test_every_pair_not_in_table_is_forbidden() -> None:
    for current, new in FORBIDDEN:
        with pytest.raises(InvalidTransition):
            check_transition("CA3", current, new)


@pytest.mark.parametrize(("first", "second"), list(itertools.product(sorted(TERMINAL), CallStatus)))
def test_terminal_is_final(first: CallStatus, second: CallStatus) -> None:
    """Once terminal, nothing follows: a second terminal status (or any status) raises."""
    with pytest.raises(InvalidTransition):
        check_transition("CA4", first, second)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (486, S.BUSY),
        (600, S.BUSY),
        (408, S.NO_ANSWER),
        (480, S.NO_ANSWER),
        (404, S.FAILED),
        (484, S.FAILED),
        (488, S.FAILED),
        (500, S.FAILED),
        (503, S.FAILED),
        (603, S.FAILED),
    ],
)
def test_unanswered_final_codes(code: int, expected: CallStatus) -> None:
    assert status_for_sip_code(code, answered=False) is expected
    assert status_for_sip_code(code, answered=False, reason=EndReason.REMOTE) is expected


@pytest.mark.parametrize("code", [200, 487, 500, 408])
@pytest.mark.parametrize("reason", [EndReason.REMOTE, EndReason.HANGUP, EndReason.CANCELED,
                                    EndReason.RING_TIMEOUT])
def test_answered_is_completed(code: int, reason: EndReason) -> None:
    assert status_for_sip_code(code, answered=True, reason=reason) is S.COMPLETED


@pytest.mark.parametrize("code", [200, 500, 0])
def test_answered_with_error_is_failed(code: int) -> None:
    assert status_for_sip_code(code, answered=True, reason=EndReason.ERROR) is S.FAILED


@pytest.mark.parametrize("code", [487, 486, 408, 480, 503])
def test_canceled_reason_wins(code: int) -> None:
    assert status_for_sip_code(code, answered=False, reason=EndReason.CANCELED) is S.CANCELED


@pytest.mark.parametrize("code", [487, 486, 408, 503])
def test_ring_timeout_is_no_answer(code: int) -> None:
    assert status_for_sip_code(code, answered=False, reason=EndReason.RING_TIMEOUT) is S.NO_ANSWER


def test_487_without_our_reason_is_failed() -> None:
    """A 487 we did not cause (no CANCELED/RING_TIMEOUT reason) falls back to the default: failed."""
    assert status_for_sip_code(487, answered=False) is S.FAILED


@pytest.mark.parametrize("code", [486, 408, 0, 503])
def test_unanswered_local_error_is_failed(code: int) -> None:
    assert status_for_sip_code(code, answered=False, reason=EndReason.ERROR) is S.FAILED


@pytest.mark.parametrize(("code", "expected"), [(180, S.RINGING), (183, S.RINGING), (100, None)])
def test_provisional(code: int, expected: CallStatus | None) -> None:
    assert status_for_provisional(code) is expected


def test_status_values_are_twilio_spellings() -> None:
    assert [str(s) for s in CallStatus] == [
        "queued", "initiated", "ringing", "in-progress", "completed", "busy", "no-answer", "failed",
        "canceled",
    ]
