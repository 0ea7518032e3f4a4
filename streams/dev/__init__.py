"""Developer tooling's shipped files: the local Kafka broker's Maven project and logging config
(``kafka/``), read by ``streams.devkafka``. The product never imports this package."""
