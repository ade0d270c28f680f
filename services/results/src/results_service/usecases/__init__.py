"""Use cases: what the API and the consumers do, independent of HTTP and AMQP."""
