"""The realtime WebSocket proxy (`/v1/realtime`): sessions opened like any call (opening.py), relayed event
by event (session.py), metered per response (responses.py, dialect.py), counted and ended by revocation or a
stop (sessions.py). Nothing here knows HTTP frameworks: server/api/openai/realtime.py adapts the WebSocket."""
