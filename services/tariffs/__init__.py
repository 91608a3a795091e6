"""The tariffs service: owns the tariffs module's state in its own MongoDB database."""
