"""Typer CLI: thin commands, one output sink, one error formatter."""
