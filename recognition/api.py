"""REST API of the face gallery and of recognition as a service."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.api import Pagination, id_field, page_of
from portal.authentication import DeviceTokenAuthentication, IsDevice, IsManager
from portal.models import Employee
from portal.permissions import (
    may_issue_enrolment_code,
    may_manage_faces,
    may_verify,
    recognition_names,
    visible_employees,
)
from recognition import workers
from recognition.jobs import check_upload_size
from recognition.models import FaceImage
from recognition.serializers_out import recognized_for
from recognition.services import (
    CHALLENGE_PROMPTS,
    enrolment_code_issue,
    face_delete,
    face_set_primary,
    liveness_challenge_issue,
)


def read_upload(upload) -> bytes:
    """The uploaded file's bytes; refuses an oversized file before reading it into memory."""
    check_upload_size(upload.size)
    return upload.read()


class FaceOutput(serializers.ModelSerializer):
    image_url = serializers.SerializerMethodField()
    crop_url = serializers.SerializerMethodField()

    class Meta:
        model = FaceImage
        fields = ["id", "employee_id", "embedder", "embedder_version", "detection_score", "face_size", "sharpness",
                  "yaw", "box", "source", "is_primary", "created_at", "image_url", "crop_url"]

    def get_image_url(self, face: FaceImage) -> str:
        return reverse("face-file", args=[face.pk, "image"])

    def get_crop_url(self, face: FaceImage) -> str:
        return reverse("face-file", args=[face.pk, "crop"])


def _managed_employee(request: Request, employee_id: int) -> Employee:
    """The employee whose faces the caller may manage: 404 if not visible, 403 if only visible."""
    employee = get_object_or_404(visible_employees(request.user), pk=employee_id)
    if not may_manage_faces(request.user, employee):
        raise PermissionDenied("You may not change this employee's photos (managers: employees of their own department only).")
    return employee


