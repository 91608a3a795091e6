"""The dispatcher: turns domain events into outbound OCPI calls to partners, and pulls from them."""
