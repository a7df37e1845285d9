"""The Campus tools over the engine: partial-resync requests, selective sync, verification, history, alerts, attendance."""