class FaceListApi(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [MultiPartParser, FormParser]

    class FaceFilter(serializers.Serializer):
        employee = id_field(required=False, help_text="only this employee's photos")

    @extend_schema(operation_id="v1_faces_list", parameters=[FaceFilter, OpenApiParameter("page", int, description="page number (pages of 50)")],
                   responses=page_of(FaceOutput))
    def get(self, request: Request) -> Response:
        query = self.FaceFilter(data={k: v for k, v in request.query_params.items() if v != "" and k != "page"})
        query.is_valid(raise_exception=True)
        faces = FaceImage.objects.filter(employee__in=visible_employees(request.user)).order_by("pk")
        if "employee" in query.validated_data:
            faces = faces.filter(employee_id=query.validated_data["employee"])
        paginator = Pagination()
        page = paginator.paginate_queryset(faces, request, view=self)
        return paginator.get_paginated_response(FaceOutput(page, many=True).data)

    class FaceUpload(serializers.Serializer):
        employee = id_field()
        image = serializers.FileField()

    @extend_schema(request={"multipart/form-data": FaceUpload}, responses={201: FaceOutput})
    def post(self, request: Request) -> Response:
        data = self.FaceUpload(data=request.data)
        data.is_valid(raise_exception=True)
        employee = _managed_employee(request, data.validated_data["employee"])
        upload = data.validated_data["image"]
        face = workers.enroll(employee=employee, data=read_upload(upload), filename=upload.name, created_by=request.user)
        return Response(FaceOutput(face).data, status=status.HTTP_201_CREATED)


class FaceDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    def _face(self, request: Request, pk: int) -> FaceImage:
        return get_object_or_404(FaceImage, pk=pk, employee__in=visible_employees(request.user))

    @extend_schema(responses=FaceOutput)
    def get(self, request: Request, pk: int) -> Response:
        return Response(FaceOutput(self._face(request, pk)).data)

    class FaceUpdate(serializers.Serializer):
        is_primary = serializers.BooleanField()

    @extend_schema(request=FaceUpdate, responses=FaceOutput)
    def patch(self, request: Request, pk: int) -> Response:
        face = self._face(request, pk)
        _managed_employee(request, face.employee_id)
        data = self.FaceUpdate(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["is_primary"]:
            face_set_primary(face=face)
        face.refresh_from_db()
        return Response(FaceOutput(face).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        face = self._face(request, pk)
        _managed_employee(request, face.employee_id)
        face_delete(face=face, removed_by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ImageInput(serializers.Serializer):
    image = serializers.FileField()


class DetectedFace(serializers.Serializer):
    box = serializers.ListField(child=serializers.FloatField(), help_text="[x1, y1, x2, y2] pixels")
    score = serializers.FloatField()
    landmarks = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()),
                                      help_text="5 x [x, y]: eyes, nose, mouth corners")


class TopMatch(serializers.Serializer):
    employee_id = serializers.IntegerField()
    similarity = serializers.FloatField()


class RecognizedFace(DetectedFace):
    known = serializers.BooleanField()
    employee_id = serializers.IntegerField(allow_null=True)
    employee = serializers.CharField(allow_null=True)
    similarity = serializers.FloatField(allow_null=True, help_text="cosine similarity of the best match")
    distance = serializers.FloatField(allow_null=True, help_text="Euclidean distance of the unit vectors")
    threshold = serializers.FloatField()
    top = TopMatch(many=True)


class RecognizeOutput(serializers.Serializer):
    faces = RecognizedFace(many=True)


class DetectOutput(serializers.Serializer):
    faces = DetectedFace(many=True)


class VerifyOutput(serializers.Serializer):
    face = DetectedFace()
    score = serializers.FloatField()
    distance = serializers.FloatField()
    same = serializers.BooleanField()
    threshold = serializers.FloatField()


class RecognizeApi(APIView):
    """Every face in the image: box, best match, similarity, known/unknown, top-k."""

    permission_classes = [IsManager]
    throttle_scope = "recognition"
    parser_classes = [MultiPartParser, FormParser]

    class RecognizeInput(ImageInput):
        k = serializers.IntegerField(min_value=1, max_value=20, default=5)

    @extend_schema(request={"multipart/form-data": RecognizeInput}, responses=RecognizeOutput)
    def post(self, request: Request) -> Response:
        data = self.RecognizeInput(data=request.data)
        data.is_valid(raise_exception=True)
        faces = workers.recognize(data=read_upload(data.validated_data["image"]), k=data.validated_data["k"])
        names = recognition_names(request.user)
        faces = [recognized_for(face, names) for face in faces]
        return Response({"faces": faces})


class VerifyApi(APIView):
    """verify(image, employee): is the one face in the image this employee?"""

    permission_classes = [IsAuthenticated]
    throttle_scope = "recognition"
    parser_classes = [MultiPartParser, FormParser]

    class VerifyInput(ImageInput):
        employee = id_field()

    @extend_schema(request={"multipart/form-data": VerifyInput}, responses=VerifyOutput)
    def post(self, request: Request) -> Response:
        data = self.VerifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        employee = get_object_or_404(visible_employees(request.user), pk=data.validated_data["employee"])
        if not may_verify(request.user, employee):
            raise PermissionDenied("Employees can only verify themselves.")
        return Response(workers.verify(data=read_upload(data.validated_data["image"]), employee=employee))


class DetectApi(APIView):
    """Faces in the image (box, score, 5 landmarks); no recognition."""

    permission_classes = [IsManager]
    throttle_scope = "recognition"
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request={"multipart/form-data": ImageInput}, responses=DetectOutput)
    def post(self, request: Request) -> Response:
        data = ImageInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response({"faces": workers.detect(data=read_upload(data.validated_data["image"]))})


class EnrolmentCodeOutput(serializers.Serializer):
    employee_id = serializers.IntegerField()
    code = serializers.CharField(help_text="Shown once: type it at the device for its enrolment capture.")
    expires_at = serializers.DateTimeField()


class EnrolmentCodeApi(APIView):
    """Issue a one-time code (10 minutes) that lets a device add one photo for this employee."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={201: EnrolmentCodeOutput})
    def post(self, request: Request, pk: int) -> Response:
        employee = get_object_or_404(visible_employees(request.user), pk=pk)
        if not may_issue_enrolment_code(request.user, employee):
            raise PermissionDenied("You may not issue an enrolment code for this employee.")
        entry, code = enrolment_code_issue(employee=employee, issued_by=request.user)
        return Response({"employee_id": employee.pk, "code": code, "expires_at": entry.expires_at}, status=status.HTTP_201_CREATED)


class DeviceEnrolOutput(serializers.Serializer):
    outcome = serializers.CharField()
    employee_id = serializers.IntegerField()
    employee = serializers.CharField()
    face_id = serializers.IntegerField()
    message = serializers.CharField()


class DeviceEnrolApi(APIView):
    """A device's enrolment capture: the manager's code and one photo (REST twin of the websocket's ``enrol``)."""

    authentication_classes = [DeviceTokenAuthentication]
    permission_classes = [IsDevice]
    parser_classes = [MultiPartParser, FormParser]

    class DeviceEnrolInput(serializers.Serializer):
        code = serializers.CharField(max_length=20)
        photo = serializers.FileField()
        key = serializers.CharField(max_length=64, required=False,
                                    help_text="Idempotency key (or the Idempotency-Key header): a resend gets the photo added")

    @extend_schema(request={"multipart/form-data": DeviceEnrolInput}, responses={201: DeviceEnrolOutput})
    def post(self, request: Request) -> Response:
        data = self.DeviceEnrolInput(data=request.data)
        data.is_valid(raise_exception=True)
        key = data.validated_data.get("key") or request.headers.get("Idempotency-Key", "")[:64]
        face = workers.enroll_with_code(device_name=request.auth.name, code=data.validated_data["code"].strip(),
                                        data=read_upload(data.validated_data["photo"]), key=key)
        return Response(workers.enrolled_answer(face), status=status.HTTP_201_CREATED)


class ChallengeOutput(serializers.Serializer):
    mode = serializers.ChoiceField(choices=["blink", "challenge", "off"], help_text="The portal's liveness mode.")
    challenge = serializers.CharField(allow_null=True, help_text="Send back with the burst (good once, 60 s).")
    direction = serializers.ChoiceField(choices=["left", "right"], allow_null=True)
    prompt = serializers.CharField(help_text="What to show the person.")


class LivenessChallengeApi(APIView):
    """What a screen must ask for before a burst: in the ``challenge`` mode a random head turn
    (left or right) and a signed one-time token to send back with the frames; otherwise a blink.
    Open to anyone (the face-login page asks before login); it reveals nothing."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=None, responses=ChallengeOutput)
    def post(self, request: Request) -> Response:
        mode = settings.ROLLCALL_LIVENESS
        if mode != "challenge":
            prompt = "Look at the camera and blink" if mode == "blink" else "Look at the camera"
            return Response({"mode": mode, "challenge": None, "direction": None, "prompt": prompt})
        token, direction = liveness_challenge_issue()
        return Response({"mode": mode, "challenge": token, "direction": direction, "prompt": CHALLENGE_PROMPTS[direction]})
