"""Developer tooling, never imported by the product (a test keeps it so): the local Kafka broker
(``broker``, its Maven project and logging config in ``kafka/``), the traffic simulator (``sim``,
``simulate``), the worker as a local subprocess (``localrun``) and the end-to-end ``demo``."""
