"""The long-lived worker: a Faust application (``app``) whose two stages (``stages``) read the
account-events and changes topics, bring their state up to the group's offsets (``recovery``) from
checkpoints (``checkpoints``: by stage, in Kafka or on disk), and run under ``runner`` (start-up, logging, signals)."""
