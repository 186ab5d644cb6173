"""dialects/conversations"""
