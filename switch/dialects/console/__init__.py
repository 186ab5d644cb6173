"""The web console: live and recent calls, a call's timeline and recordings, worker and edge health.

Plain HTML and a little JavaScript (`static/`, no build step, nothing from a CDN) over a few JSON routes, all
under `/console/` and behind the account's credentials (HTTP Basic, as the REST API).  `routes.py` serves them;
`timeline.py` gathers a call's stored events into one time-ordered list of lanes.
"""
