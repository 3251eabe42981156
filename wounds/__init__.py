"""Wound cases: photos made safe to store and show, and what nurse and specialist record."""
