"""The command line: one Typer sub-app per module over ``cli.common``; ``cli.main`` assembles them."""
