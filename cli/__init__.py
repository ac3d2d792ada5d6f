"""Thin click front end: parses options and calls the openpaf library."""
