"""The tariffs service: our tariffs (CPO sender) and partners' tariffs (eMSP receiver)."""
