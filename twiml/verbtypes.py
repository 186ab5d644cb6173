"""Type aliases shared by the verb modules (:mod:`twiml.verbs`, :mod:`twiml.verbs_callcenter`).

They live here, below both, so that :mod:`twiml.verbs` can import the call-center verbs without an import cycle;
:mod:`twiml.verbs` re-exports them.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

HttpMethod: TypeAlias = Literal["GET", "POST"]
Trim: TypeAlias = Literal["trim-silence", "do-not-trim"]
