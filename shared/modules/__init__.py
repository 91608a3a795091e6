"""Generic storage and rules of OCPI object modules (Sender and Receiver interfaces)."""
