"""Test support: real servers (RabbitMQ, a MongoDB-wire server) and deployments of the platform."""
