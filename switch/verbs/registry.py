"""The one table of verb tasks: each TwiML verb the parser accepts, and the task class that runs it.

`tests/unit/test_verbs_registry.py` checks this table against the parser's table of verbs (twiml.schema), so a
verb cannot be parsed without being run, or registered without being parseable.  (Twilio verbs the switch does
not run yet are refused by the parser, with 13750.)
"""

from __future__ import annotations

from switch.verbs.base import Task
from switch.verbs.connect import Connect
from switch.verbs.dial import Dial
from switch.verbs.enqueue import Enqueue
from switch.verbs.gather import Gather
from switch.verbs.hangup import Hangup
from switch.verbs.leave import Leave
from switch.verbs.pause import Pause
from switch.verbs.play import Play
from switch.verbs.record import Record
from switch.verbs.redirect import Redirect
from switch.verbs.reject import Reject
from switch.verbs.say import Say
from switch.verbs.start import Start
from switch.verbs.stop import Stop

TASKS: dict[type, type[Task]] = {  # type: ignore[type-arg]
    task.verb: task
    for task in (Say, Play, Pause, Gather, Record, Dial, Connect, Redirect, Hangup, Reject, Start, Stop,
                 Enqueue, Leave)
}


def task_for(verb: object, document_url: str | None) -> Task:  # type: ignore[type-arg]
    """The task that runs `verb`, found in the document at `document_url` (None: inline TwiML)."""
    task = TASKS.get(type(verb))
    if task is None:
        raise TypeError(f"no task runs {type(verb).__name__}: the verb registry and the parser disagree")
    return task(verb, document_url)
