"""The clinician workspace: the consult graph in the browser (`medconsult workspace`).

app.py (routes), auth.py (sign-in, sessions, CSRF), security.py (headers, binding rule), store.py (users, cases,
decisions), runs.py (consults as background tasks and their event streams), evidence.py (what a case page shows),
images.py (the radiograph and lung-mask layers), templates/ and static/.
"""
