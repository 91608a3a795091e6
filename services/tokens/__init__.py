"""The tokens service: owns the tokens module's state in its own MongoDB database."""
