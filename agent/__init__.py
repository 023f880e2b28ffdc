"""Onboard's front door: the `onboard` CLI (and, later, the interviewing agent)."""
