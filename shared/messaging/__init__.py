"""RabbitMQ plumbing: topology, publishing with confirms, consuming with manual ack, RPC."""
