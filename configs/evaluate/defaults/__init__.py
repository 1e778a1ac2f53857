"""Per-task recipe defaults: every key a task reads, with its default and what it means."""
