"""The control plane's side of the media workers: the pool that spawns and watches them, the typed protocol spoken
with them, and awaitable media operations per call."""
