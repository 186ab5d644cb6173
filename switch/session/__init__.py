"""A call's TwiML run: the voice engine that owns every call's interpreter, and `LiveCall`, what the verbs act on."""
