"""TwiML for softswitch: fetch, parse, verbs and the interpreter."""
