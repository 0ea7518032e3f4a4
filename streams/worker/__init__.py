"""The long-lived worker: a Faust application (``app``) whose two stages (``stages``) read the
account-events and changes topics, bring their state up to the group's offsets (``recovery``) from
checkpoints (``checkpoint_files``), and run under ``runner`` (start-up, logging, signals)."""
