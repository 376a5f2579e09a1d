"""Websocket routes of the attendance app (the live monitor joins here)."""

websocket_urlpatterns: list = []
