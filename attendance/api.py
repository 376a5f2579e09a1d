"""Kiosk and device check-ins over the REST API."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from attendance import tasks
from portal.authentication import IsDeviceOrManager
from portal.models import Device
from recognition.api import read_upload
from recognition.jobs import run, stage

MAX_FRAMES = 48


class CheckInOutput(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=["checked_in", "checked_out", "repeated", "unknown", "liveness_failed", "no_face"])
    message = serializers.CharField()
    employee_id = serializers.IntegerField(allow_null=True)
    employee = serializers.CharField(allow_null=True)
    at = serializers.DateTimeField(allow_null=True)
    worked_seconds = serializers.IntegerField(allow_null=True)
    liveness = serializers.CharField(allow_null=True)
    similarity = serializers.FloatField(allow_null=True)


class CheckInApi(APIView):
    """A burst of frames (about 2 s) from a kiosk or a device: recognition, liveness, check-in/out."""

    parser_classes = [MultiPartParser, FormParser]
    permission_classes = [IsDeviceOrManager]

    class CheckInInput(serializers.Serializer):
        frames = serializers.ListField(child=serializers.FileField(), min_length=1, max_length=MAX_FRAMES)
        fps = serializers.FloatField(min_value=1, max_value=120, default=12.0)

    @extend_schema(request={"multipart/form-data": CheckInInput}, responses=CheckInOutput)
    def post(self, request: Request) -> Response:
        data = self.CheckInInput(data=request.data)
        data.is_valid(raise_exception=True)
        frames = [read_upload(frame) for frame in data.validated_data["frames"]]  # size checks before staging
        staged = [stage(frame) for frame in frames]
        source = f"device:{request.auth.name}" if isinstance(request.auth, Device) else "kiosk"
        answer = run(tasks.kiosk_check_in, staged_frames=staged, source=source, fps=data.validated_data["fps"])
        return Response(answer)
