"""dialects/twilio"""
