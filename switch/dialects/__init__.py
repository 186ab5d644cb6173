"""The REST dialects (Twilio, Exotel, Conversations): each one's routes and its rendering of call events."""
