"""The locations service: our locations (CPO sender) and partners' locations (eMSP receiver)."""
