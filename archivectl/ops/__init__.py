"""Operations: what each command does, as plain functions returning data.

They know nothing of the command line; cli/ parses options, calls one of them
and renders what it returns.
"""
