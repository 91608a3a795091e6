"""The cdrs service: owns the cdrs module's state in its own MongoDB database."""
