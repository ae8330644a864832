"""Report stage: the report schema and its JSON / Markdown / console renderings."""
