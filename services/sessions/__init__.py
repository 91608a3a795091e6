"""The sessions service: owns the sessions module's state in its own MongoDB database."""
