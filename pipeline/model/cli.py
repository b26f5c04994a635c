"""Sub-commands of the model stage (placeholder until the stage lands)."""


def register(sub) -> None:
    """Add this stage's sub-commands to the top-level parser."""
