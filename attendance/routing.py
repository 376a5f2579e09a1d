"""Websocket routes of the attendance app: the live monitor and device ingest."""

from django.urls import path

from attendance import consumers

websocket_urlpatterns = [
    path("ws/monitor/", consumers.MonitorConsumer.as_asgi()),
    path("ws/device/", consumers.DeviceConsumer.as_asgi()),
]
