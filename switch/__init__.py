"""softswitch: a self-hosted SIP/RTP voice platform that speaks Twilio's REST API."""

__version__ = "0.1.0"
