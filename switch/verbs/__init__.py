"""TwiML verbs: one file per verb, each a `Task` that runs on a live call, and one registry (`registry.TASKS`)
that the interpreter is handed.  Sessions that outlive one verb's bookkeeping live beside their verb:
`dial.DialSession` (with its state tables in `dial_state`), `connect.ConnectSession`."""
