"""What is computed for people: agreement, audits, decomposition, trade-offs, the CLI."""
