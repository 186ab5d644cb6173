"""The verb registry runs exactly the verbs the parser accepts, one task class (and one file) per verb."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from switch.verbs import registry
from switch.verbs.base import Task
from twiml.parse import VERBS, parse


def test_registry_matches_the_parsers_verb_table() -> None:
    assert set(registry.TASKS) == set(VERBS.values())


@pytest.mark.parametrize("verb", sorted(VERBS.values(), key=lambda v: v.__name__), ids=lambda v: v.__name__)
def test_one_file_and_one_documented_task_per_verb(verb: type) -> None:
    task = registry.TASKS[verb]
    assert issubclass(task, Task) and task.verb is verb
    assert Path(inspect.getfile(task)).stem == verb.__name__.lower()
    assert task.__name__ == verb.__name__
    assert task.__doc__ and f"<{verb.__name__}" in task.__doc__


def test_task_for_builds_the_task_with_its_document_url() -> None:
    response = parse('<Response><Play>/hold.wav</Play><Hangup/></Response>')
    play, hangup = (registry.task_for(v, "http://app.test/voice") for v in response.verbs)
    assert type(play).__name__ == "Play" and play.document_url == "http://app.test/voice"
    assert type(hangup).__name__ == "Hangup"


def test_an_unregistered_type_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="registry and the parser disagree"):
        registry.task_for(object(), None)
