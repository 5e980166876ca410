"""Subcommands of the `embsum` CLI (see `embsum_hf.cli`)."""
