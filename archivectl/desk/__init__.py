"""`archivectl desk`: the same operations as the CLI, as a page on 127.0.0.1 for one person on their own machine.

app.py holds the pages and their security (one-time token, session cookie,
CSRF, Origin and Host checks, headers); form.py turns the household schema into
the clerk's form; server.py binds 127.0.0.1 and serves until the command stops.
Every rule is the ops layer's: a page parses a form, calls one operation and
shows its result or its refusal, in the CLI's words.
"""
