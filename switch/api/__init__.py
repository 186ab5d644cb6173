"""The REST edges: HTTP in, `switch.service.CallService` calls out.

Mount the Twilio dialect with `add_twilio_routes(app, service, public_base_url)` and install
`error_middleware` on the application.
"""

from switch.api.errors import error_middleware
from switch.api.twilio import add_twilio_routes, call_to_json

__all__ = ["add_twilio_routes", "call_to_json", "error_middleware"]
