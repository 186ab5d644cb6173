"""dialects/exotel"""
