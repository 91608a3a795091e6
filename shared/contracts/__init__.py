"""Every message that crosses the broker, declared once."""
