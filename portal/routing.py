"""Websocket routes of every app, gathered for asgi.py."""

from attendance.routing import websocket_urlpatterns as attendance_routes

websocket_urlpatterns = [*attendance_routes]
