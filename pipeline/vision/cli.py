"""Sub-commands of the vision stage (placeholder until the stage lands)."""


def register(sub) -> None:
    """Add this stage's sub-commands to the top-level parser."""
