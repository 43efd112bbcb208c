"""Attacks a student with a script would try: each test shows one is harmless."""
