"""Wound cases: photos made safe to store and show, what nurse and specialist record, routing to
the specialist team, the case's steps and its escalation. Its HTTP is api.py, its scheduler jobs
jobs.py, its SQL sql/wounds.sql."""
