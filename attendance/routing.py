"""Websocket routes of the attendance app: the live monitor, device ingest and the kiosk's streamed check-in."""

from django.urls import path

from attendance import consumers

websocket_urlpatterns = [
    path("ws/monitor/", consumers.MonitorConsumer.as_asgi()),
    path("ws/device/", consumers.DeviceConsumer.as_asgi()),
    path("ws/kiosk/", consumers.KioskConsumer.as_asgi()),
]
